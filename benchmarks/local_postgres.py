"""The tests' throwaway PostgreSQL server (``tests/pg_local.py``), for the benchmarks that compare with it.

It is a test helper, not part of the library: the benchmarks, run as scripts from the repository
(``python benchmarks/<name>.py``), reach it by putting ``tests/`` on the import path.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from pg_local import LocalPostgres, find_pg_bindir  # noqa: E402 - needs tests/ on the path first

__all__ = ["LocalPostgres", "find_pg_bindir"]
