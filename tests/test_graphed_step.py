"""The captured training step's logic on the CPU: GraphedStep through its seam (EagerReplay keeps
the step function at "capture" and runs it at each "replay"), so its static input buffers, its
warm-up and capture, the eager partial batch, the device-side metric ring and the LR written into
device tensors all run here. What a real CUDA graph adds is tested in test_graphed_step_gpu.py.

The yardstick is the eager engine (--cuda-graphs off): the same run must give bit-identical
weights, losses and accuracies."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tui_trainer.data.loader import TensorLoader  # noqa: E402
from tui_trainer.engine import Trainer  # noqa: E402
from tui_trainer.engine.graphed_step import DeviceMetricRing, EagerReplay  # noqa: E402
from tui_trainer.engine.lr_schedules import schedule_for_run  # noqa: E402
from tui_trainer.engine.metric_window import MetricWindow  # noqa: E402

BATCH = 16
SAMPLES = 70  # 4 full batches and a partial one of 6 an epoch


class Recorder:
    def __init__(self, on_step=None) -> None:
        self.events = []
        self.on_step = on_step

    def emit(self, event) -> None:
        self.events.append(event)
        if self.on_step is not None and type(event).__name__ == "StepProgress":
            self.on_step(event)

    def of(self, name: str) -> list:
        return [e for e in self.events if type(e).__name__ == name]


def make_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 3))


def make_optimizer(kind: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    if kind == "adamw_plain":  # as the CPU builds it: not fused
        return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, fused=True)
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[kind]
    return cls(model.parameters(), lr=1e-2, weight_decay=0.01, fused=True)


def train(blobs, *, mode: str, backend=None, optimizer: str = "adamw", scheduler: str = "none", amp: str = "off",
          epochs: int = 2, halve_lr_at: tuple[int, int] | None = (1, 3), save_dir=None, resume_from=None,
          hook=None):
    """A tiny run; `halve_lr_at` (epoch, step): the LR key `-` pressed as that step is reported."""
    x, y = blobs(SAMPLES, 8, 3, seed=3)
    loader = TensorLoader(x, y, BATCH, shuffle=True, seed=5)
    val = TensorLoader(*blobs(32, 8, 3, seed=4), 32)
    model = make_model()
    if hook is not None:
        model[0].register_forward_pre_hook(hook)
    opt = make_optimizer(optimizer, model)
    control_box = {}

    def press(event):
        if halve_lr_at is not None and (event.epoch, event.step) == halve_lr_at:
            control_box["trainer"].control.scale_lr(0.5)

    sink = Recorder(press)
    trainer = Trainer(model, loader, val, torch.nn.CrossEntropyLoss(), opt, "cpu", save_dir=save_dir, sinks=[sink],
                      cuda_graphs=mode, capture_backend=backend, checkpoint_every=1 if save_dir else 0, amp=amp,
                      progress_interval=0.0)
    control_box["trainer"] = trainer
    if resume_from is not None:
        trainer.load_state_dict(torch.load(resume_from, weights_only=True))
    steps = trainer.steps_per_epoch()
    trainer.fit(epochs, schedule_for_run(scheduler, epochs, steps))
    return model, trainer, sink


def step_metrics(sink: Recorder) -> list[tuple]:
    return [(e.epoch, e.step, e.loss, e.acc, e.lr) for e in sink.of("StepProgress")]


@pytest.mark.parametrize("optimizer, scheduler, amp", [
    ("adamw", "none", "off"),
    ("adamw", "onecycle", "off"),  # the LR moves every step
    ("adam", "cosine", "bf16"),
    ("sgd", "onecycle", "off"),
])
def test_the_captured_path_gives_the_eager_engines_numbers_bit_for_bit(blobs, one_torch_thread, optimizer,
                                                                       scheduler, amp):
    eager_model, eager, eager_sink = train(blobs, mode="off", optimizer=optimizer, scheduler=scheduler, amp=amp)
    backend = EagerReplay()
    model, graphed, sink = train(blobs, mode="on", backend=backend, optimizer=optimizer, scheduler=scheduler, amp=amp)

    assert next(iter(sink.of("RunStarted"))).training_step.startswith("captured as a CUDA graph")
    assert not next(iter(eager_sink.of("RunStarted"))).training_step  # eager on a CPU: nothing to say
    for ours, theirs in zip(model.state_dict().values(), eager_model.state_dict().values()):
        assert torch.equal(ours, theirs)
    assert step_metrics(sink) == step_metrics(eager_sink)  # per-step loss, accuracy and LR, as reported
    assert graphed.train_losses == eager.train_losses and graphed.val_losses == eager.val_losses
    assert graphed.train_accs == eager.train_accs
    assert graphed.global_step == eager.global_step == 10
    # the manual halving landed at the same step boundary on both
    changes = [(e.epoch, e.step, e.new_lr) for e in sink.of("LrChanged")]
    assert changes == [(e.epoch, e.step, e.new_lr) for e in eager_sink.of("LrChanged")] and changes
    # captured once (after 3 warm-up steps on the first 3 full batches); the other full batches
    # replayed; each epoch's partial batch of 6 ran eagerly
    assert backend.captures == 1
    assert backend.replays == 2 * 4 - 3


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_with_the_lr_in_device_tensors_the_run_follows_the_same_schedule(blobs, one_torch_thread, optimizer):
    """As on a GPU, the LR is a float32 tensor the step reads: the same schedule and the same
    manual change, so the same numbers up to the LR's float32 rounding."""
    eager_model, eager, eager_sink = train(blobs, mode="off", optimizer=optimizer, scheduler="onecycle")
    model, graphed, sink = train(blobs, mode="on", backend=EagerReplay(device_lr=True), optimizer=optimizer,
                                 scheduler="onecycle")
    assert [e[4] for e in step_metrics(sink)] == [e[4] for e in step_metrics(eager_sink)]  # the LRs reported
    assert [(e.epoch, e.step, e.new_lr) for e in sink.of("LrChanged")] == \
        [(e.epoch, e.step, e.new_lr) for e in eager_sink.of("LrChanged")]
    for ours, theirs in zip(model.state_dict().values(), eager_model.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert graphed.train_losses == pytest.approx(eager.train_losses, rel=1e-5)


def test_every_full_batch_reaches_the_step_through_the_same_static_buffer(blobs, one_torch_thread):
    seen = []

    def hook(module, args):
        seen.append((args[0].shape[0], args[0].data_ptr()))

    train(blobs, mode="on", backend=EagerReplay(), hook=hook, halve_lr_at=None)
    training = [s for s in seen if s[0] in (BATCH, SAMPLES - 4 * BATCH)]  # validation batches are 32
    full = {ptr for size, ptr in training if size == BATCH}
    partial = {ptr for size, ptr in training if size != BATCH}
    assert len(full) == 1  # a real graph reads its inputs from fixed addresses
    assert len([1 for size, _ in training if size != BATCH]) == 2 and full.isdisjoint(partial)


def test_a_captured_run_resumes_from_its_checkpoint_to_the_same_weights(blobs, one_torch_thread, tmp_path):
    """The checkpoint of a captured run (its optimizer's LR a tensor) loads with weights_only=True
    and continues exactly: the LR halved in epoch 1 stays halved."""
    backend = EagerReplay(device_lr=True)
    straight, _, _ = train(blobs, mode="on", backend=backend, epochs=3, save_dir=tmp_path / "a")
    train(blobs, mode="on", backend=EagerReplay(device_lr=True), epochs=1, save_dir=tmp_path / "b")
    resumed, trainer, sink = train(blobs, mode="on", backend=EagerReplay(device_lr=True), epochs=3,
                                   save_dir=tmp_path / "c", resume_from=tmp_path / "b" / "checkpoint_epoch_1.pth",
                                   halve_lr_at=None)
    assert trainer.epoch == 3 and backend.captures == 1
    assert {e.lr for e in sink.of("StepProgress")} == {5e-3}
    for ours, theirs in zip(resumed.state_dict().values(), straight.state_dict().values()):
        assert torch.equal(ours, theirs)


def test_the_device_metric_ring_reads_what_the_metric_window_reads():
    torch.manual_seed(0)
    ring, window = DeviceMetricRing(torch.device("cpu"), capacity=8), MetricWindow()
    for size in (5, 5, 3):
        out, y = torch.randn(size, 4), torch.randint(0, 4, (size,))
        loss = torch.nn.functional.cross_entropy(out, y)
        ring.record(loss, out, y)
        ring.note(size)
        window.add(loss, out, y)
    assert (len(ring), ring.samples) == (3, 13)
    assert ring.read() == window.read()
    assert (len(ring), ring.samples, ring.read()) == (0, 0, ([], [], 0))  # a read empties it, index too
    ring.record(torch.tensor(2.5), torch.eye(2), torch.tensor([0, 0]))
    ring.note(2)
    assert ring.read() == ([2.5], [2], 1)


def test_the_lr_owner_writes_device_tensors_in_place_and_reads_no_device():
    from tui_trainer.engine.learning_rate import LearningRate
    from tui_trainer.engine.train_state import TrainState

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    lr = LearningRate(opt, schedule_for_run("cosine", 10, 5))
    lr.use_device_tensors(torch.device("cpu"))
    tensor = opt.param_groups[0]["lr"]
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    state = TrainState()
    state.epoch = 5
    lr.apply(state)
    assert opt.param_groups[0]["lr"] is tensor  # the same memory a graph reads
    assert tensor.item() == pytest.approx(0.05, rel=1e-6)
    assert isinstance(lr.current, float) and lr.current == pytest.approx(0.05)
    old, new = lr.scale(state, 0.5)
    assert (old, new) == (pytest.approx(0.05), pytest.approx(0.025)) and tensor.item() == pytest.approx(0.025)


def test_the_system_monitor_reads_on_its_own_thread_never_the_training_one(monkeypatch):
    """NVML (and psutil) are read by the sampler's thread: nothing the training thread waits on.
    On a GPU, test_graphed_step_gpu.py checks the same while captured steps run."""
    import threading
    import time

    from tui_trainer.engine import system

    threads = []
    original = system.GpuReader.read

    def recording_read(self):
        threads.append(threading.current_thread())
        return original(self)

    monkeypatch.setattr(system.GpuReader, "read", recording_read)
    samples = []
    sampler = system.SystemSampler(samples.append, interval=0.01).start()
    deadline = time.monotonic() + 5
    while not samples and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert samples and threads
    assert all(t is not threading.main_thread() and t.name == "tui-trainer-system" for t in threads)


class FailingCapture(EagerReplay):
    """A backend whose capture raises, as torch does for an op that cannot be captured."""

    def capture(self, fn) -> None:
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")


def test_a_failed_capture_is_a_notice_and_the_run_trains_on_eagerly_with_the_same_numbers(blobs, one_torch_thread):
    eager_model, eager, _ = train(blobs, mode="off")
    backend = FailingCapture()
    model, graphed, sink = train(blobs, mode="on", backend=backend)
    notices = [e.message for e in sink.of("Notice")]
    assert notices == ["training step: capturing it as a CUDA graph failed (RuntimeError: operation not permitted "
                       "when stream is capturing); training eagerly from here on"]
    assert backend.replays == 0
    for ours, theirs in zip(model.state_dict().values(), eager_model.state_dict().values()):
        assert torch.equal(ours, theirs)
    assert graphed.train_losses == eager.train_losses


def test_a_short_batch_seen_first_does_not_fix_the_buffers(blobs, one_torch_thread):
    """A run resumed just before an epoch's short last batch sees that one first: the full
    batches after it are still captured and replayed, and the short ones run eagerly."""
    from tui_trainer.engine.graphed_step import GraphedStep
    from tui_trainer.engine.learning_rate import LearningRate
    from tui_trainer.engine.precision import Precision
    from tui_trainer.engine.train_state import TrainState

    model = make_model()
    opt = make_optimizer("adamw", model)
    backend = EagerReplay()
    part = GraphedStep(model=model, criterion=torch.nn.CrossEntropyLoss(), optimizer=opt, clip=1.0,
                       lr=LearningRate(opt), precision=Precision("fp32", "cpu"), device=torch.device("cpu"),
                       backend=backend)
    x, y = blobs(6 + 5 * BATCH + 6, 8, 3, seed=3)
    sizes = [6] + [BATCH] * 5 + [6]
    state, window = TrainState(), part.start_epoch()
    start = 0
    for step, size in enumerate(sizes, 1):
        part(state, x[start:start + size], y[start:start + size], window, step, len(sizes))
        start += size
    assert (backend.captures, backend.replays, part.eager_steps) == (1, 2, 1)
    losses, read_sizes, _ = window.read()
    assert read_sizes == sizes and len(losses) == 7 and state.global_step == 7


def test_a_run_resumed_with_a_fused_optimizer_stays_fused_and_is_captured(blobs, one_torch_thread, tmp_path):
    """`resume RUN --device cuda` of a run trained on the CPU: the optimizer is built fused on the
    GPU, and the checkpoint's groups (written by a plain optimizer) must not turn that off; how the
    optimizer runs belongs to this process, not to the file. The step is still captured."""
    train(blobs, mode="off", optimizer="adamw_plain", epochs=1, save_dir=tmp_path / "cpu", halve_lr_at=None)
    backend = EagerReplay(device_lr=True)
    _, trainer, sink = train(blobs, mode="on", backend=backend, epochs=2, save_dir=tmp_path / "gpu",
                             resume_from=tmp_path / "cpu" / "checkpoint_epoch_1.pth", halve_lr_at=None)
    assert sink.of("RunStarted")[0].training_step.startswith("captured as a CUDA graph")
    assert backend.captures == 1 and trainer.epoch == 2


class MeanOverLength(torch.nn.Module):
    """A model for batches of sequences whose length varies from batch to batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(x.mean(dim=2))


def test_batches_of_varying_shapes_are_said_to_train_eagerly(blobs, one_torch_thread):
    """A loader with a fixed batch size whose batches differ in another dimension (sequences
    padded per batch): the captured step takes one shape, every other batch trains eagerly, and
    the run says so rather than claiming a captured step it mostly does not run."""
    x, y = blobs(96, 8, 3, seed=3)
    lengths = [4, 4, 4, 4, 5, 6]  # 6 batches of 16: 3 warm-up steps and the capture take length 4

    class Padded(torch.utils.data.DataLoader):
        def __iter__(self):
            for i, (xb, yb) in enumerate(super().__iter__()):
                yield xb.unsqueeze(2).expand(-1, -1, lengths[i]).contiguous(), yb

    loader = Padded(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    vx, vy = blobs(32, 8, 3, seed=4)
    val = TensorLoader(vx.unsqueeze(2), vy, 32)
    sink = Recorder()
    backend = EagerReplay()
    model = MeanOverLength()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    trainer = Trainer(model, loader, val, torch.nn.CrossEntropyLoss(), opt, "cpu", save_dir=None, sinks=[sink],
                      cuda_graphs="on", capture_backend=backend, checkpoint_every=0, progress_interval=0.0)
    trainer.fit(1, None)
    assert (backend.captures, backend.replays) == (1, 1)  # batch 4 captured (and replayed); 5 and 6 differ
    notices = [e.message for e in sink.of("Notice") if e.message.startswith("training step")]
    assert notices == ["training step: batch 6 of epoch 1 has shape 16x8x6, not the captured step's 16x8x4; "
                       "batches of another shape than the captured one train eagerly"]
