"""Fixtures of the ledger tests: a ledger factory with a deterministic clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from massalia.ledger.log import TransparencyLog


def make_audit_event(i: int) -> dict[str, Any]:
    """A realistic audit entry, varied in size and content (non-ASCII included)."""
    return {
        "actor": f"user-{i % 7}",
        "action": ["query", "extract", "patient_view", "approve"][i % 4],
        "resource": f"person/{i * 37 % 1000}",
        "purpose": "étude survie" if i % 3 else "qualité des données",
        "time": f"2026-11-21T10:{i % 60:02d}:00Z",
        "payload_sha256": f"{i:064x}",
        "note": "x" * (i % 11),
    }


@pytest.fixture
def audit_event() -> Callable[[int], dict[str, Any]]:
    """Build the i-th sample audit entry."""
    return make_audit_event


@pytest.fixture
def clock() -> Callable[[], int]:
    ticks = itertools.count(1_763_700_000_000, 1000)
    return lambda: next(ticks)


@pytest.fixture
def open_log(tmp_path: Path, clock: Callable[[], int]) -> Iterator[Callable[..., TransparencyLog]]:
    """Open ledgers under ``tmp_path/ledger`` (or another folder); all are closed at the end."""
    opened: list[TransparencyLog] = []

    def _open(directory: Path | None = None, **kwargs: Any) -> TransparencyLog:
        kwargs.setdefault("clock", clock)
        log = TransparencyLog(directory or tmp_path / "ledger", **kwargs)
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()
