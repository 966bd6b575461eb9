"""A caller's query under a time limit is cancelled by the engine itself, and the engine stays usable."""

from __future__ import annotations

import time

import pytest

from conftest import open_engine
from massalia.engine import Engine, QueryTimeoutError

# A statement that runs far longer than any limit below, in each engine's own dialect.
SLOW = {
    "duckdb": "SELECT sum(range) AS s FROM range(100000000000)",
    "postgres": "SELECT pg_sleep(60) IS NULL AS s",
}


# Spark is not in this list: it cancels the job group, but its tasks stop only at their interruption points (a
# one-stage range scan was cancelled in 1.2 s by a standalone session and ran on to its end, 8 min, in the tests'
# shared session), so a running statement's cancellation is not promised there (docs/api.md). The test below
# (statements after the limit refused) runs on all three engines.
@pytest.mark.parametrize("name", [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in SLOW])
def test_a_long_query_is_cancelled_at_the_limit(name: str, request: pytest.FixtureRequest) -> None:
    engine, dispose = open_engine(name, request)
    try:
        _cancelled_at_the_limit(engine)
    finally:
        dispose()


def _cancelled_at_the_limit(engine: Engine) -> None:
    started = time.perf_counter()
    with pytest.raises(QueryTimeoutError, match=r"time limit of 0\.5 s"), engine.time_limit(0.5):
        engine.query_native(SLOW[engine.name])
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"the query was not cancelled at the limit: {elapsed:.1f} s"
    # The engine answers the next query at once, outside any limit.
    assert engine.scalar_int("SELECT 41 + 1") == 42


def test_statements_after_the_limit_are_refused_but_clean_up_runs(engine: Engine) -> None:
    engine.execute("CREATE TABLE limit_scratch AS SELECT 1 AS x")
    with pytest.raises(QueryTimeoutError), engine.time_limit(0.2):
        time.sleep(0.4)  # the limit passes between two statements: nothing is running to cancel
        try:
            engine.query("SELECT x FROM limit_scratch")
        finally:
            engine.drop_table("limit_scratch")
            engine.execute("DROP TABLE IF EXISTS limit_scratch")
    assert not engine.table_exists("limit_scratch")


@pytest.mark.duckdb
def test_a_block_within_its_limit_is_untouched(duckdb_engine: Engine) -> None:
    with duckdb_engine.time_limit(30):
        assert duckdb_engine.scalar_int("SELECT 7") == 7
        with duckdb_engine.time_limit(0.01):  # nested: the outer limit governs
            time.sleep(0.05)
            assert duckdb_engine.scalar_int("SELECT 8") == 8
    with pytest.raises(ValueError, match="positive"), duckdb_engine.time_limit(0):
        pass
    time.sleep(0.05)  # a cancelled timer never fires later
    assert duckdb_engine.scalar_int("SELECT 9") == 9
