"""Scripted runs: fixed event lists that drive the console through the same reducer as a live
run, for the snapshot tests. No clocks, no live readings, no randomness: every value is
computed from the arguments.

The numbers are ones the program could produce: SimpleCNN's real parameter count on 3x32x32
input (tests/tui/test_scenes.py builds the model to check it), the best epoch chosen as the
engine chooses it by default (the lowest validation loss, `--monitor val_loss`), early stopping
counting from that same epoch, events in the order the engine emits them, the LR the cosine
schedule gives at each step, manual changes carried forward. The GPU readings exist only to test the GPU panel; the README's
pictures come from recorded real runs (scripts/make_screenshots.py), never from these scenes.
"""

from __future__ import annotations

import math

from ... import events as ev
from ...catalog import CIFAR10_CLASSES

T0 = 1_800_000_000.0  # a fixed wall-clock origin
EPOCH_SECONDS = 6.0
STEPS = 391
SIMPLECNN_CIFAR_PARAMS = 508_426  # SimpleCNN(num_classes=10, in_channels=3)


def _curve(epoch: int) -> tuple[float, float, float, float]:
    """Plausible CIFAR-10 curves for SimpleCNN: train/val loss and accuracy at an epoch."""
    train_loss = 0.45 + 1.35 * math.exp(-epoch / 9.0)
    val_loss = 0.58 + 1.05 * math.exp(-epoch / 8.0) + 0.004 * max(0, epoch - 30) + 0.03 * math.sin(epoch * 1.7)
    train_acc = 100 - 16 - 50 * math.exp(-epoch / 9.0)
    val_acc = 100 - 19 - 45 * math.exp(-epoch / 8.0) + 0.8 * math.sin(epoch * 1.3)
    return train_loss, train_acc, val_loss, val_acc


def _cosine(lr: float, epoch: float, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * epoch / total))


def system_sample(t: float, gpu: bool, ranks: int = 1) -> ev.SystemSample:
    gpus = ()
    if gpu:
        gpus = (
            ev.GpuSample(index=0, name="NVIDIA A100-SXM4-40GB", utilization=97.0, memory_used=int(9.3 * 2**30),
                         memory_total=int(40 * 2**30), temperature=71.0, power_draw=312.0, power_limit=400.0),
            ev.GpuSample(index=1, name="NVIDIA A100-SXM4-40GB", utilization=12.0, memory_used=int(36.8 * 2**30),
                         memory_total=int(40 * 2**30), temperature=88.0, power_draw=95.0, power_limit=400.0),
        )
    rates = tuple(4_600.0 - 150.0 * r for r in range(ranks)) if ranks > 1 else ()
    return ev.SystemSample(t=t, cpu_percent=38.5, ram_used=int(21.4 * 2**30), ram_total=int(62.7 * 2**30),
                           process_rss=int(3.1 * 2**30), gpus=gpus, gpu_error="" if gpu else "no GPU",
                           rank_samples_per_sec=rates)


