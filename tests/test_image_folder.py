"""`tui-trainer run path/to/folder`: the user's own images, in either layout, decoded once and
cached, held on the device or streamed, normalised with the training split's statistics,
resumed exactly; and every refusal one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from _reliability import assert_same_tensors, cli_main, epoch_metrics, load, of, snapshot
from tui_trainer.config import make_config
from tui_trainer.data import build_data, preflight

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
CLASSES = ("ant", "bee", "cow")


def write_images(folder, per_class: int, size=(12, 12), seed=0, ext="png") -> dict[str, np.ndarray]:
    """Class-coloured noise images; returns {relative path: HxWx3 uint8}."""
    rng = np.random.default_rng(seed)
    written = {}
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(50 + 70 * c, 40, (*size, 3)), 0, 255).astype(np.uint8)
            path = folder / name / f"{i:03d}.{ext}"
            Image.fromarray(pixels).save(path)
            written[path] = pixels
    return written


@pytest.fixture
def tree(tmp_path):
    """FOLDER/<class>/*.png: 3 classes of 10."""
    root = tmp_path / "pics"
    images = write_images(root, 10)
    return root, {p.relative_to(root).as_posix(): a for p, a in images.items()}


@pytest.fixture
def split_tree(tmp_path):
    """FOLDER/train/<class>/ (8 each) and FOLDER/val/<class>/ (3 each)."""
    root = tmp_path / "split"
    write_images(root / "train", 8, seed=1)
    write_images(root / "val", 3, seed=2)
    return root


def config(folder, data_dir, **overrides):
    values = dict(data_dir=str(data_dir), batch_size=4, eval_batch_size=16, model="simplecnn", seed=0)
    values.update(overrides)
    return preflight(make_config(str(folder), **values))


def events_of(emitted, level):
    return [e.message for e in emitted if type(e).__name__ == "Notice" and e.level == level]


def test_a_train_and_val_layout_is_held_as_uint8_with_training_statistics(split_tree, tmp_path):
    emitted = []
    bundle = build_data(config(split_tree, tmp_path / "data"), CPU, emit=emitted.append)
    assert (bundle.train_size, bundle.val_size, bundle.class_names) == (24, 9, CLASSES)
    assert bundle.input_shape == (3, 12, 12)  # their own size: they all share it
    train = bundle.train_loader
    assert train.inputs.dtype == torch.uint8 and train.inputs.shape == (24, 3, 12, 12)
    pixels = np.stack([np.asarray(Image.open(p)) for p in sorted((split_tree / "train").rglob("*.png"))])
    expected_mean = pixels.reshape(-1, 3).mean(0) / 255
    expected_std = pixels.reshape(-1, 3).std(0) / 255
    np.testing.assert_allclose(train.transform.mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(train.transform.std, expected_std, rtol=1e-5)
    assert train.transform.flip and train.transform.crop_padding == 2  # 1/8 of 12 px, rounded
    (info,) = events_of(emitted, "info")
    assert "24 train / 9 validation images of 3x12x12, 3 classes (train/ and val/); decoded, held on cpu" in info
    x, y = next(iter(bundle.val_loader))  # validation in file order, normalised with the training statistics
    first = np.array(Image.open(split_tree / "val" / "ant" / "000.png"))
    want = (torch.from_numpy(first).permute(2, 0, 1).float() / 255 - torch.tensor(expected_mean).view(3, 1, 1).float()) \
        / torch.tensor(expected_std).view(3, 1, 1).float()
    torch.testing.assert_close(x[0], want, rtol=1e-4, atol=1e-4)
    assert y[:3].tolist() == [0, 0, 0]


def test_val_split_is_stratified_and_fixed_by_the_seed(tree, tmp_path):
    root, images = tree
    a = build_data(config(root, tmp_path / "d", val_split=0.2), CPU)
    b = build_data(config(root, tmp_path / "d", val_split=0.2), CPU)
    c = build_data(config(root, tmp_path / "d", val_split=0.2, seed=5), CPU)
    assert (a.train_size, a.val_size) == (24, 6)
    assert a.val_loader.targets.tolist() == [0, 0, 1, 1, 2, 2]  # 20% of each class of 10
    assert torch.equal(a.val_loader.inputs, b.val_loader.inputs)
    assert not torch.equal(a.val_loader.inputs, c.val_loader.inputs)


def test_mixed_sizes_default_to_224_and_image_size_resizes(tmp_path):
    root = tmp_path / "mixed"
    write_images(root / "train", 2, size=(10, 10))
    write_images(root / "val", 1, size=(16, 20), seed=3)
    assert build_data(config(root, tmp_path / "d"), CPU).input_shape == (3, 224, 224)
    bundle = build_data(config(root, tmp_path / "d", image_size=8), CPU)
    assert bundle.input_shape == (3, 8, 8) and bundle.train_loader.inputs.shape[1:] == (3, 8, 8)


def test_unreadable_images_are_skipped_counted_and_named(split_tree, tmp_path):
    for i in range(4):
        (split_tree / "train" / "bee" / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    emitted = []
    bundle = build_data(config(split_tree, tmp_path / "data"), CPU, emit=emitted.append)
    assert bundle.train_size == 24
    (warning,) = events_of(emitted, "warning")
    assert warning.startswith("skipped 4 unreadable images of 37 in ")
    assert "train/bee/bad0.jpg, train/bee/bad1.jpg, train/bee/bad2.jpg, ..." in warning


def test_other_formats_decode_too(tmp_path):
    root = tmp_path / "formats"
    write_images(root / "train", 2, ext="bmp")
    write_images(root / "val", 1, ext="jpg", seed=4)
    bundle = build_data(config(root, tmp_path / "d"), CPU)
    assert (bundle.train_size, bundle.val_size) == (6, 3)


def test_the_second_run_reads_the_decoded_cache_and_a_damaged_one_is_not_trusted(split_tree, tmp_path):
    first = build_data(config(split_tree, tmp_path / "data"), CPU)
    (cache,) = (tmp_path / "data" / "image-cache").iterdir()
    emitted = []
    second = build_data(config(split_tree, tmp_path / "data"), CPU, emit=emitted.append)
    assert "from the decoded cache" in events_of(emitted, "info")[0]
    assert torch.equal(first.train_loader.inputs, second.train_loader.inputs)
    raw = bytearray(cache.read_bytes())
    raw[-5] ^= 0xFF  # one flipped bit in the pixels
    cache.write_bytes(bytes(raw))
    emitted = []
    third = build_data(config(split_tree, tmp_path / "data"), CPU, emit=emitted.append)
    assert any("was not used (damaged: pixel digest mismatch)" in w for w in events_of(emitted, "warning"))
    assert torch.equal(first.train_loader.inputs, third.train_loader.inputs)
    # a changed image is a new key: decoded again, silently, with its new pixels
    changed = split_tree / "train" / "ant" / "000.png"
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    emitted = []
    fourth = build_data(config(split_tree, tmp_path / "data"), CPU, emit=emitted.append)
    assert events_of(emitted, "warning") == [] and "decoded, held" in events_of(emitted, "info")[0]
    assert not torch.equal(first.train_loader.inputs, fourth.train_loader.inputs)


def test_streamed_batches_equal_held_ones(split_tree, tmp_path):
    """Over the memory budget, DataLoader workers decode from disk; the batches (order and
    augmentation included) are the ones the in-memory loader gives."""
    held = build_data(config(split_tree, tmp_path / "d"), CPU)
    emitted = []
    streamed = build_data(config(split_tree, tmp_path / "d", memory_budget=1e-6, workers=2), CPU, emit=emitted.append)
    assert "streamed from disk" in events_of(emitted, "info")[0]
    assert type(streamed.train_loader).__name__ == "StreamingLoader"
    for _ in range(2):  # two epochs: the generator carries on the same way
        for (xa, ya), (xb, yb) in zip(held.train_loader, streamed.train_loader, strict=True):
            assert torch.equal(ya, yb)
            torch.testing.assert_close(xa, xb)
    for (xa, ya), (xb, yb) in zip(held.val_loader, streamed.val_loader, strict=True):
        assert torch.equal(ya, yb)
        torch.testing.assert_close(xa, xb)


@pytest.mark.parametrize("make, args, expected", [
    (lambda r: None, [], "does not exist"),
    (lambda r: r.mkdir(), ["--val-split", "0.1"], "holds no images in class folders"),
    (lambda r: write_images(r, 3) and [__import__("shutil").rmtree(r / c) for c in CLASSES[1:]], ["--val-split", "0.1"],
     "has one class (ant)"),
    (lambda r: write_images(r / "train", 3), [], "has train/ but no val/"),
    (lambda r: write_images(r, 3), [], "has no train/ and val/ folders; pass --val-split 0.1"),
    (lambda r: (write_images(r / "train", 3), write_images(r / "val", 1)), ["--val-split", "0.2"],
     "has a val/ folder, so there is nothing to split"),
    (lambda r: write_images(r, 3), ["--val-split", "1.5"], "--val-split must be a fraction between 0 and 1"),
])
def test_a_folder_that_cannot_be_used_is_one_line_exit_2_and_nothing_written(cli, tmp_path, make, args, expected):
    root = tmp_path / "folder"
    make(root)
    before = snapshot(tmp_path)
    result = cli("run", root, *args, "--data-dir", tmp_path / "data", "--headless", "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert expected in line and "Traceback" not in result.err
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_an_unreadable_folder_is_one_line(cli, tmp_path, monkeypatch):
    root = tmp_path / "locked"
    write_images(root, 2)
    real_scandir = os.scandir

    def scandir(path="."):  # as for a folder without read permission (the tests may run as root)
        if os.fspath(path) == str(root):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = cli("run", root, "--val-split", "0.1", "--headless", "--run-dir", tmp_path / "run")
    assert result.code == 2 and f"cannot read {root}: Permission denied" in result.err
    assert not (tmp_path / "run").exists()


def test_image_options_on_a_named_dataset_are_refused(cli, tmp_path):
    result = cli("run", "digits", "--val-split", "0.1", "--run-dir", tmp_path / "run")
    assert result.code == 2 and "--val-split applies to a folder of images, not to digits" in result.err


def test_an_image_folder_run_from_the_command_line_names_the_run_after_the_folder(cli, tree, tmp_path, monkeypatch):
    root, _ = tree
    monkeypatch.chdir(tmp_path)
    result = cli("run", root, "--val-split", "0.2", "--model", "mlp", "--epochs", "1", "--batch-size", "8",
                 "--data-dir", tmp_path / "data", "--headless", "--threads", "1")
    assert result.code == 0, result.err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("pics-mlp-")
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["dataset"] == str(root) and recorded["val_split"] == 0.2
    assert recorded["extra"]["image_folder"]["train"] == 24
    assert f"{root}: 24 train / 6 validation, 3 classes" in result.out


# ----- resume -----

def _run(folder, data_dir, run_dir, stop_at_step: int | None, **overrides):
    """`tui-trainer run FOLDER` in this process, asking for a stop (as Ctrl-C does) at step
    `stop_at_step` of epoch 2."""
    from tui_trainer import events as ev, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    cfg = config(folder, data_dir, val_split=0.25, epochs=3, model="mlp", **overrides)
    cfg = cfg.replace(run_dir=str(run_dir))
    run_dir.mkdir()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, cfg.to_dict())
    control = Control()

    class Stopper:
        def emit(self, e):
            if stop_at_step and isinstance(e, ev.StepProgress) and e.epoch == 2 and e.step >= stop_at_step:
                control.request_stop("signal")

    log = runlog.RunLog(run_dir)
    try:
        return execute(cfg, run_dir, [log, Stopper()], control, system_interval=None,
                       trainer_options={"progress_interval": 0.0})
    finally:
        log.close()


@pytest.mark.parametrize("held", [True, False], ids=["held", "streamed"])
def test_an_image_folder_run_resumes_exactly(tree, tmp_path, held):
    root, _ = tree
    options = {} if held else {"memory_budget": 1e-6, "workers": 0}
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert _run(root, tmp_path / "data", reference, None, **options).status == "finished"
    assert _run(root, tmp_path / "data", stopped, 3, **options).status == "interrupted"
    assert load(stopped / "last.pth")["step_in_epoch"] >= 3  # stopped mid-epoch
    code, out, err = cli_main(["resume", stopped, "--headless"])
    assert code == 0, out + err
    assert epoch_metrics(stopped) == epoch_metrics(reference)
    assert_same_tensors(load(stopped / "last.pth")["model_state_dict"],
                        load(reference / "last.pth")["model_state_dict"], "final weights")


def test_resume_refuses_a_folder_whose_files_changed(tree, tmp_path):
    root, _ = tree
    run_dir = tmp_path / "run"
    assert _run(root, tmp_path / "data", run_dir, 3).status == "interrupted"
    write_images(root, 11, seed=9)  # one more image in each class
    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2 and "changed since this run started (24 training / 6 validation images then" in err
    assert snapshot(run_dir) == before
    assert of(run_dir, "RunStarted")  # the first session's events are still all there
