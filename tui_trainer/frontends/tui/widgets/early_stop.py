"""Early stopping: patience used as a bar, the best value and its epoch, min_delta, and what
will happen when patience runs out."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import StatePanel, text_lines
from .bars import bar


class EarlyStopPanel(StatePanel, Static):
    DEFAULT_CSS = """
    EarlyStopPanel { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def show(self, state: RunState) -> None:
        if not self.remember(state, (state.early_stop, state.info, self.size.width, state.status)):
            return
        # the bar gets what "patience ", " 15/15" and "  min_delta 0" leave of the line
        text = self.render_text(state, max(5, self.size.width - 29))
        self.set_content(text, text_lines(text))

    @staticmethod
    def render_text(state: RunState, width: int) -> Text:
        info = state.info
        es = state.early_stop
        if info is None:
            return Text("waiting for the run to start", style="grey50")
        patience = es.patience if es else info.patience
        if not patience:
            return Text("early stopping off", style="grey50")
        counter = es.counter if es else 0
        frac = counter / patience
        style = "green" if frac < 0.5 else "yellow" if frac < 0.8 else "red"
        text = Text("patience ")
        text.append_text(bar(frac, max(5, min(width, 16)), style))
        delta = es.min_delta if es else info.min_delta
        text.append(f" {counter}/{patience}", style="bold")
        text.append(f"  min_delta {delta:g}\n", style="grey62")
        if es and es.best_score is not None:
            text.append(f"best {es.monitor} ", style="grey70")
            text.append(fmt.metric(es.best_score), style="bold")
            text.append(f" @ epoch {es.best_epoch}\n", style="grey70")
        else:
            text.append("best: after the first epoch\n", style="grey50")
        restore = "restore best weights" if info.restore_best else "keep last weights"
        if es and es.triggered:
            text.append("triggered" + (": best weights restored" if info.restore_best else ""), style="bold yellow")
        elif state.active:
            text.append(f"on trigger: {restore}", style="grey62")
        else:
            text.append("not triggered", style="grey62")
        return text
