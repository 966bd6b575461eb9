"""The what-if cache: one database pass per definition and data, never an answer computed on other data.

A person editing a cohort in the portal toggles rules many times; each toggle re-counts the cached
analysis instead of re-running the cohort's SQL. The attacks on a cache are staleness (serving counts of
data that changed: a load, a reload keeping every row count, another warehouse) and unbounded memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from test_cohort_service import DEFINITION, Loader, dataset

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.service import AnalysisCache, analyze_cohort, cached_analysis, data_version
from massalia.pipelines.runner import LOADED_FILES

DEF = import_circe(DEFINITION)


def _warehouse(path: Path, load_omop: Loader, rows: dict[str, Any] | None = None) -> DuckDBEngine:
    engine = DuckDBEngine(path)
    load_omop(engine, rows or dataset())
    return engine


def test_a_toggle_reuses_the_analysis_and_counts_as_the_database_does(tmp_path: Path, load_omop: Loader) -> None:
    cache = AnalysisCache()
    with _warehouse(tmp_path / "w.duckdb", load_omop) as engine:
        first = cached_analysis(engine, DEF, cache=cache)
        again = cached_analysis(engine, DEF, cache=cache)
        assert again is first and (cache.hits, cache.misses) == (1, 1)
        fresh = analyze_cohort(engine, DEF)
        for enabled in ([True, True], [True, False], [False, True], [False, False]):
            assert first.count(enabled) == fresh.count(enabled)
    # A new connection to the same file (the API opens one per request) finds it too.
    with DuckDBEngine(tmp_path / "w.duckdb", read_only=True) as engine:
        assert cached_analysis(engine, DEF, cache=cache) is first


def test_new_data_is_a_new_analysis(tmp_path: Path, load_omop: Loader) -> None:
    cache = AnalysisCache()
    with _warehouse(tmp_path / "w.duckdb", load_omop) as engine:
        before = cached_analysis(engine, DEF, cache=cache).count()
        # Person 2's chemotherapy moves into the window: one more person qualifies on the same definition.
        engine.execute("UPDATE drug_exposure SET drug_exposure_start_date = drug_exposure_start_date + 1 "
                       "WHERE person_id = 2")  # fmt: skip
        version = data_version(engine)
        # The attack: a reload that keeps every table's row count. The load's record changes the version.
        engine.create_table(LOADED_FILES, pa.table({"run_id": ["r1"]}))
        assert data_version(engine) != version
        after = cached_analysis(engine, DEF, cache=cache).count()
        assert after.persons == before.persons + 1
        assert after == analyze_cohort(engine, DEF).count()


def test_another_warehouse_never_gets_this_ones_analysis(tmp_path: Path, load_omop: Loader) -> None:
    cache = AnalysisCache()
    rows = dataset()
    with _warehouse(tmp_path / "a.duckdb", load_omop, rows) as a:
        counted_a = cached_analysis(a, DEF, cache=cache).count()
    # The same row counts, different facts (person 3 is a woman here): the same data version, another file.
    rows["person"][2]["gender_concept_id"] = 8532
    with _warehouse(tmp_path / "b.duckdb", load_omop, rows) as b:
        assert data_version(b) == data_version(DuckDBEngine(tmp_path / "a.duckdb", read_only=True))
        counted_b = cached_analysis(b, DEF, cache=cache).count()
    assert counted_b.persons == counted_a.persons + 1 and len(cache) == 2


def test_the_cache_is_bounded_in_bytes(tmp_path: Path, load_omop: Loader) -> None:
    with _warehouse(tmp_path / "w.duckdb", load_omop) as engine:
        size = AnalysisCache.size_of(analyze_cohort(engine, DEF))
        cache = AnalysisCache(max_bytes=size)  # room for one analysis
        other = import_circe({**DEFINITION, "InclusionRules": DEFINITION["InclusionRules"][:1]})
        cached_analysis(engine, DEF, cache=cache)
        cached_analysis(engine, other, cache=cache)
        assert len(cache) == 1, "the least recently used analysis left"
        cached_analysis(engine, DEF, cache=cache)
        assert cache.misses == 3
        tiny = AnalysisCache(max_bytes=size - 1)
        cached_analysis(engine, DEF, cache=tiny)
        assert len(tiny) == 0, "an analysis larger than the bound is not kept"
