"""Fixtures of the governance tests: a governance service on a throwaway metadata database and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gov_testing import Clock, memory_dir

from massalia.governance import Governance


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock starting on 2026-06-01 09:00 UTC."""
    return Clock()


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the test's transparency log lives (in memory when possible)."""
    yield from memory_dir(tmp_path / "ledger-root")


@pytest.fixture
def gov(tmp_path: Path, ledger_dir: Path, clock: Clock) -> Iterator[Governance]:
    """A governance service on a fresh SQLite metadata database, a fresh ledger and the test clock."""
    with Governance(
        f"sqlite:///{(tmp_path / 'metadata.sqlite').as_posix()}",
        ledger_dir / "ledger",
        key_path=tmp_path / "keys" / "master.key",
        clock=clock,
    ) as service:
        yield service
