"""Flags that mean something for some datasets only (the synthetic dataset's sizes, an image
folder's split, size, memory budget and workers): given for another dataset they are refused in
one line naming the flag and the datasets it applies to, not ignored without a word; for the
datasets they apply to they still work, and a config file that --print-config wrote reads back."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv, says", [
    (("digits", "--synthetic-classes", "5"), "--synthetic-classes applies to the synthetic dataset, not to digits"),
    (("cifar10", "--synthetic-shape", "1x8x8"), "--synthetic-shape applies to the synthetic dataset, not to cifar10"),
    (("digits", "--synthetic-train", "64"), "--synthetic-train applies to the synthetic dataset, not to digits"),
    (("mnist", "--synthetic-val", "64"), "--synthetic-val applies to the synthetic dataset, not to mnist"),
    (("digits", "--val-split", "0.1"), "--val-split applies to a folder of images, not to digits"),
    (("digits", "--image-size", "16"), "--image-size applies to a folder of images, not to digits"),
    (("cifar10", "--memory-budget", "1"), "--memory-budget applies to a folder of images, not to cifar10"),
    (("digits", "--workers", "2"), "--workers applies to a folder of images or an experiment file, not to digits"),
    (("synthetic", "--workers", "2"), "--workers applies to a folder of images or an experiment file, not to "
                                      "synthetic"),
    (("digits", "--augment"), "--augment applies to the image datasets and folders of images, not to digits"),
])
@pytest.mark.parametrize("command", ["run", "diagnose"])
def test_a_flag_for_another_dataset_is_refused_in_one_line(cli, tmp_path, monkeypatch, command, argv, says):
    monkeypatch.chdir(tmp_path)
    result = cli(command, *argv, "--headless" if command == "run" else "--seed", *(() if command == "run" else ("0",)))
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert says in line
    assert list(tmp_path.iterdir()) == []


def test_the_flags_still_work_where_they_apply(cli, tmp_path):
    printed = cli("run", "synthetic", "--synthetic-classes", "5", "--synthetic-shape", "1x8x8", "--print-config")
    assert printed.code == 0 and "synthetic-classes = 5" in printed.out
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    printed = cli("run", folder, "--val-split", "0.2", "--workers", "2", "--image-size", "16", "--memory-budget",
                  "0.5", "--print-config")
    assert printed.code == 0 and "val-split = 0.2" in printed.out and "workers = 2" in printed.out


def test_a_config_file_for_one_dataset_reads_back_and_a_foreign_setting_in_one_is_named(cli, tmp_path):
    """--print-config writes every synthetic setting for every dataset: reading it back works;
    a synthetic setting changed from its default, read for digits, is refused naming the file."""
    printed = cli("run", "digits", "--print-config")
    assert printed.code == 0 and "synthetic-classes = 10" in printed.out
    path = tmp_path / "digits.toml"
    path.write_text(printed.out)
    assert cli("run", "--config", path, "--print-config").out == printed.out
    path.write_text('dataset = "synthetic"\nsynthetic-classes = 5\n')
    assert "synthetic-classes = 5" in cli("run", "--config", path, "--print-config").out
    result = cli("run", "digits", "--config", path, "--print-config")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert f"synthetic-classes (in {path}) applies to the synthetic dataset, not to digits" in line


def test_augmentation_is_refused_only_where_nothing_augments(cli, tmp_path):
    """digits has no random crop or flip: --augment (or augment = true in a config file) is one
    line there; --no-augment asks for what happens anyway, and elsewhere --augment is taken."""
    assert cli("run", "digits", "--no-augment", "--print-config").code == 0
    assert "augment = true" in cli("run", "synthetic", "--augment", "--print-config").out
    path = tmp_path / "cifar.toml"
    path.write_text(cli("run", "cifar10", "--print-config").out)  # the cifar10 recipe augments
    assert "augment = true" in path.read_text()
    result = cli("run", "digits", "--config", path, "--print-config")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert f"augment (in {path}) applies to the image datasets and folders of images, not to digits" in line
