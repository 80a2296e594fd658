"""The captured step on a real CUDA GPU (skipped without one): the same numbers as the eager
step from the same seed, no host sync inside either step (torch.cuda.set_sync_debug_mode
"error"), and the system monitor's NVML reads off the training thread while steps run.

These have never run in this project's CI (it has no GPU): they are what a GPU run checks
before `--cuda-graphs auto` may capture (engine/capture.py, CAPTURE_VERIFIED_ON_GPU)."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from tui_trainer.data.loader import TensorLoader  # noqa: E402
from tui_trainer.engine import Trainer  # noqa: E402
from tui_trainer.engine.epoch import EagerStep, OptimizerStep  # noqa: E402
from tui_trainer.engine.graphed_step import GraphedStep  # noqa: E402
from tui_trainer.engine.learning_rate import LearningRate  # noqa: E402
from tui_trainer.engine.lr_schedules import schedule_for_run  # noqa: E402
from tui_trainer.engine.precision import Precision  # noqa: E402
from tui_trainer.engine.process import SingleProcess  # noqa: E402
from tui_trainer.engine.train_state import TrainState  # noqa: E402

DEVICE = torch.device("cuda")


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)  # no dropout: captured and eager draw no random numbers
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(32, 10)).to(DEVICE)


def data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 3, 16, 16, generator=g) + y.view(-1, 1, 1, 1).float() / 5
    return x, y


def fit(mode: str, amp: str, optimizer: str = "adamw"):
    model = small_cnn()
    opt = (torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, fused=True) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, fused=True))
    events = []

    class Sink:
        def emit(self, event):
            events.append(event)

    train = TensorLoader(*data(600, 1), 64, shuffle=True, seed=2, device=DEVICE)  # 9 full batches + 24
    val = TensorLoader(*data(256, 3), 128, device=DEVICE)
    trainer = Trainer(model, train, val, torch.nn.CrossEntropyLoss(), opt, DEVICE, save_dir=None, sinks=[Sink()],
                      cuda_graphs=mode, amp=amp, checkpoint_every=0)
    trainer.fit(4, schedule_for_run("onecycle", 4, trainer.steps_per_epoch()))
    started = next(e for e in events if type(e).__name__ == "RunStarted")
    return model, trainer, started


@pytest.mark.parametrize("amp, optimizer", [("off", "adamw"), ("bf16", "adamw"), ("off", "sgd")])
def test_captured_and_eager_runs_from_one_seed_agree(amp, optimizer):
    eager_model, eager, eager_started = fit("off", amp, optimizer)
    model, captured, started = fit("on", amp, optimizer)
    assert started.training_step.startswith("captured as a CUDA graph"), started.training_step
    assert eager_started.training_step.startswith("eager (--cuda-graphs off")
    tol = dict(rtol=2e-2, atol=2e-3) if amp == "bf16" else dict(rtol=1e-3, atol=1e-5)
    for ours, theirs in zip(model.state_dict().values(), eager_model.state_dict().values()):
        if ours.is_floating_point():
            torch.testing.assert_close(ours, theirs, **tol)
    assert captured.train_losses == pytest.approx(eager.train_losses, rel=tol["rtol"])
    assert abs(captured.val_accs[-1] - eager.val_accs[-1]) <= 2.0  # percent: the same accuracy within noise
    print(f"\n{amp}/{optimizer}: val acc captured {captured.val_accs} vs eager {eager.val_accs}; "
          f"train loss {captured.train_losses} vs {eager.train_losses}")


def steps_without_sync(kind: str) -> tuple[list[float], list[int], int]:
    """Warm up (and capture) outside the check, then train on full batches and one partial
    batch, with LR changes at step boundaries, under set_sync_debug_mode("error")."""
    model = small_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, fused=True)
    lr = LearningRate(opt, schedule_for_run("cosine", 10, 10))
    state = TrainState()
    x, y = data(64 * 8 + 24, 5)
    batches = [(x[i:i + 64].to(DEVICE), y[i:i + 64].to(DEVICE)) for i in range(0, len(x), 64)]
    criterion = torch.nn.CrossEntropyLoss()
    if kind == "captured":
        part = GraphedStep(model=model, criterion=criterion, optimizer=opt, clip=1.0, lr=lr,
                           precision=Precision("fp32", "cuda"), device=DEVICE)
    else:
        part = EagerStep(model=model, criterion=criterion, optimizer_step=OptimizerStep(model, opt, None, 1.0, lr),
                         scaler=None, autocast=Precision("fp32", "cuda").autocast, process=SingleProcess(),
                         accum_steps=1, skip_nan=False)
    lr.apply(state)
    window = part.start_epoch()
    checked_from = 5  # the warm-up steps and the capture may synchronise; the steps after it may not
    try:
        for step, (bx, by) in enumerate(batches, 1):
            if step == checked_from:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            part(state, bx, by, window, step, len(batches))
            if step % 3 == 0:
                lr.scale(state, 0.9)  # what the LR keys do at a step boundary
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return window.read()


@pytest.mark.parametrize("kind", ["eager", "captured"])
def test_no_host_sync_inside_the_steps(kind):
    losses, sizes, correct = steps_without_sync(kind)
    assert sizes == [64] * 8 + [24] and len(losses) == 9 and 0 <= correct <= 536


def test_the_system_monitor_reads_nvml_off_the_training_thread_while_steps_run(monkeypatch):
    from tui_trainer.engine import system

    reads = []
    original = system.GpuReader.read

    def recording_read(self):
        reads.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(system.GpuReader, "read", recording_read)
    samples = []
    sampler = system.SystemSampler(samples.append, interval=0.01).start()
    try:
        steps_without_sync("captured")  # NVML is the driver's, not a CUDA stream's: no sync flagged
    finally:
        sampler.stop()
    assert reads and set(reads) == {"tui-trainer-system"}
    assert samples and all(s.gpus for s in samples)
