"""Named stages of the long-running functions: timed, logged, and recorded for whoever listens."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

logger = logging.getLogger("sctransfer")


@dataclass(frozen=True)
class Stage:
    """One stage's name and its start and end on the :func:`time.perf_counter` clock."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


_recorder: ContextVar[list[Stage] | None] = ContextVar("sctransfer_stages", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed work as stage ``name``: logged at INFO level, and kept by :func:`record_stages`."""
    start = time.perf_counter()
    yield
    end = time.perf_counter()
    logger.info("%s: %.1f s", name, end - start)
    recorder = _recorder.get()
    if recorder is not None:
        recorder.append(Stage(name, start, end))


@contextmanager
def record_stages() -> Iterator[list[Stage]]:
    """Collect the stages that finish inside the block (nested stages too, in order of completion)."""
    stages: list[Stage] = []
    token = _recorder.set(stages)
    try:
        yield stages
    finally:
        _recorder.reset(token)
