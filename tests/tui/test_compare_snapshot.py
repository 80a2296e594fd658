"""The compare console, from two recorded digits runs (learning rates 1e-3 and 1e-2; their
events.jsonl without the step and system samples, which compare does not read)."""

from pathlib import Path

import pytest

RUNS = Path(__file__).parent / "compare_runs"


def compare_app():
    from tui_trainer.compare import open_runs
    from tui_trainer.frontends.tui.compare import CompareApp

    return CompareApp(open_runs([RUNS / "digits-lr1e-3", RUNS / "digits-lr1e-2"]), follow=False)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_compare_two_digits_runs(snap_compare, size):
    assert snap_compare(compare_app(), terminal_size=size)


async def test_the_console_shows_both_runs_and_what_differs():
    app = compare_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.export_screenshot()  # SVG: the text on screen, cell by cell
    import html
    import re

    text = html.unescape(re.sub(r"<[^>]+>", "", screen)).replace("\u00a0", " ")
    table, legend = text, text
    assert "digits-lr1e-3" in legend and "digits-lr1e-2" in legend
    assert "EARLY STOPPED" in table and "FINISHED" in table and "0.0173" in table and "0.0267" in table
