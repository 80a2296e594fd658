"""Screens from scripted event lists, through the same reducer as a live run.

No clocks, no live system readings, no randomness: each scene is a fixed list of events, so
the SVG snapshots only change when what the user sees changes. Regenerate on purpose with
`pytest tests/tui --snapshot-update` and look at the diff report.
"""

import pytest

from tui_trainer.frontends.tui.scenes_app import scene_app

LARGE = (160, 48)
MEDIUM = (120, 36)
SMALL = (80, 24)


@pytest.mark.parametrize("size", [SMALL, MEDIUM, LARGE], ids=["80x24", "120x36", "160x48"])
def test_running_mid_epoch_with_gpus(snap_compare, size):
    assert snap_compare(scene_app("running"), terminal_size=size)


def test_running_without_gpu(snap_compare):
    assert snap_compare(scene_app("running-cpu"), terminal_size=MEDIUM)


def test_two_processes_under_torchrun(snap_compare):
    """The header counts the processes; the system panel shows each one's samples/s."""
    assert snap_compare(scene_app("running-2-ranks"), terminal_size=MEDIUM)


def test_paused(snap_compare):
    assert snap_compare(scene_app("paused"), terminal_size=MEDIUM)


@pytest.mark.parametrize("size", [SMALL, MEDIUM], ids=["80x24", "120x36"])
def test_early_stopped_final_report(snap_compare, size):
    assert snap_compare(scene_app("early-stopped"), terminal_size=size)


def test_early_stopped_dashboard_after_report(snap_compare):
    """d switches from the report back to the dashboard: early stopping shows as triggered."""
    assert snap_compare(scene_app("early-stopped"), terminal_size=MEDIUM, press=["d"])


def test_stopped_by_user_with_plateau_schedule(snap_compare):
    assert snap_compare(scene_app("stopped"), terminal_size=MEDIUM, press=["d"])


def test_preparing_before_torch_loaded(snap_compare):
    assert snap_compare(scene_app("preparing"), terminal_size=MEDIUM)


def test_help_screen(snap_compare):
    assert snap_compare(scene_app("running"), terminal_size=MEDIUM, press=["question_mark"])


def test_quit_asks_while_training(snap_compare):
    assert snap_compare(scene_app("running"), terminal_size=MEDIUM, press=["q"])


def test_terminal_too_small(snap_compare):
    assert snap_compare(scene_app("running"), terminal_size=(70, 20))
