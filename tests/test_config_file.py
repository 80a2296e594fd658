"""`--config run.toml`: the flags' settings in a TOML file; flags given with it win;
`--print-config` prints the resolved settings as TOML (which --config reads back) and writes
nothing; config.json records the resolved settings; a bad file is one line and exit 2."""

from __future__ import annotations

import json
import tomllib

import pytest

from tui_trainer.cli import CONFIG_FLAGS
from tui_trainer.config_file import KEYS

TINY = ["--synthetic-train", "32", "--synthetic-val", "16", "--threads", "1", "--headless"]


def write(tmp_path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_the_file_sets_what_flags_set_and_flags_override_it(cli, tmp_path):
    path = write(tmp_path, 'dataset = "synthetic"\nmodel = "mlp"\nepochs = 1\nbatch-size = 8\nlr = 0.01\n'
                           'synthetic_shape = "1x8x8"\naugment = false\n')
    run_dir = tmp_path / "run"
    result = cli("run", "--config", path, "--lr", "0.002", *TINY, "--run-dir", run_dir)
    assert result.code == 0, result.err
    recorded = json.loads((run_dir / "config.json").read_text())
    assert (recorded["model"], recorded["epochs"], recorded["batch_size"]) == ("mlp", 1, 8)
    assert recorded["lr"] == 0.002 and recorded["synthetic_shape"] == [1, 8, 8] and recorded["augment"] is False


def test_print_config_prints_toml_that_reads_back_and_writes_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = cli("run", "cifar10", "--model", "resnet18", "--epochs", "7", "--print-config")
    assert first.code == 0 and first.err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no runs/, no data dir
    values = tomllib.loads(first.out)
    assert (values["dataset"], values["model"], values["epochs"], values["batch-size"]) == ("cifar10", "resnet18", 7, 128)
    assert "# threads = (not set)" in first.out
    path = write(tmp_path, first.out)
    again = cli("run", "--config", path, "--print-config")
    assert again.out == first.out
    from tui_trainer.cli import build_parser, config_from_args

    direct = config_from_args(build_parser().parse_args(["run", "cifar10", "--model", "resnet18", "--epochs", "7"]))
    via_file = config_from_args(build_parser().parse_args(["run", "--config", str(path)]))
    assert via_file == direct


def test_every_flag_setting_is_a_key():
    assert KEYS == set(CONFIG_FLAGS) | {"dataset"}


@pytest.mark.parametrize("text, expected", [
    ("batchsize = 32\n", "unknown setting 'batchsize' (did you mean batch-size"),
    ('epochs = "ten"\n', "epochs must be an integer, got a string ('ten')"),
    ("lr = true\n", "lr must be a finite number, got true/false (True)"),
    ('lr = "fast"\n', 'lr must be a finite number or "find", got a string (\'fast\')'),
    ("augment = 1\n", "augment must be true or false, got an integer (1)"),
    ("synthetic-shape = [3, 32]\n", "synthetic-shape must be \"CxHxW\""),
    ("epochs = 3\nepochs = 4\n", "is not valid TOML"),
    ("epochs = 0\n", "--epochs must be an integer >= 1"),
    ("batch-size = 8\nbatch_size = 8\n", "'batch_size' is set twice"),
    ('model = "resnet19"\n', "unknown model 'resnet19' (did you mean resnet18"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(cli, tmp_path, text, expected):
    path = write(tmp_path, 'dataset = "synthetic"\n' + text)
    result = cli("run", "--config", path, "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert expected in line and "Traceback" not in result.err
    assert not (tmp_path / "run").exists()


def test_a_missing_file_and_a_missing_dataset_are_one_line(cli, tmp_path):
    result = cli("run", "--config", tmp_path / "nope.toml")
    assert result.code == 2 and "cannot read the config file" in result.err
    result = cli("run", "--config", write(tmp_path, "epochs = 2\n"))
    assert result.code == 2 and "no dataset" in result.err


def test_the_dataset_argument_overrides_the_files(cli, tmp_path):
    path = write(tmp_path, 'dataset = "cifar10"\nepochs = 2\n')
    out = cli("run", "digits", "--config", path, "--print-config").out
    assert 'dataset = "digits"' in out and "epochs = 2" in out


def test_lr_find_survives_print_config_and_a_config_file(cli, tmp_path):
    """`run --lr find --print-config > run.toml`, then `run --config run.toml`: the file asks for
    the range test, as the flag did (it used to print the recipe's LR, so the run trained with
    that instead); a --lr given with the file still wins."""
    from tui_trainer.cli import build_parser, config_from_args
    from tui_trainer.lr_find_run import FIND_KEY

    printed = cli("run", "digits", "--lr", "find", "--print-config")
    assert printed.code == 0 and tomllib.loads(printed.out)["lr"] == "find"
    path = write(tmp_path, printed.out)
    again = cli("run", "--config", path, "--print-config")
    assert again.out == printed.out
    via_file = config_from_args(build_parser().parse_args(["run", "--config", str(path)]))
    assert via_file == config_from_args(build_parser().parse_args(["run", "digits", "--lr", "find"]))
    assert via_file.extra.get(FIND_KEY)
    flag_wins = config_from_args(build_parser().parse_args(["run", "--config", str(path), "--lr", "0.01"]))
    assert flag_wins.lr == 0.01 and not flag_wins.extra.get(FIND_KEY)


@pytest.mark.parametrize("key", ["headless", "detach", "print-config", "log-format", "tensorboard", "notify",
                                 "on-hangup", "dist-timeout", "config"])
def test_a_command_line_only_flag_in_a_file_is_called_a_flag_not_given_a_far_fetched_name(cli, tmp_path, key):
    """`headless = true` got "did you mean threads?" and `on-hangup` "did you mean on-nan?"."""
    path = write(tmp_path, f'dataset = "synthetic"\n{key} = true\n')
    result = cli("run", "--config", path, "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert f"'{key}' is a command-line flag, not a config key: pass --{key} on the command line" in line
    assert "did you mean" not in line and not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, expected", [
    ("no-download = true\n", "'no-download' is the flag --no-download; in a config file write download = false"),
    ("no_restore_best = true\n", "is the flag --no-restore-best; in a config file write restore-best = false"),
    ("warmup = 3\n", "unknown setting 'warmup'; the keys are"),  # not "did you mean amp?"
    ("threadz = 1\n", "unknown setting 'threadz' (did you mean threads?)"),
])
def test_unknown_keys_get_a_suggestion_only_when_it_is_close(cli, tmp_path, text, expected):
    result = cli("run", "--config", write(tmp_path, 'dataset = "synthetic"\n' + text), "--print-config")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert expected in line
