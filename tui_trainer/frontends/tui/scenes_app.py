"""Build the console around a scripted scene (snapshot tests, screenshots)."""

from __future__ import annotations

from ...engine.control import Control
from ...state import replay
from ...vocab import Status
from .app import TrainerApp
from .scenes import SCENES
from .store import StateStore


def scene_app(name: str, *, with_control: bool = True) -> TrainerApp:
    """A console showing scene `name`; its keys act on a Control that no engine reads."""
    state = replay(SCENES[name]())
    control = Control() if with_control else None
    if control is not None and state.run_status is Status.PAUSED:
        control.pause()  # as it is in a run paused with `p`
    return TrainerApp(StateStore(state), control)
