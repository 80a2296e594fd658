"""Epoch and step bars, throughput, elapsed time and ETA (pauses and warm-up excluded).

Drawn as one Text rather than a table of bar widgets: it changes a few times per second."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from .... import fmt
from ....state import RunState
from .base import LinePanel

PHASE_TEXT = {"training": "training", "validating": "validating", "evaluating": "final evaluation"}
LABEL, PCT = 15, 6


def line_bar(fraction: float, width: int, style: Style, track: Style) -> Text:
    """━━━━╸─── : a thin progress bar, half-cell precise."""
    fraction = min(1.0, max(0.0, fraction))
    halves = int(round(fraction * width * 2))
    full, half = divmod(halves, 2)
    text = Text("━" * full, style=style)
    if half:
        text.append("╸", style=style)
    text.append("━" * (width - full - half), style=track)
    return text


class ProgressPanel(LinePanel, Widget):
    DEFAULT_CSS = """
    ProgressPanel { height: auto; }
    """
    #: set by the App when the run's writer is gone without an end: no ETA for a run that stopped
    stale = False

    def key(self, state: RunState):
        return (state.version if state.active else (state.status, state.end), self.size.width, self.stale)

    def draw(self, state: RunState) -> None:
        self.set_text(self.render_text(state, self.palette, self.size.width, self.stale))

    @staticmethod
    def render_text(state: RunState, palette, width: int, stale: bool = False) -> Text:
        bar_w = max(10, width - LABEL - PCT - 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        if state.info is None:
            text.append(f"{'preparing':<{LABEL}}", style="bold")
            text.append(f"{state.stage or 'starting'}…", style=palette.primary + Style(italic=True))
            text.append(f"\n{'':<{LABEL}}")
            text.append(state.stage_detail, style=palette.muted)
            text.append("\n")
            return text
        frac = state.progress
        text.append(f"{f'epoch {max(state.epoch, 1)}/{state.num_epochs}':<{LABEL}}", style="bold")
        text.append_text(line_bar(frac, bar_w, palette.primary, palette.track))
        text.append(f"{frac * 100:>{PCT}.0f}%\n")
        if state.phase == "validating":
            label, frac, style = "validating", 1.0, palette.accent  # the colour of validation in the charts
        else:
            frac = min(1.0, state.step / (state.steps or 1))
            label, style = f"step {state.step}/{state.steps}", palette.good
        text.append(f"{label:<{LABEL}}")
        text.append_text(line_bar(frac, bar_w, style, palette.track))
        text.append(f"{frac * 100:>{PCT}.0f}%\n")
        phase = PHASE_TEXT.get(state.phase, "") if state.active else ""
        if state.info.compiled and state.samples_per_sec is None and state.active:
            phase = "compiling"
        text.append(f"{phase:<{LABEL}}", style=palette.muted + Style(italic=True))
        text.append(fmt.rate(state.samples_per_sec), style="bold")
        text.append(" · elapsed ")
        text.append(fmt.duration(state.elapsed), style="bold")
        text.append(" · ETA ")
        text.append(eta_text(state, stale), style="bold")
        # What does not fit the line is left out whole (a line never wraps into the panel's
        # border): the skipped count first to stay, the epoch's running loss and accuracy next.
        extras = []
        if state.skipped:
            extras.append(Text(f" · skipped {state.skipped}", style=palette.warning))
        if state.epoch_loss is not None and state.phase == "training":
            extras.append(Text(f" · loss {fmt.metric(state.epoch_loss)}"))
            extras.append(Text(f" · acc {state.epoch_acc:.2f}%"))
        used = len(text.plain) - text.plain.rfind("\n") - 1
        for extra in extras:
            if used + extra.cell_len <= width:
                text.append_text(extra)
                used += extra.cell_len
        return text


def eta_text(state: RunState, stale: bool = False) -> str:
    """The time left; "done" only for a run that ended as planned (not a failed or cut one)."""
    if state.active:
        return "--" if stale else fmt.duration(state.eta)
    return "done" if state.run_status.counts_as_done else "--"
