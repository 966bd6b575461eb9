"""Cohort services, UI-agnostic: generate, count, attrition, live what-if, breakdowns, explain.

``generate_cohort`` writes the cohort rows (OMOP ``cohort`` table) and records the definition hash,
data version and vocabulary version. ``analyze_cohort`` computes, once, the inclusion-rule bitmask of
every qualified event; toggling rules then re-counts in memory (``CohortAnalysis.count``) without
touching the database. ``cached_analysis`` keeps recent analyses per warehouse, data and vocabulary
version, so that a person editing a cohort (the portal's live what-if) pays the database once per
definition, not once per toggle. The counts here are exact: the guarded services
(:mod:`massalia.health.research`) release them, exact to members of an approved project and through
the one release mechanism (:mod:`massalia.governance.disclosure`) to everyone else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from massalia.engine import Engine
from massalia.engine.base import HOUSE_DIALECT, check_identifier
from massalia.health.cohorts.compiler import CompiledCohort, compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD
from massalia.pipelines.runner import LOADED_FILES

COHORT_COLUMNS = ("cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date")
_COHORT_SCHEMA = pa.schema(
    [("cohort_definition_id", pa.int64()), ("subject_id", pa.int64()),
     ("cohort_start_date", pa.date32()), ("cohort_end_date", pa.date32())]
)  # fmt: skip


def run_step(engine: Engine, compiled: CompiledCohort, until: str, *, materialize: bool | None = None) -> pa.Table:
    """Rows of step ``until`` (and the steps before it) on ``engine``.

    PostgreSQL runs the steps as temporary tables analyzed one by one; other engines run one statement
    (the house engine runs the compiler's text as it is, without a SQLGlot round trip).
    """
    if materialize is None:
        materialize = engine.capabilities.materialized_steps
    if not materialize:
        if engine.dialect == HOUSE_DIALECT:
            return engine.query_native(compiled.statement_text(until=until))
        return engine.query(compiled.single_statement(until=until))
    _materialize(engine, compiled, until)
    return engine.query_native(f"SELECT * FROM c_{until}")


def _materialize(engine: Engine, compiled: CompiledCohort, until: str) -> None:
    """Create the temporary tables ``c_<step>`` of every step up to ``until``."""
    names = [step.name for step in compiled.steps]
    subset = CompiledCohort(compiled.steps[: names.index(until) + 1], compiled.cohort_definition_id, 0)
    for statement in subset.materialized(engine.dialect, analyze=engine.capabilities.materialized_steps):
        engine.execute_native(statement)


@dataclass(frozen=True)
class CohortGeneration:
    """What a generation produced and on what: enough to reproduce or audit it."""

    cohort_definition_id: int
    definition_hash: str
    data_version: str
    vocabulary_version: str
    generated_at: str
    persons: int
    rows: int
    table: str


EVENT_TABLES = ("person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
                "procedure_occurrence", "measurement", "observation", "death")  # fmt: skip
"""The tables whose row counts fingerprint the clinical data (``data_version``)."""


def vocabulary_version(engine: Engine, *, tables: Collection[str] | None = None) -> str:
    """The vocabulary release (``vocabulary_version`` of the 'None' vocabulary row), or ``'unknown'``.

    ``tables``: the engine's table names when the caller already listed them.
    """
    if "vocabulary" not in (engine.list_tables() if tables is None else tables):
        return "unknown"
    rows = engine.query("SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'").to_pylist()
    return str(rows[0]["vocabulary_version"]) if rows and rows[0]["vocabulary_version"] else "unknown"


def data_version(engine: Engine, *, tables: Collection[str] | None = None) -> str:
    """A fingerprint of the clinical data: CDM source release, the row counts of the event tables and the loads.

    The row counts come from one query; ``tables``: the engine's table names when already listed. The
    pipelines' record of loaded files (``etl_loaded_file``, published with every load that changed data)
    is counted too, so that a reload which keeps every table's row count (a corrected mapping) still
    changes the version.
    """
    present = set(engine.list_tables() if tables is None else tables)
    parts: dict[str, object] = {}
    if "cdm_source" in present:
        rows = engine.query("SELECT cdm_source_abbreviation, source_release_date, cdm_release_date FROM cdm_source")
        parts["cdm_source"] = [{k: str(v) for k, v in row.items()} for row in rows.to_pylist()]
    counted = [table for table in (*EVENT_TABLES, LOADED_FILES) if table in present]
    if counted:  # one UNION ALL (DuckDB plans nine scalar subqueries ten times slower)
        counts = engine.query(
            " UNION ALL ".join(f"SELECT '{table}' AS name, count(*) AS n FROM {table}" for table in counted)
        ).to_pylist()
        parts.update({row["name"]: int(row["n"]) for row in counts})
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


def generate_cohort(
    engine: Engine,
    definition: CohortDefinition,
    cohort_definition_id: int = 1,
    *,
    table: str = "cohort",
    materialize: bool | None = None,
    restrict: exp.Expr | None = None,
) -> CohortGeneration:
    """Build the cohort and write its rows to ``table`` (replacing this id's rows), recording its provenance.

    ``restrict`` is a row-level condition over the generated rows (columns ``generated.subject_id``,
    ``generated.cohort_start_date``...), e.g. a project's scope from :mod:`massalia.governance.policy`:
    only the rows it keeps are written, and the counts are those of the rows written.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> from massalia.health.omop.schema import create_cdm_schema
    >>> from massalia.health.cohorts import import_circe
    >>> engine = connect("duckdb"); create_cdm_schema(engine)
    >>> generate_cohort(engine, import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}')).persons
    0
    """
    generation, _ = _generate(
        engine, definition, cohort_definition_id, table=table, materialize=materialize, restrict=restrict
    )
    return generation


def generate_and_analyze(
    engine: Engine,
    definition: CohortDefinition,
    cohort_definition_id: int = 1,
    *,
    table: str = "cohort",
    threshold: int = DEFAULT_THRESHOLD,
    materialize: bool | None = None,
) -> tuple[CohortGeneration, CohortAnalysis]:
    """Full generation: write the cohort (as ``generate_cohort``) and compute its rule bitmasks (``analyze_cohort``).

    The steps up to the qualified events run once: on DuckDB and PostgreSQL they are kept in a
    temporary table that both the cohort rows and the bitmasks read. Engines without temporary
    tables (Spark) run the two queries.
    """
    generation, analysis = _generate(
        engine, definition, cohort_definition_id, table=table, materialize=materialize, analyze=True,
        threshold=threshold,
    )  # fmt: skip
    assert analysis is not None  # noqa: S101 (analyze=True always returns one)
    return generation, analysis


def _generate(
    engine: Engine,
    definition: CohortDefinition,
    cohort_definition_id: int,
    *,
    table: str,
    materialize: bool | None,
    analyze: bool = False,
    threshold: int = DEFAULT_THRESHOLD,
    restrict: exp.Expr | None = None,
) -> tuple[CohortGeneration, CohortAnalysis | None]:
    check_identifier(table)
    compiled = compile_cohort(definition, cohort_definition_id)
    if materialize is None:
        materialize = engine.capabilities.materialized_steps
    if restrict is not None and not engine.capabilities.transactions:
        # The rows of the Spark path come back as Arrow, where a SQL restriction cannot run: refuse.
        raise ValueError(f"a restricted (project-scoped) cohort generation needs transactions; {engine.name} has none")
    where = f" WHERE {engine.render(restrict)}" if restrict is not None else ""
    if not engine.capabilities.transactions:  # Spark: the rows come back, the tables are rewritten
        rows = run_step(engine, compiled, "cohort", materialize=materialize).cast(_COHORT_SCHEMA)
        mask = run_step(engine, compiled, "qualified_mask", materialize=materialize) if analyze else None
        persons, count = _replace_rows(engine, table, cohort_definition_id, rows)
        generation = _generation(engine, definition, cohort_definition_id, table, persons, count)
        _record_generation(engine, generation)
        return generation, (_analysis(definition, mask, threshold) if mask is not None else None)

    temporary: str | None = None
    mask = None
    if materialize:
        _materialize(engine, compiled, "cohort")
        if analyze:
            mask = engine.query_native("SELECT person_id, start_date, inclusion_rule_mask FROM c_qualified_mask")
        source = "SELECT * FROM c_cohort"
    elif engine.dialect == HOUSE_DIALECT:
        replaced: dict[str, str] = {}
        if analyze:
            temporary = f"massalia_qualified_{uuid.uuid4().hex[:12]}"
            engine.execute_native(
                f"CREATE TEMPORARY TABLE {temporary} AS {compiled.statement_text(until='qualified_mask')}"
            )
            mask = engine.query_native(f"SELECT person_id, start_date, inclusion_rule_mask FROM {temporary}")
            replaced["qualified_mask"] = temporary
        source = compiled.statement_text(until="cohort", replaced=replaced)
    else:
        if analyze:
            mask = run_step(engine, compiled, "qualified_mask", materialize=False)
        source = engine.render(compiled.single_statement(until="cohort"))
    try:
        tables = engine.list_tables()
        with engine.transaction():
            if table not in tables:
                engine.write_new_table(table, [], schema=_COHORT_SCHEMA)
            columns = ", ".join(COHORT_COLUMNS)
            engine.execute_native(f"DELETE FROM {table} WHERE cohort_definition_id = {int(cohort_definition_id)}")
            engine.execute_native(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ({source}) generated{where}"
                " ORDER BY subject_id, cohort_start_date"
            )
            counts = engine.query_native(
                f"SELECT count(DISTINCT subject_id) AS persons, count(*) AS n FROM {table}"
                f" WHERE cohort_definition_id = {int(cohort_definition_id)}"
            ).to_pylist()[0]
            generation = _generation(
                engine, definition, cohort_definition_id, table, int(counts["persons"]), int(counts["n"]), tables
            )
            _record_generation(engine, generation, tables)
    finally:
        if temporary is not None:
            engine.execute_native(f"DROP TABLE IF EXISTS {temporary}")
    return generation, (_analysis(definition, mask, threshold) if mask is not None else None)


def _replace_rows(engine: Engine, table: str, cohort_definition_id: int, rows: pa.Table) -> tuple[int, int]:
    """Rewrite ``table`` with ``rows`` in place of this id's rows (engines without transactions)."""
    rows = rows.sort_by([("subject_id", "ascending"), ("cohort_start_date", "ascending")])
    kept = (
        engine.query(
            f"SELECT {', '.join(COHORT_COLUMNS)} FROM {table} WHERE cohort_definition_id <> {int(cohort_definition_id)}"
        ).cast(_COHORT_SCHEMA)
        if engine.table_exists(table)
        else _COHORT_SCHEMA.empty_table()
    )
    engine.create_table(table, pa.concat_tables([kept, rows]), schema=_COHORT_SCHEMA)
    return len(pc.unique(rows.column("subject_id"))), rows.num_rows


def _generation(
    engine: Engine,
    definition: CohortDefinition,
    cohort_definition_id: int,
    table: str,
    persons: int,
    rows: int,
    tables: Collection[str] | None = None,
) -> CohortGeneration:
    tables = engine.list_tables() if tables is None else tables
    return CohortGeneration(
        cohort_definition_id=cohort_definition_id,
        definition_hash=definition.definition_hash(),
        data_version=data_version(engine, tables=tables),
        vocabulary_version=vocabulary_version(engine, tables=tables),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        persons=persons,
        rows=rows,
        table=table,
    )


_GENERATION_SCHEMA = pa.schema(
    [("cohort_definition_id", pa.int64()), ("definition_hash", pa.string()), ("data_version", pa.string()),
     ("vocabulary_version", pa.string()), ("generated_at", pa.string()), ("persons", pa.int64()),
     ("rows", pa.int64()), ("cohort_table", pa.string())]
)  # fmt: skip
"""``cohort_generation``: one row per cohort id, its latest generation ("table" is reserved in SQL)."""


def _record_generation(engine: Engine, generation: CohortGeneration, tables: Collection[str] | None = None) -> None:
    values = {**generation.__dict__, "cohort_table": generation.table}
    record = pa.Table.from_pylist([{name: values[name] for name in _GENERATION_SCHEMA.names}], _GENERATION_SCHEMA)
    tables = engine.list_tables() if tables is None else tables
    if not engine.capabilities.transactions:
        if "cohort_generation" in tables:
            earlier = engine.query(
                f"SELECT * FROM cohort_generation WHERE cohort_definition_id <> {int(generation.cohort_definition_id)}"
            )
            record = pa.concat_tables([earlier.select(_GENERATION_SCHEMA.names).cast(_GENERATION_SCHEMA), record])
        engine.create_table("cohort_generation", record)
        return
    with engine.transaction():
        if "cohort_generation" not in tables:
            engine.write_new_table("cohort_generation", [], schema=_GENERATION_SCHEMA)
        engine.execute_native(
            f"DELETE FROM cohort_generation WHERE cohort_definition_id = {int(generation.cohort_definition_id)}"
        )
        engine.insert("cohort_generation", record)


@dataclass(frozen=True)
class Counts:
    """Persons and events (after the expression limit) of a cohort.

    Exact from the domain functions. As released by the guarded services: ``release`` says how
    (``{"mode": "exact"}``, or noisy with its threshold, rounding and cost), ``None`` persons means under
    the threshold (0 included) and ``None`` events means withheld (one person can add many events).
    """

    persons: int | None
    events: int | None
    release: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttritionRow:
    """One inclusion rule in an attrition table: counts after the rules up to it, and with it alone."""

    rule_index: int
    name: str
    persons_cumulative: int | None
    events_cumulative: int | None
    persons_alone: int | None
    events_alone: int | None


@dataclass
class CohortAnalysis:
    """Per-event inclusion-rule bitmasks, computed once; what-if counts are then pure array operations.

    The arrays are sorted by person so that a count is one pass over them (no sort, no hash).
    """

    rule_names: list[str]
    person_id: np.ndarray
    start_date: np.ndarray
    mask: np.ndarray
    limit: str
    threshold: int = DEFAULT_THRESHOLD
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = np.lexsort((self.start_date, self.person_id))
        self.person_id, self.start_date, self.mask = self.person_id[order], self.start_date[order], self.mask[order]
        boundaries = np.flatnonzero(np.diff(self.person_id)) + 1
        self._starts = np.concatenate(([0], boundaries)) if self.person_id.size else np.array([], dtype=np.int64)

    def required_mask(self, enabled: Sequence[bool] | None = None) -> int:
        """The bitmask of the enabled rules (all rules when ``enabled`` is None)."""
        flags = [True] * len(self.rule_names) if enabled is None else list(enabled)
        if len(flags) != len(self.rule_names):
            raise ValueError(f"expected {len(self.rule_names)} rule flags, got {len(flags)}")
        return sum(1 << i for i, flag in enumerate(flags) if flag)

    def raw_count(self, required: int) -> tuple[int, int]:
        """Persons and events whose event satisfies every rule of ``required`` (no suppression)."""
        if not self.person_id.size:
            return 0, 0
        ok = (self.mask & np.int64(required)) == required
        per_person = np.logical_or.reduceat(ok, self._starts)
        persons = int(np.count_nonzero(per_person))
        events = int(np.count_nonzero(ok)) if self.limit == "all" else persons
        return persons, events

    def count(self, enabled: Sequence[bool] | None = None) -> Counts:
        """Exact counts with only the ``enabled`` rules applied (the live what-if)."""
        persons, events = self.raw_count(self.required_mask(enabled))
        return Counts(persons, events)

    def attrition(self) -> tuple[Counts, list[AttritionRow]]:
        """Exact qualified counts, then each rule in order (cumulative) and alone."""
        base = Counts(*self.raw_count(0))
        rows = []
        for index, name in enumerate(self.rule_names):
            cumulative = self.raw_count((1 << (index + 1)) - 1)
            alone = self.raw_count(1 << index)
            rows.append(AttritionRow(index, name, *cumulative, *alone))
        return base, rows


def analyze_cohort(
    engine: Engine, definition: CohortDefinition, *, threshold: int = DEFAULT_THRESHOLD, materialize: bool | None = None
) -> CohortAnalysis:
    """Compute the inclusion-rule bitmask of every qualified event (the cache behind what-if and attrition)."""
    compiled = compile_cohort(definition)
    return _analysis(definition, run_step(engine, compiled, "qualified_mask", materialize=materialize), threshold)


ANALYSIS_CACHE_BYTES = 256 * 1024 * 1024
"""At most this much memory holds cached analyses (each: 20 bytes per qualified event), least recently used out."""


class AnalysisCache:
    """Recent cohort analyses of this process, bounded in bytes, keyed by where and what they were computed on.

    The key is the warehouse (:attr:`Engine.location`), its data and vocabulary versions, the definition's
    hash and the threshold: a load, a vocabulary change or an edit of the definition is a new key, so a
    cached analysis is never served for data it was not computed on. Analyses are exact and per definition,
    not per caller: the guarded services scope and release them for each caller after the cache.
    """

    def __init__(self, max_bytes: int = ANALYSIS_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, ...], CohortAnalysis] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def size_of(analysis: CohortAnalysis) -> int:
        """Bytes held by an analysis's arrays."""
        return int(analysis.person_id.nbytes + analysis.start_date.nbytes + analysis.mask.nbytes)

    def get(self, key: tuple[str, ...]) -> CohortAnalysis | None:
        """The analysis cached under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[str, ...], analysis: CohortAnalysis) -> None:
        """Keep ``analysis`` unless it alone exceeds the bound; drop the least recently used beyond it."""
        size = self.size_of(analysis)
        if size > self.max_bytes:
            return
        with self._lock:
            self._entries[key] = analysis
            self._entries.move_to_end(key)
            while sum(self.size_of(a) for a in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every analysis."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


ANALYSIS_CACHE = AnalysisCache()
"""The process's cache of analyses (the API server keeps it across requests)."""


def cached_analysis(
    engine: Engine,
    definition: CohortDefinition,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    cache: AnalysisCache | None = None,
) -> CohortAnalysis:
    """:func:`analyze_cohort`, computed once per warehouse, data and vocabulary version, and definition.

    Examples
    --------
    >>> first = cached_analysis(engine, definition)  # doctest: +SKIP
    >>> cached_analysis(engine, definition) is first  # the same data: no query but the versions'  # doctest: +SKIP
    True
    """
    cache = ANALYSIS_CACHE if cache is None else cache
    tables = engine.list_tables()
    key = (engine.location, data_version(engine, tables=tables), vocabulary_version(engine, tables=tables),
           definition.definition_hash(), str(threshold))  # fmt: skip
    found = cache.get(key)
    if found is None:
        found = analyze_cohort(engine, definition, threshold=threshold)
        cache.put(key, found)
    return found


def _analysis(definition: CohortDefinition, table: pa.Table, threshold: int) -> CohortAnalysis:
    """The analysis of the rows of the ``qualified_mask`` step (person_id, start_date, inclusion_rule_mask)."""
    return CohortAnalysis(
        rule_names=[rule.name or f"rule {i + 1}" for i, rule in enumerate(definition.inclusion_rules)],
        person_id=table.column("person_id").to_numpy(zero_copy_only=False).astype(np.int64),
        start_date=table.column("start_date").cast(pa.int32()).to_numpy(zero_copy_only=False),
        mask=table.column("inclusion_rule_mask").to_numpy(zero_copy_only=False).astype(np.int64),
        limit=definition.expression_limit.kind,
        threshold=threshold,
    )


AGE_BANDS = ((0, 18), (18, 40), (40, 50), (50, 60), (60, 70), (70, 80), (80, 200))


def age_band(age: int) -> str:
    """The age band label of an age in years (``"50-59"``, ``"80+"``)."""
    for low, high in AGE_BANDS:
        if low <= age < high:
            return f"{low}+" if high >= 200 else f"{low}-{high - 1}"
    return "unknown"


SEXES = ("FEMALE", "MALE", "unknown")


def breakdown_cells(engine: Engine) -> dict[str, list[str]]:
    """The cells of every breakdown, fixed before any count: sexes, age bands, every care site, ``unknown``.

    Which cells exist never depends on who is in the cohort (a cell appearing would say "at least one").
    """
    sites: list[str] = []
    if engine.table_exists("care_site"):
        rows = engine.query("SELECT care_site_id, care_site_name FROM care_site").to_pylist()
        sites = sorted({row["care_site_name"] or str(row["care_site_id"]) for row in rows})
    bands = [age_band(low) for low, _ in AGE_BANDS]
    return {"sex": list(SEXES), "age_band": [*bands, "unknown"], "site": [*sites, "unknown"]}


def cohort_breakdowns(
    engine: Engine, cohort_definition_id: int = 1, *, table: str = "cohort"
) -> dict[str, dict[str, int]]:
    """Exact persons of a generated cohort by sex, age band (at cohort start) and site (care site).

    Each person is counted once per breakdown, at their first cohort period; every cell of
    :func:`breakdown_cells` is present (0 when empty).
    """
    check_identifier(table)
    rows = engine.query(
        "SELECT c.subject_id, MIN(c.cohort_start_date) AS start_date, MIN(p.year_of_birth) AS year_of_birth,"
        " MIN(p.gender_concept_id) AS gender_concept_id, MIN(p.care_site_id) AS care_site_id,"
        " MIN(cs.care_site_name) AS care_site_name"
        f" FROM {table} c JOIN person p ON p.person_id = c.subject_id"
        " LEFT JOIN care_site cs ON cs.care_site_id = p.care_site_id"
        f" WHERE c.cohort_definition_id = {int(cohort_definition_id)} GROUP BY c.subject_id"
    ).to_pylist()
    cells = breakdown_cells(engine)
    result = {name: dict.fromkeys(keys, 0) for name, keys in cells.items()}
    for row in rows:
        sex = {8507: "MALE", 8532: "FEMALE"}.get(row["gender_concept_id"], "unknown")
        age = row["start_date"].year - row["year_of_birth"] if row["year_of_birth"] is not None else None
        site = row["care_site_name"] or (str(row["care_site_id"]) if row["care_site_id"] is not None else "unknown")
        band = age_band(age) if age is not None else "unknown"
        for name, key in (("sex", sex), ("age_band", band), ("site", site)):
            cell = key if key in result[name] else "unknown"
            result[name][cell] += 1
    return result