def cifar_run(epochs_done: int = 12, step: int = 180, *, num_epochs: int = 100, gpu: bool = True,
              patience: int = 15, paused: bool = False, stop: str | None = None,
              plateau_at: int | None = None, manual_lr_at: int | None = None, ranks: int = 1) -> list[ev.Event]:
    """A CIFAR-10 run: `epochs_done` full epochs, then `step` steps into the next one.

    stop: None (still running), "early" (trains until early stopping triggers, as the engine
    would, ignoring `epochs_done`; the final report follows) or "user" (the user stopped after
    `epochs_done` epochs; the report follows). manual_lr_at: the user halved the LR at the end
    of that epoch; every later LR is half the schedule's.
    """
    lr0 = 1e-3
    events: list[ev.Event] = []
    t = T0

    def add(event_cls, **kw):
        events.append(event_cls(t=t, **kw))

    for stage in ("loading torch", "loading data", "building model"):
        add(ev.Preparing, stage=stage)
        t += 1.5
    plan = tuple((float(e), _cosine(lr0, e, num_epochs)) for e in range(num_epochs + 1))
    add(ev.RunStarted, run_name="cifar10-simplecnn-20270115-093000", run_dir="runs/cifar10-simplecnn-20270115-093000",
        dataset="cifar10", model="simplecnn", num_params=SIMPLECNN_CIFAR_PARAMS, device="cuda:0" if gpu else "cpu",
        device_name="NVIDIA A100-SXM4-40GB" if gpu else "cpu", precision="bf16" if gpu else "fp32",
        num_epochs=num_epochs, start_epoch=0, steps_per_epoch=STEPS, batch_size=128, accum_steps=1,
        train_size=50_000, val_size=10_000, num_classes=10, class_names=CIFAR10_CLASSES, optimizer="AdamW",
        lr=lr0, scheduler="plateau" if plateau_at else "cosine", weight_decay=0.01,
        lr_plan=() if plateau_at else plan, patience=patience, min_delta=0.0, restore_best=True,
        clip_grad=1.0, checkpoint_every=10, seed=0, world_size=ranks, monitor="val_loss")
    add(ev.Notice, level="info", message="data on the GPU: 50,000 training images, augmentation in batches")
    # the best epoch: the lowest val_loss (ties: the higher val_acc), as the engine's default
    best_epoch, best_loss, best_acc, counter = 0, math.inf, -1.0, 0
    lr = lr0
    manual = 1.0  # the product of the manual LR changes so far
    epoch_seconds = EPOCH_SECONDS if gpu else 26.0
    rate = 50_000 / (epoch_seconds * 0.9)
    last_epoch = num_epochs if stop == "early" else epochs_done
    for epoch in range(1, last_epoch + 1):
        add(ev.EpochStarted, epoch=epoch, num_epochs=num_epochs, steps=STEPS)
        tl, ta, vl, va = _curve(epoch)
        epoch_lr = lr if plateau_at else _cosine(lr0, epoch - 1, num_epochs) * manual
        for i, s in enumerate((130, 260, STEPS)):  # progress lines within the epoch
            t += epoch_seconds * 0.9 / 3
            wobble = 0.06 * math.sin(epoch * 2.1 + i * 1.3)
            add(ev.StepProgress, epoch=epoch, step=s, steps=STEPS, samples=min(50_000, s * 128),
                loss=tl + wobble, acc=ta - 50 * wobble, epoch_loss=tl, epoch_acc=ta, lr=epoch_lr,
                samples_per_sec=rate, elapsed=t - T0 - 4.5)
        if manual_lr_at and epoch == manual_lr_at:  # `-` pressed during the epoch's last step
            add(ev.LrChanged, epoch=epoch, step=STEPS, old_lr=epoch_lr, new_lr=epoch_lr / 2, reason="manual")
            manual /= 2
        add(ev.ValidationStarted, epoch=epoch, steps=20)
        t += epoch_seconds * 0.1
        if plateau_at and epoch == plateau_at:  # the scheduler steps before the epoch's end is told
            add(ev.LrChanged, epoch=epoch, step=STEPS, old_lr=lr, new_lr=lr / 2, reason="plateau")
            lr /= 2
        is_best = vl < best_loss or (vl == best_loss and va > best_acc)
        if is_best:
            best_epoch, best_loss, best_acc, counter = epoch, vl, va, 0
        else:
            counter += 1
        add(ev.EpochEnd, epoch=epoch, num_epochs=num_epochs, train_loss=tl, train_acc=ta, val_loss=vl, val_acc=va,
            lr=epoch_lr, epoch_time=epoch_seconds, train_time=epoch_seconds * 0.9, val_time=epoch_seconds * 0.1,
            samples_per_sec=rate, is_best=is_best, best_epoch=best_epoch, best_val_acc=best_acc,
            best_val_loss=best_loss, monitor="val_loss")
        triggered = counter >= patience
        add(ev.EarlyStopUpdate, epoch=epoch, counter=counter, patience=patience, best_score=best_loss,
            best_epoch=best_epoch, min_delta=0.0, monitor="val_loss", improved=is_best, triggered=triggered)
        if is_best:
            add(ev.CheckpointSaved, epoch=epoch, kind="best", path="runs/x/best_model.pth")
        if epoch % 10 == 0:
            add(ev.CheckpointSaved, epoch=epoch, kind="periodic", path=f"runs/x/checkpoint_epoch_{epoch}.pth")
        add(ev.CheckpointSaved, epoch=epoch, kind="last", path="runs/x/last.pth")
        if epoch % 3 == 0:
            add(ev.SystemSample, **{k: v for k, v in vars(system_sample(t, gpu, ranks)).items() if k != "t"})
        if triggered:
            break
    epochs_done = epoch if last_epoch else 0
    if stop is None and step:
        epoch = epochs_done + 1
        add(ev.EpochStarted, epoch=epoch, num_epochs=num_epochs, steps=STEPS)
        tl, ta, _, _ = _curve(epoch)
        shown = 0
        for i in range(1, 41):
            s = min(step, round(step * i / 40))
            if s <= shown:
                continue
            shown = s
            t += epoch_seconds * 0.9 * (step / STEPS) / 40
            wobble = 0.08 * math.sin(i * 0.9) + 0.03 * math.cos(i * 2.3)
            add(ev.StepProgress, epoch=epoch, step=s, steps=STEPS, samples=s * 128, loss=tl + wobble,
                acc=ta - 60 * wobble, epoch_loss=tl, epoch_acc=ta,
                lr=lr if plateau_at else _cosine(lr0, epoch - 1, num_epochs) * manual,
                samples_per_sec=rate, elapsed=t - T0 - 4.5)
        add(ev.SystemSample, **{k: v for k, v in vars(system_sample(t, gpu, ranks)).items() if k != "t"})
        if paused:
            add(ev.Paused, epoch=epoch, step=step)
            t += 95.0
    if stop is not None:
        if stop == "user":
            add(ev.StopRequested, reason="user")
        add(ev.Notice, level="info", message=f"loaded the best model (epoch {best_epoch}, val_loss {best_loss:.4f}, "
                                             f"val acc {best_acc:.2f}%)")
        t += 3.0
        add(ev.EvaluationReport, **report_fields(best_epoch, best_acc / 100, best_loss))
        add(ev.RunFinished, status="early_stopped" if stop == "early" else "stopped", epochs_completed=epochs_done,
            best_epoch=best_epoch, best_val_acc=best_acc, elapsed=t - T0, last_checkpoint="runs/x/last.pth",
            best_val_loss=best_loss, monitor="val_loss")
    return events


