"""Samples per second of training, with paused time and the first optimizer steps of the
process left out (they include start-up work: allocations, lazy initialisation, compilation)."""

from __future__ import annotations

import time

WARMUP_STEPS = 2


class Throughput:
    def __init__(self, warmup_steps: int = WARMUP_STEPS) -> None:
        self.warmup_steps = warmup_steps
        self.steps = 0  # optimizer steps of this process, counted until the warm-up is over
        self.paused = 0.0  # seconds paused, in all
        self.measuring = False
        self._t0 = self._epoch_t0 = 0.0
        self._samples0 = 0
        self._paused0 = self._epoch_paused0 = 0.0

    def start_epoch(self, samples: int, now: float | None = None) -> None:
        """An epoch starts with `samples` already counted (a resumed one starts part-way)."""
        now = time.perf_counter() if now is None else now
        self._epoch_t0, self._epoch_paused0 = now, self.paused
        self.measuring = self.steps >= self.warmup_steps
        self._t0, self._samples0, self._paused0 = now, samples, self.paused

    def warm_up_step(self) -> bool:
        """Count an optimizer step while warming up; True when this one ended the warm-up (call
        `restart` once the samples so far are counted)."""
        self.steps += 1
        return self.steps >= self.warmup_steps

    def restart(self, samples: int, now: float | None = None) -> None:
        self.measuring = True
        self._t0 = time.perf_counter() if now is None else now
        self._samples0, self._paused0 = samples, self.paused

    def add_pause(self, seconds: float) -> None:
        self.paused += seconds

    def rate(self, samples: int, now: float) -> float:
        """Samples per second since measuring began this epoch (0 while warming up)."""
        if not self.measuring:
            return 0.0
        seconds = now - self._t0 - (self.paused - self._paused0)
        counted = samples - self._samples0
        return counted / seconds if seconds > 0 and counted > 0 else 0.0

    def epoch_seconds(self, now: float) -> float:
        """Seconds of training this epoch, pauses excluded."""
        return now - self._epoch_t0 - (self.paused - self._epoch_paused0)
