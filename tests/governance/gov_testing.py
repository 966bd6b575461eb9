"""Helpers of the governance tests: a clock moved by hand, a folder in memory for fast ledgers.

The ledger goes to ``/dev/shm`` when it exists: each audited decision fsyncs the log, which costs
about 10 ms on a disk and 0.1 ms in memory; the log's behaviour is the same.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += dt.timedelta(**delta)


def memory_dir(fallback: Path) -> Iterator[Path]:
    """A fresh folder in ``/dev/shm`` when available (else ``fallback``), removed afterwards."""
    shm = Path("/dev/shm")  # noqa: S108 (a private mkdtemp folder inside it, removed afterwards)
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(dir=shm, prefix="massalia-gov-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        fallback.mkdir(parents=True, exist_ok=True)
        yield fallback
