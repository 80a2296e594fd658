"""System load: CPU, RAM, this process, and every GPU (utilisation, memory, temperature with
colour thresholds, power); a quiet "no GPU" when there is none."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import TextPanel
from .bars import bar, level_role

TEMP_WARN, TEMP_HOT = 75.0, 85.0  # degrees C
MIN_BAR = 3


class SystemPanel(TextPanel, Static):
    DEFAULT_CSS = """
    SystemPanel { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.system, self.size.width)

    def draw(self, state: RunState) -> None:
        self.set_content(self.render_text(state, self.palette, self.size.width))

    @staticmethod
    def render_text(state: RunState, p, width: int) -> Text:
        """p: the panel's palette."""
        s = state.system
        if s is None:
            return Text("waiting for the first reading", style=p.muted)

        def level(value: float | None, warn: float, hot: float):
            return getattr(p, level_role(value, warn, hot))

        # Every line fits the panel's width (a wrapped "MB" on a line of its own reads as noise):
        # the bars take what the numbers leave, and "proc …" goes first when even that is short.
        ram = 100.0 * s.ram_used / s.ram_total if s.ram_total else 0.0
        ram_text = f" {s.ram_used / 2**30:.1f}/{s.ram_total / 2**30:.0f}G"
        proc_text = f"  proc {fmt.size(s.process_rss)}"
        label = 5
        if width - label - len(ram_text) - len(proc_text) < MIN_BAR:
            proc_text = ""
        bar_w = max(MIN_BAR, min(20, width - label - len(ram_text) - len(proc_text)))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("CPU  ", style=p.muted)
        text.append_text(bar(s.cpu_percent / 100, bar_w, level(s.cpu_percent, 70, 90), p.empty))
        text.append(f" {s.cpu_percent:5.1f}%\n")
        text.append("RAM  ", style=p.muted)
        text.append_text(bar(ram / 100, bar_w, level(ram, 75, 90), p.empty))
        text.append(ram_text)
        text.append(proc_text, style=p.muted)
        if s.rank_samples_per_sec:
            rates = " ".join(fmt.rate(r, "/s") for r in s.rank_samples_per_sec)
            text.append(f"\nranks {rates}", style=p.muted)
        if not s.gpus:
            text.append(f"\n{s.gpu_error or 'no GPU'}", style=p.muted)
        for g in s.gpus:
            # Two lines per GPU: name, temperature and power; then utilisation and memory.
            name = g.name.removeprefix("NVIDIA ").removeprefix("GeForce ")
            text.append(f"\nGPU{g.index} ", style="bold")
            text.append(name[: max(6, width - 24)], style=p.muted)
            if g.temperature is not None:
                text.append(f" {g.temperature:.0f}°C", style=level(g.temperature, TEMP_WARN, TEMP_HOT))
            if g.power_draw is not None:
                limit = f"/{g.power_limit:.0f}" if g.power_limit else ""
                text.append(f" {g.power_draw:.0f}{limit}W", style=p.muted)
            # " util " bar " 100%" " mem " bar " 36.8/40G": 25 cells besides the two bars
            half = max(2, min(9, (width - 25) // 2))
            text.append("\n util ", style=p.muted)
            if g.utilization is not None:
                text.append_text(bar(g.utilization / 100, half, p.good, p.empty))
                text.append(f"{g.utilization:4.0f}%")
            else:
                text.append("n/a  ", style=p.muted)
            text.append(" mem ", style=p.muted)
            if g.memory_used is not None and g.memory_total:
                frac = g.memory_used / g.memory_total
                text.append_text(bar(frac, half, level(frac * 100, 80, 95), p.empty))
                text.append(f" {g.memory_used / 2**30:.1f}/{g.memory_total / 2**30:.0f}G")
            else:
                text.append("n/a", style=p.muted)
        return text
