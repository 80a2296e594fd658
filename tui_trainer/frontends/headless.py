"""The headless view: clean log lines (or JSON lines) for files, pipes and job schedulers.

No ANSI escapes and no carriage returns: every line is complete and ends with a newline.
Within long epochs a progress line appears at most every `progress_every` seconds.
"""

from __future__ import annotations

import sys
from typing import Callable, TextIO

from .. import events as ev
from .. import fmt
from ..describe import checkpoint_place, describe
from ..event_io import printable_event
from ..state import RunState, reduce
from ..vocab import Status

EPOCH_HEADER = (f"{'epoch':>9}  {'train_loss':>10}  {'train_acc':>9}  {'val_loss':>9}  {'val_acc':>8}  "
                f"{'lr':>9}  {'time':>7}  {'samples/s':>9}")


class HeadlessPrinter:
    def __init__(self, stream: TextIO | None = None, log_format: str = "text", progress_every: float = 5.0,
                 resume_hint: Callable[[str], str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        # how to continue an interrupted run in RUN_DIR (a script's runs resume from the script)
        self.resume_hint = resume_hint or (lambda run_dir: f"tui-trainer resume {run_dir}")
        self.json = log_format == "json"
        self.progress_every = progress_every
        self.state = RunState()
        self._last_progress_t: float | None = None
        self._header_printed = False
        self._started = False
        self.showed_failure = False  # the CLI reports a failure on stderr unless the log showed it

    def _print(self, text: str = "") -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away (| head); training carries on

    def emit(self, event: ev.Event) -> None:
        if self.json:
            self.state = reduce(self.state, event)
            self._print(ev.to_json(event))  # JSON escapes control characters itself
            return
        event = printable_event(event)  # a run name with a newline or an escape sequence stays one line
        self.state = reduce(self.state, event)
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    # ----- text lines -----
    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        p = self._print
        self._started = True
        what = "resuming" if e.resumed else "training"
        p(f"tui-trainer: {what} run {e.run_name}")
        if e.run_dir:
            p(f"  run dir    {e.run_dir}")
        gpu = f" [{e.device_name}]" if e.device_name and e.device_name != e.device else ""
        ws = f", {e.world_size} processes" if e.world_size > 1 else ""
        p(f"  device     {e.device}{gpu}, precision {e.precision}{ws}")
        # a script's Trainer given neither class_names nor num_classes learns the count only
        # from its first validation: no "0 classes" before then
        classes = f", {e.num_classes} classes" if e.num_classes else ""
        p(f"  data       {e.dataset}: {e.train_size:,} train / {e.val_size:,} validation{classes}")
        p(f"  model      {e.model}, {e.num_params:,} parameters")
        recipe = (f"{e.optimizer} lr {fmt.lr(e.lr)} wd {e.weight_decay:g}, scheduler {e.scheduler}, batch {e.batch_size}"
                  + (f" x {e.accum_steps} accumulated" if e.accum_steps > 1 else "")
                  + f", {fmt.plural(e.num_epochs, 'epoch')} ({fmt.plural(e.steps_per_epoch, 'step')} each)"
                  + (f", clip {e.clip_grad:g}" if e.clip_grad else ", no clipping"))
        p(f"  recipe     {recipe}")
        if e.training_step:
            p(f"  step       {e.training_step}")
        if e.patience:
            p(f"  early stop patience {e.patience} on {e.monitor} (min_delta {e.min_delta:g})"
              + (", restores best weights" if e.restore_best else ""))
        if e.resumed:
            p(f"  resuming after epoch {e.start_epoch}")
        self._header_printed = False

    def _on_EpochStarted(self, e: ev.EpochStarted) -> None:
        self._last_progress_t = e.t

    def _on_StepProgress(self, e: ev.StepProgress) -> None:
        if self._last_progress_t is None:
            self._last_progress_t = e.t
        if e.t - self._last_progress_t < self.progress_every:
            return
        self._last_progress_t = e.t
        skipped = f"  skipped {e.skipped}" if e.skipped else ""
        self._print(f"  [epoch {e.epoch}/{self.state.num_epochs}] step {e.step}/{e.steps}  loss {fmt.metric(e.epoch_loss)}  "
                    f"acc {e.epoch_acc:.2f}%  {fmt.rate(e.samples_per_sec)}  ETA {fmt.duration(self.state.eta)}"
                    + skipped)

    def _on_EpochEnd(self, e: ev.EpochEnd) -> None:
        if not self._header_printed:
            self._print(EPOCH_HEADER)
            self._header_printed = True
        mark = "  * best" if e.is_best else ""
        if e.skipped:
            mark += f"  ({e.skipped} skipped)"
        sps = f"{e.samples_per_sec:,.0f}" if e.samples_per_sec else "--"
        self._print(f"{f'{e.epoch}/{e.num_epochs}':>9}  {fmt.metric(e.train_loss, 10):>10}  {e.train_acc:8.2f}%  "
                    f"{fmt.metric(e.val_loss, 9):>9}  {e.val_acc:7.2f}%  {fmt.lr(e.lr):>9}  "
                    f"{fmt.duration(e.epoch_time):>7}  {sps:>9}{mark}")

    def _say(self, e: ev.Event) -> None:
        """The event's sentence (describe.py), as the console's events panel shows it too."""
        line = describe(e)
        if line is not None:
            self._print(line.text)

    _on_EarlyStopUpdate = _on_LrChanged = _on_Paused = _on_Resumed = _on_StopRequested = _on_LrFound = _say

    def _on_CheckpointSaved(self, e: ev.CheckpointSaved) -> None:
        # a record rather than a sentence: the full path, to copy (every epoch's last.pth and
        # every new best's best_model.pth would drown the log)
        if e.kind in ("periodic", "manual"):
            self._print(f"checkpoint: {e.path} ({e.kind}, {checkpoint_place(e)})")

    def _on_Notice(self, e: ev.Notice) -> None:
        if e.level in ("warning", "error"):
            self._print(f"{e.level}: {describe(e).text}")

    def _on_EvaluationReport(self, e: ev.EvaluationReport) -> None:
        for line in report_lines(e):
            self._print(line)

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        self._say(e)
        if Status.of_end(e.status) is Status.INTERRUPTED and e.last_checkpoint:
            self._print(f"resume with: {self.resume_hint(self.state.info.run_dir if self.state.info else '')}")

    def _on_RunFailed(self, e: ev.RunFailed) -> None:
        if not self._started:
            return  # a setup error (bad input): the CLI prints it once, on stderr
        self.showed_failure = True
        self._print(f"error: {describe(e).text}")
        if e.last_checkpoint:
            self._print(f"last good checkpoint: {e.last_checkpoint}")


MAX_TABLE_WIDTH = 100  # a confusion matrix wider than this with full names uses indices and a legend


def report_lines(e: ev.EvaluationReport) -> list[str]:
    """The classification report and confusion matrix as plain-text tables."""
    n = sum(e.support)
    best = f" (best model, epoch {e.best_epoch})" if e.best_epoch else ""
    lines = [f"final evaluation{best} on {e.split}: {n:,} samples, loss {fmt.metric(e.loss)}",
             f"  accuracy {e.accuracy:.4f}   weighted precision {e.precision:.4f}  recall {e.recall:.4f}  "
             f"f1 {e.f1:.4f}",
             f"  {'':14}macro    precision {e.macro_precision:.4f}  recall {e.macro_recall:.4f}  "
             f"f1 {e.macro_f1:.4f}", ""]
    width = max([5] + [len(c) for c in e.class_names])
    lines.append(f"  {'class':<{width}}  precision  recall      f1  support")
    for i, name in enumerate(e.class_names):
        lines.append(f"  {name:<{width}}  {e.per_class_precision[i]:9.4f}  {e.per_class_recall[i]:6.4f}  "
                     f"{e.per_class_f1[i]:6.4f}  {e.support[i]:7d}")
    lines.append("")
    lines += confusion_lines(e.confusion_matrix, e.class_names)
    return lines


def confusion_lines(matrix, class_names) -> list[str]:
    """Columns headed by the full class names when they fit in MAX_TABLE_WIDTH, else by class
    index with a legend (a name cut to "automo" or "class " says nothing)."""
    names = [str(n) for n in class_names]
    cells = [[str(v) for v in row] for row in matrix]
    value_w = max([len(c) for row in cells for c in row] + [1])
    name_w = max([len(n) for n in names] + [5])
    full_w = max(value_w, max(len(n) for n in names)) + 1
    lines = ["  confusion matrix (rows: true class, columns: predicted)"]
    if 2 + name_w + full_w * len(names) <= MAX_TABLE_WIDTH:
        heads, labels, cw = names, names, full_w
    else:
        heads = [str(i) for i in range(len(names))]
        labels = [f"{i:>{len(heads[-1])}} {n}" for i, n in enumerate(names)]
        cw = max(value_w, len(heads[-1])) + 1
        lines.append("  classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(names)))
    label_w = max(len(label) for label in labels)
    lines.append("  " + " " * label_w + "".join(f"{h:>{cw}}" for h in heads))
    for label, row in zip(labels, cells):
        lines.append(f"  {label:<{label_w}}" + "".join(f"{c:>{cw}}" for c in row))
    return lines
