"""Cohort services, UI-agnostic: generate, count, attrition, live what-if, breakdowns, explain.

``generate_cohort`` writes the cohort rows (OMOP ``cohort`` table) and records the definition hash,
data version and vocabulary version. ``analyze_cohort`` computes, once, the inclusion-rule bitmask of
every qualified event; toggling rules then re-counts in memory (``CohortAnalysis.count``) without
touching the database. Every aggregate goes through ``suppress_small_cells`` unless the caller is
allowed raw counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from massalia.engine import Engine
from massalia.health.cohorts.compiler import CompiledCohort, compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD, suppress_count, suppress_small_cells

MATERIALIZING_ENGINES = frozenset({"postgres"})
"""Engines whose planner needs each step materialized and analyzed (see the compiler's docstring)."""

COHORT_COLUMNS = ("cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date")
_COHORT_SCHEMA = pa.schema(
    [("cohort_definition_id", pa.int64()), ("subject_id", pa.int64()),
     ("cohort_start_date", pa.date32()), ("cohort_end_date", pa.date32())]
)  # fmt: skip


def run_step(engine: Engine, compiled: CompiledCohort, until: str, *, materialize: bool | None = None) -> pa.Table:
    """Rows of step ``until`` (and the steps before it) on ``engine``.

    PostgreSQL runs the steps as temporary tables analyzed one by one; other engines run one statement.
    """
    if materialize is None:
        materialize = engine.name in MATERIALIZING_ENGINES
    if not materialize:
        return engine.query(compiled.single_statement(until=until))
    names = [step.name for step in compiled.steps]
    subset = CompiledCohort(compiled.steps[: names.index(until) + 1], compiled.cohort_definition_id, 0)
    for statement in subset.materialized(engine.dialect, analyze=engine.name in MATERIALIZING_ENGINES):
        engine.execute_native(statement)
    return engine.query_native(f"SELECT * FROM c_{until}")


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


def vocabulary_version(engine: Engine) -> str:
    """The vocabulary release (``vocabulary_version`` of the 'None' vocabulary row), or ``'unknown'``."""
    if not engine.table_exists("vocabulary"):
        return "unknown"
    rows = engine.query("SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'").to_pylist()
    return str(rows[0]["vocabulary_version"]) if rows and rows[0]["vocabulary_version"] else "unknown"


def data_version(engine: Engine) -> str:
    """A fingerprint of the clinical data: CDM source release and the row counts of the event tables."""
    parts: dict[str, object] = {}
    if engine.table_exists("cdm_source"):
        rows = engine.query("SELECT cdm_source_abbreviation, source_release_date, cdm_release_date FROM cdm_source")
        parts["cdm_source"] = [{k: str(v) for k, v in row.items()} for row in rows.to_pylist()]
    for table in ("person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
                  "procedure_occurrence", "measurement", "observation", "death"):  # fmt: skip
        if engine.table_exists(table):
            parts[table] = engine.row_count(table)
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


def generate_cohort(
    engine: Engine,
    definition: CohortDefinition,
    cohort_definition_id: int = 1,
    *,
    table: str = "cohort",
    materialize: bool | None = None,
) -> CohortGeneration:
    """Build the cohort and write its rows to ``table`` (replacing this id's rows), recording its provenance.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> from massalia.health.omop.schema import create_cdm_schema
    >>> from massalia.health.cohorts import import_circe
    >>> engine = connect("duckdb"); create_cdm_schema(engine)
    >>> generate_cohort(engine, import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}')).persons
    0
    """
    compiled = compile_cohort(definition, cohort_definition_id)
    rows = run_step(engine, compiled, "cohort", materialize=materialize).cast(_COHORT_SCHEMA)
    rows = rows.sort_by([("subject_id", "ascending"), ("cohort_start_date", "ascending")])
    kept = (
        engine.query(
            f"SELECT {', '.join(COHORT_COLUMNS)} FROM {table} WHERE cohort_definition_id <> {int(cohort_definition_id)}"
        ).cast(_COHORT_SCHEMA)
        if engine.table_exists(table)
        else _COHORT_SCHEMA.empty_table()
    )
    engine.create_table(table, pa.concat_tables([kept, rows]), schema=_COHORT_SCHEMA)
    generation = CohortGeneration(
        cohort_definition_id=cohort_definition_id,
        definition_hash=definition.definition_hash(),
        data_version=data_version(engine),
        vocabulary_version=vocabulary_version(engine),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        persons=len(set(rows.column("subject_id").to_pylist())),
        rows=rows.num_rows,
        table=table,
    )
    _record_generation(engine, generation)
    return generation


def _record_generation(engine: Engine, generation: CohortGeneration) -> None:
    record = pa.Table.from_pylist([{**generation.__dict__, "table": None} | {"cohort_table": generation.table}])
    record = record.drop_columns(["table"])  # "table" is a reserved word in SQL
    if engine.table_exists("cohort_generation"):
        earlier = engine.query(
            f"SELECT * FROM cohort_generation WHERE cohort_definition_id <> {int(generation.cohort_definition_id)}"
        )
        record = pa.concat_tables([earlier.cast(record.schema), record])
    engine.create_table("cohort_generation", record)


@dataclass(frozen=True)
class Counts:
    """Persons and events (after the expression limit) of a cohort; ``None`` where masked."""

    persons: int | None
    events: int | None


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

    def count(self, enabled: Sequence[bool] | None = None, *, allowed_raw: bool = False) -> Counts:
        """Counts with only the ``enabled`` rules applied (the live what-if)."""
        persons, events = self.raw_count(self.required_mask(enabled))
        return Counts(
            suppress_count(persons, self.threshold, allowed_raw=allowed_raw),
            suppress_count(events, self.threshold, allowed_raw=allowed_raw),
        )

    def attrition(self, *, allowed_raw: bool = False) -> tuple[Counts, list[AttritionRow]]:
        """Qualified counts, then each rule in order (cumulative) and alone."""
        persons, events = self.raw_count(0)
        base = Counts(
            suppress_count(persons, self.threshold, allowed_raw=allowed_raw),
            suppress_count(events, self.threshold, allowed_raw=allowed_raw),
        )
        rows = []
        for index, name in enumerate(self.rule_names):
            cumulative = self.raw_count((1 << (index + 1)) - 1)
            alone = self.raw_count(1 << index)
            masked = [suppress_count(v, self.threshold, allowed_raw=allowed_raw) for v in (*cumulative, *alone)]
            rows.append(AttritionRow(index, name, *masked))
        return base, rows


def analyze_cohort(
    engine: Engine, definition: CohortDefinition, *, threshold: int = DEFAULT_THRESHOLD, materialize: bool | None = None
) -> CohortAnalysis:
    """Compute the inclusion-rule bitmask of every qualified event (the cache behind what-if and attrition)."""
    compiled = compile_cohort(definition)
    table = run_step(engine, compiled, "qualified_mask", materialize=materialize)
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


def cohort_breakdowns(
    engine: Engine,
    cohort_definition_id: int = 1,
    *,
    table: str = "cohort",
    threshold: int = DEFAULT_THRESHOLD,
    allowed_raw: bool = False,
) -> dict[str, dict[str, int | None]]:
    """Persons of a generated cohort by sex, age band (at cohort start) and site (care site), suppressed.

    Each person is counted once per breakdown, at their first cohort period.
    """
    rows = engine.query(
        "SELECT c.subject_id, MIN(c.cohort_start_date) AS start_date, MIN(p.year_of_birth) AS year_of_birth,"
        " MIN(p.gender_concept_id) AS gender_concept_id, MIN(p.care_site_id) AS care_site_id,"
        " MIN(cs.care_site_name) AS care_site_name, MIN(g.concept_name) AS gender_name"
        f" FROM {table} c JOIN person p ON p.person_id = c.subject_id"
        " LEFT JOIN care_site cs ON cs.care_site_id = p.care_site_id"
        " LEFT JOIN concept g ON g.concept_id = p.gender_concept_id"
        f" WHERE c.cohort_definition_id = {int(cohort_definition_id)} GROUP BY c.subject_id"
    ).to_pylist()
    by_sex: dict[str, int] = {}
    by_age: dict[str, int] = {}
    by_site: dict[str, int] = {}
    for row in rows:
        sex = row["gender_name"] or {8507: "MALE", 8532: "FEMALE"}.get(row["gender_concept_id"], "unknown")
        age = row["start_date"].year - row["year_of_birth"] if row["year_of_birth"] is not None else None
        site = row["care_site_name"] or (str(row["care_site_id"]) if row["care_site_id"] is not None else "unknown")
        by_sex[sex] = by_sex.get(sex, 0) + 1
        band = age_band(age) if age is not None else "unknown"
        by_age[band] = by_age.get(band, 0) + 1
        by_site[site] = by_site.get(site, 0) + 1
    return {
        name: suppress_small_cells(dict(sorted(cells.items())), threshold, allowed_raw=allowed_raw)
        for name, cells in (("sex", by_sex), ("age_band", by_age), ("site", by_site))
    }
