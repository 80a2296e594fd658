"""Early stopping: patience used as a bar, the best value and its epoch, min_delta, and what
will happen when patience runs out."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import TextPanel
from .bars import bar


class EarlyStopPanel(TextPanel, Static):
    DEFAULT_CSS = """
    EarlyStopPanel { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.early_stop, state.info, self.size.width, state.status)

    def draw(self, state: RunState) -> None:
        # the bar gets what "patience ", " 15/15" and "  min_delta 0" leave of the line
        self.set_content(self.render_text(state, self.palette, max(5, self.size.width - 29)))

    @staticmethod
    def render_text(state: RunState, palette, width: int) -> Text:
        info = state.info
        es = state.early_stop
        if info is None:
            return Text("waiting for the run to start", style=palette.muted)
        patience = es.patience if es else info.patience
        if not patience:
            return Text("early stopping off", style=palette.muted)
        counter = es.counter if es else 0
        frac = counter / patience
        style = palette.good if frac < 0.5 else palette.warning if frac < 0.8 else palette.error
        text = Text("patience ")
        text.append_text(bar(frac, max(5, min(width, 16)), style, palette.empty))
        delta = es.min_delta if es else info.min_delta
        text.append(f" {counter}/{patience}", style="bold")
        text.append(f"  min_delta {delta:g}\n", style=palette.muted)
        if es and es.best_score is not None:
            text.append(f"best {es.monitor} ", style=palette.muted)
            text.append(fmt.metric(es.best_score), style="bold")
            text.append(f" @ epoch {es.best_epoch}\n", style=palette.muted)
        else:
            text.append("best: after the first epoch\n", style=palette.muted)
        restore = "restore best weights" if info.restore_best else "keep last weights"
        if es and es.triggered:
            text.append("triggered" + (": best weights restored" if info.restore_best else ""),
                        style=palette.warning + Style(bold=True))
        elif state.active:
            text.append(f"on trigger: {restore}", style=palette.muted)
        else:
            text.append("not triggered", style=palette.muted)
        return text