def report_fields(best_epoch: int, accuracy: float, loss: float = 0.6123) -> dict:
    """A CIFAR-10-like confusion matrix near `accuracy` (cats and dogs confused, as they are);
    the final evaluation is of the best epoch's weights, so its loss is that epoch's."""
    n = 10
    confusions = {(3, 5): 112, (5, 3): 95, (1, 9): 38, (9, 1): 44, (2, 4): 41, (4, 2): 37, (0, 8): 36,
                  (8, 0): 29, (3, 6): 33, (4, 7): 30, (7, 4): 26, (6, 3): 21, (2, 6): 25, (5, 7): 22}
    base = [[0 if i == j else confusions.get((i, j), 1 + (i * 7 + j * 3) % 6) for j in range(n)] for i in range(n)]
    scale = (1.0 - accuracy) * 1000 * n / sum(map(sum, base))
    cm = [[round(v * scale) for v in row] for row in base]
    for i in range(n):
        cm[i][i] = 1000 - sum(cm[i])
    support = [sum(row) for row in cm]
    predicted = [sum(cm[i][j] for i in range(n)) for j in range(n)]
    precision = [cm[j][j] / predicted[j] for j in range(n)]
    recall = [cm[i][i] / support[i] for i in range(n)]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    total = sum(support)
    weighted = lambda xs: sum(x * s for x, s in zip(xs, support)) / total  # noqa: E731
    return dict(split="validation", loss=loss, accuracy=sum(cm[i][i] for i in range(n)) / total,
                precision=weighted(precision), recall=weighted(recall), f1=weighted(f1),
                macro_precision=sum(precision) / n, macro_recall=sum(recall) / n, macro_f1=sum(f1) / n,
                class_names=CIFAR10_CLASSES, per_class_precision=tuple(precision), per_class_recall=tuple(recall),
                per_class_f1=tuple(f1), support=tuple(support), confusion_matrix=tuple(tuple(r) for r in cm),
                best_epoch=best_epoch)


SCENES = {
    "running": lambda: cifar_run(12, 180, gpu=True),
    "running-cpu": lambda: cifar_run(12, 180, gpu=False),
    "running-2-ranks": lambda: cifar_run(12, 180, gpu=True, ranks=2),
    "paused": lambda: cifar_run(12, 180, gpu=True, paused=True, manual_lr_at=7),
    "early-stopped": lambda: cifar_run(38, 0, gpu=True, stop="early"),
    "stopped": lambda: cifar_run(9, 0, gpu=False, stop="user", plateau_at=6),
    "preparing": lambda: cifar_run(0, 0)[:2],
}
