"""Seconds spent in each intake stage, summed over a process's run.

Intake's stages run interleaved, chunk by chunk, and validation runs on a
thread of its own, so a stage's time is only known where the stage runs: each
adds its seconds here. Intake logs the difference over each file and
``bench/intake.py`` prints the totals. One ``perf_counter`` pair per chunk and
stage costs nothing next to the work, so the clock is always on.

Seconds of stages that overlap (validation beside the others) add up to more
than the wall time.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

# parse: splitting the file into rows and fields, and its shape checks; normalize: cells to
# typed values and the not-null rule; pseudonymize: exact tokens; encode: similarity
# encodings; validate: the suite per chunk and the file-level checks; load: the INSERT into
# staging; ledger: hashing, the encrypted archive copy, ledger rows and the commit.
STAGES = ("parse", "normalize", "pseudonymize", "encode", "validate", "load", "ledger")


class StageClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.seconds)

    def reset(self) -> None:
        with self._lock:
            self.seconds = dict.fromkeys(STAGES, 0.0)


CLOCK = StageClock()


def since(before: dict[str, float]) -> dict[str, float]:
    """Seconds per stage added to ``CLOCK`` since ``before`` (a ``snapshot``)."""
    now = CLOCK.snapshot()
    return {stage: now[stage] - before.get(stage, 0.0) for stage in now}
