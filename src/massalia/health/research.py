"""Guarded health services: every interface (CLI, API, portal) calls these, never the domain functions directly.

Each function takes the :class:`~massalia.governance.Caller` first (who calls, the governance deciding for
them, the channel recorded in the audit trail; built once per interface), then the warehouse engine, and
follows the same four steps:

1. **scope** — when a project is named, the cohort definition must be the project's (same definition hash),
   and every row read is restricted to the project's sites, period and cohort by the row-level policy of
   :mod:`massalia.governance.policy` (the OMOP and mart column names are adapted here, in ``_scope_*``);
   a project's generated cohorts live under their own warehouse ids (``project_cohort_id``);
2. **authorize** — :meth:`massalia.governance.Governance.authorize` decides from ``rights.yaml`` and, for
   actions touching personal data, appends the decision to the transparency log *before* any data is read;
3. **compute** — the domain function (:mod:`massalia.health.cohorts.service`, ``explain``, marts, extracts);
4. **disclose** — counts are exact when the grant allows raw counts (members of an approved project,
   inside its scope), otherwise released through the one mechanism of
   :mod:`massalia.governance.disclosure` (noise, rounding, threshold, per-user budget, audit), after the
   feasibility limits (no identifiers, dates at a coarse grain); person-level records only when the
   grant is row-level, pseudonymized (keyed per project, dates shifted) when it says so.

A researcher without an approved, unexpired project of which they are a member therefore gets only
noisy aggregates; a clinician gets identified records of their own site only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import AccessDenied, Caller, Governance, Grant, InvalidRequest, NotFound, ProjectScope, Role
from massalia.governance.disclosure import CountsAsked, Release, exact_release, release_batch, release_counts
from massalia.governance.limits import time_limited
from massalia.governance.policy import RowPolicy, ScopeColumns, check_local_cohort_id, project_cohort_id
from massalia.governance.pseudonym import date_shifts, pseudonymize
from massalia.health.cohorts.compiler import compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.explain import PersonExplanation, explain_person
from massalia.health.cohorts.feasibility import check_feasible_definition
from massalia.health.cohorts.service import (
    AttritionRow,
    CohortAnalysis,
    Counts,
    cached_analysis,
    cohort_breakdowns,
    data_version,
    generate_cohort,
    run_step,
)
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD
from massalia.health.extracts import ExtractPolicy, ExtractResult, build_extract
from massalia.health.marts.builder import MART_TABLE, build_mart, last_build
from massalia.health.marts.filters import (
    Breakdown,
    CountResult,
    FilterError,
    FilterSpec,
    MartNotBuiltError,
    breakdown_counts,
    check_feasibility,
    count_and_breakdowns,
    count_persons,
    normalized_spec,
    parse_clause,
)
from massalia.health.pseudonymized import pseudonymized_record, pseudonymized_table, shift_value, visit_ordinals

PROJECT_DATE_SHIFT_DAYS = 365
"""Amplitude of the per-person date shift of a project's pseudonymized data (explain and extracts alike)."""

MIN_PURPOSE_LENGTH = 5


# -- the project scope, adapted to OMOP and mart column names -------------------------------------------
OMOP_EVENT_DATES: dict[str, str | None] = {
    "person": None, "observation_period": "observation_period_start_date", "visit_occurrence": "visit_start_date",
    "condition_occurrence": "condition_start_date", "drug_exposure": "drug_exposure_start_date",
    "procedure_occurrence": "procedure_date", "measurement": "measurement_date", "observation": "observation_date",
    "death": "death_date", "episode": "episode_start_date", "note": "note_date",
}  # fmt: skip
"""The date of an OMOP row in the sense of a project's period (``None``: the row is the person itself)."""

MART_ALIAS = "m"
MART_SCOPE = ScopeColumns(
    site=exp.column("care_site_code", table=MART_ALIAS),
    date=exp.column("diagnosis_date", table=MART_ALIAS),  # the mart's index date
    person=exp.column("person_id", table=MART_ALIAS),
)
"""Where the mart keeps a person's site and index date."""


def project_scope(caller: Caller, action: str, project_id: int) -> ProjectScope:
    """The scope of the project a call names, read only for those who may name it (the first check of a call).

    A caller who is neither a member of the project nor one who oversees every project (admin, DPO) is
    refused before anything of the project is read, with the same words whether the project exists or not:
    naming another project's id must tell nothing of its variables, sites, period, cohort or existence,
    nor restrict a count to its scope. The refusal is audited under ``action``.
    """
    gov = caller.governance
    if not gov.may_name_project(caller.principal, project_id):
        reason = f"not a member of project {project_id}: only its members may act under it"
        if gov.rights.audited(action):
            gov.audit(caller.principal, action, decision="denied", denied_because=reason, project_id=project_id)
        raise AccessDenied(action, reason)
    return gov.project_scope(project_id)


def _scope_policy(caller: Caller, action: str, project_id: int | None) -> RowPolicy | None:
    """The row-level policy of the project named in the call, or ``None`` without a project."""
    return None if project_id is None else RowPolicy.of(project_scope(caller, action, project_id))


def _scope_key(caller: Caller, action: str, project_id: int | None) -> dict[str, Any] | None:
    """What a project's scope changes in a count, for the release key: its sites and period, not its id.

    Two calls that count the same rows share one stored answer whatever project they name, so creating
    many draft projects of the same scope buys no fresh noise to average.
    """
    policy = _scope_policy(caller, action, project_id)
    if policy is None or not (policy.sites or policy.has_period):
        return None
    period = [None if day is None else day.isoformat() for day in (policy.period_start, policy.period_end)]
    return {"sites": sorted(policy.sites), "period": period}


def _scope_persons_query(policy: RowPolicy) -> exp.Select | None:
    """The persons of the project's sites (``person.care_site_id``), or ``None`` when every site is in scope."""
    site = policy.site_predicate(exp.column("care_site_source_value", table="cs"))
    if site is None:
        return None
    return (
        exp.select(exp.column("person_id", table="p"))
        .from_(exp.to_table("person").as_("p"))
        .join(exp.to_table("care_site").as_("cs"), on="cs.care_site_id = p.care_site_id", join_type="left")
        .where(site)
    )


def _scope_cohort_rows(policy: RowPolicy) -> exp.Expr | None:
    """The policy over generated cohort rows: the person's site and the index date (``cohort_start_date``)."""
    parts: list[exp.Expr] = []
    persons = _scope_persons_query(policy)
    if persons is not None:
        parts.append(exp.In(this=exp.column("subject_id", table="generated"), query=exp.Subquery(this=persons)))
    period = policy.period_predicate(exp.column("cohort_start_date", table="generated"))
    if period is not None:
        parts.append(period)
    return exp.and_(*parts) if parts else None


def _scope_person_ok(engine: Engine, policy: RowPolicy | None, person_id: int) -> bool:
    """Whether a person is of the project's sites (always, when the project names no site)."""
    persons = None if policy is None else _scope_persons_query(policy)
    if persons is None:
        return True
    query = persons.where(exp.column("person_id", table="p").eq(exp.Literal.number(int(person_id))))
    rows: int = engine.query(query).num_rows
    return rows > 0


def _scope_analysis(engine: Engine, analysis: CohortAnalysis, policy: RowPolicy | None) -> CohortAnalysis:
    """The analysis restricted to the events of the project's sites whose index date is in its period."""
    if policy is None or not (policy.sites or policy.has_period):
        return analysis
    keep = np.ones(analysis.person_id.shape, dtype=bool)
    persons = _scope_persons_query(policy)
    if persons is not None:
        allowed = engine.query(persons).column("person_id").to_numpy(zero_copy_only=False).astype(np.int64)
        keep &= np.isin(analysis.person_id, allowed)
    epoch = dt.date(1970, 1, 1)  # start_date holds days since the epoch (date32)
    if policy.period_start is not None:
        keep &= analysis.start_date >= (policy.period_start - epoch).days
    if policy.period_end is not None:
        keep &= analysis.start_date <= (policy.period_end - epoch).days
    return CohortAnalysis(
        rule_names=analysis.rule_names, person_id=analysis.person_id[keep], start_date=analysis.start_date[keep],
        mask=analysis.mask[keep], limit=analysis.limit, threshold=analysis.threshold,
    )  # fmt: skip


def _cohort_id(engine: Engine, project_id: int | None, cohort_id: int, policy: RowPolicy | None) -> int:
    """The warehouse id of the cohort a caller calls ``cohort_id`` (under ``project_id``: the project's own).

    Under a project that restricts no row (no site, no period), a cohort generated without a project
    (the operator's shared cohort) is used when the project has not generated its own: the same
    definition (checked by hash) gives the same rows.
    """
    own = project_cohort_id(project_id, cohort_id)
    if project_id is None or _generated_hash(engine, own) is not None:
        return own
    if policy is not None and not (policy.sites or policy.has_period):
        return check_local_cohort_id(cohort_id)
    return own


def _resource(definition: CohortDefinition, **extra: Any) -> dict[str, Any]:
    return {"definition_hash": definition.definition_hash(), **extra}


def _check_scope(caller: Caller, action: str, definition: CohortDefinition, project_id: int | None) -> None:
    """Refuse (and audit the refusal) when a project is named but the definition is not its cohort."""
    gov, principal = caller.governance, caller.principal
    if project_id is None:
        return
    scope = project_scope(caller, action, project_id)
    if scope.cohort_hash and scope.cohort_hash != definition.definition_hash():
        reason = "the cohort definition is not the project's (definition hash differs)"
        if gov.rights.audited(action):
            gov.audit(principal, action, decision="denied", denied_because=reason, project_id=project_id,
                      resource=_resource(definition))  # fmt: skip
        raise AccessDenied(action, reason)


def _authorize(
    caller: Caller,
    action: str,
    definition: CohortDefinition,
    project_id: int | None,
    *,
    site: str | None = None,
    **detail: Any,
) -> Grant:
    _check_scope(caller, action, definition, project_id)
    resource = _resource(definition, **detail.pop("resource", {}))
    return caller.authorize(
        action, project_id=project_id, site=site, detail={"resource": resource, "channel": caller.channel, **detail}
    )


def _release(
    caller: Caller,
    grant: Grant,
    action: str,
    query: Mapping[str, Any],
    true_counts: Mapping[str, int],
    *,
    sensitivity: int = 1,
) -> Release:
    """Exact counts under a raw-counts grant, else the one release mechanism (noise, budget, audit)."""
    gov, principal = caller.governance, caller.principal
    if grant.raw_counts:
        return exact_release(true_counts)
    return release_counts(gov, principal, action, query, true_counts, sensitivity=sensitivity)


def _feasible(grant: Grant, definition: CohortDefinition) -> None:
    """Without raw counts, a definition may not single out persons (ids, exact-date windows)."""
    if not grant.raw_counts:
        problems = check_feasible_definition(definition)
        if problems:
            raise InvalidRequest("cohort definition not allowed for feasibility counts: " + "; ".join(problems))


@time_limited
def count(
    caller: Caller,
    engine: Engine,
    definition: CohortDefinition,
    *,
    project_id: int | None = None,
    enabled: Sequence[bool] | None = None,
) -> Counts:
    """Persons and events of a cohort, with the inclusion rules ``enabled`` (what-if).

    Exact under an approved project; otherwise persons are released noisy (events withheld: one person
    can add many events, so no bounded-sensitivity release exists for them).

    Examples
    --------
    >>> count(Caller(researcher, gov), engine, definition).persons  # doctest: +SKIP
    120
    """
    grant = _authorize(caller, "health.cohort.count", definition, project_id,
                       enabled=list(enabled) if enabled is not None else None)  # fmt: skip
    _feasible(grant, definition)
    analysis = cached_analysis(engine, definition, threshold=DEFAULT_THRESHOLD)
    analysis = _scope_analysis(engine, analysis, _scope_policy(caller, "health.cohort.count", project_id))
    exact = analysis.count(enabled)
    if grant.raw_counts:
        return Counts(exact.persons, exact.events, {"mode": "exact"})
    flags = [True] * len(analysis.rule_names) if enabled is None else [bool(flag) for flag in enabled]
    required = analysis.required_mask(flags)
    # The same rules required give the same persons: key on the rules, not on how the toggles were spelled.
    query = {"definition": definition.definition_hash(), "required_rules": required, "data": data_version(engine),
             "scope": _scope_key(caller, "health.cohort.count", project_id)}  # fmt: skip
    release = _release(caller, grant, "health.cohort.count", query, {"persons": int(exact.persons or 0)})
    return Counts(release.values["persons"], None, {**release.describe(), "withheld": ["events"]})


@time_limited
def attrition(
    caller: Caller,
    engine: Engine,
    definition: CohortDefinition,
    *,
    project_id: int | None = None,
) -> tuple[Counts, list[AttritionRow]]:
    """The attrition table of a cohort: qualified counts, then each rule cumulative and alone.

    Exact under an approved project; otherwise the persons counts are one noisy release (sensitivity
    ``1 + 2 × rules``: one person can change every row) and event counts are withheld.
    """
    grant = _authorize(caller, "health.cohort.attrition", definition, project_id)
    _feasible(grant, definition)
    analysis = cached_analysis(engine, definition, threshold=DEFAULT_THRESHOLD)
    analysis = _scope_analysis(engine, analysis, _scope_policy(caller, "health.cohort.attrition", project_id))
    base, rows = analysis.attrition()
    if grant.raw_counts:
        return Counts(base.persons, base.events, {"mode": "exact"}), rows
    cells = {"qualified": int(base.persons or 0)}
    for row in rows:
        cells[f"rule {row.rule_index} cumulative"] = int(row.persons_cumulative or 0)
        cells[f"rule {row.rule_index} alone"] = int(row.persons_alone or 0)
    query = {"definition": definition.definition_hash(), "data": data_version(engine),
             "scope": _scope_key(caller, "health.cohort.attrition", project_id)}  # fmt: skip
    release = _release(caller, grant, "health.cohort.attrition", query, cells, sensitivity=len(cells))
    values = release.values
    released = [
        AttritionRow(row.rule_index, row.name, values[f"rule {row.rule_index} cumulative"], None,
                     values[f"rule {row.rule_index} alone"], None)
        for row in rows
    ]  # fmt: skip
    return Counts(values["qualified"], None, {**release.describe(), "withheld": ["events"]}), released


def _generated_hash(engine: Engine, cohort_definition_id: int) -> str | None:
    if not engine.table_exists("cohort_generation"):
        return None
    rows = engine.query(
        f"SELECT definition_hash FROM cohort_generation WHERE cohort_definition_id = {int(cohort_definition_id)}"
    ).to_pylist()
    return str(rows[0]["definition_hash"]) if rows else None


def _generated_version(engine: Engine, cohort_definition_id: int) -> str:
    rows = engine.query(
        "SELECT data_version, generated_at FROM cohort_generation"
        f" WHERE cohort_definition_id = {int(cohort_definition_id)}"
    ).to_pylist()
    return f"{rows[0]['data_version']}@{rows[0]['generated_at']}" if rows else "none"


@time_limited
def breakdowns(
    caller: Caller,
    engine: Engine,
    definition: CohortDefinition,
    *,
    cohort_definition_id: int = 1,
    project_id: int | None = None,
) -> dict[str, Any]:
    """Persons of the generated cohort ``cohort_definition_id`` by sex, age band and site.

    Exact under an approved project, otherwise one noisy release of every cell (sensitivity 3: a person
    is in one cell of each breakdown). The answer holds ``sex``, ``age_band``, ``site`` and ``release``.

    Raises
    ------
    InvalidRequest
        If that cohort was not generated from ``definition`` (generate it first).
    """
    policy = _scope_policy(caller, "health.cohort.breakdowns", project_id)
    stored = _cohort_id(engine, project_id, cohort_definition_id, policy)
    generated = _generated_hash(engine, stored)
    if generated != definition.definition_hash():
        raise InvalidRequest(f"cohort {cohort_definition_id} was not generated from this definition; generate it first")
    grant = _authorize(caller, "health.cohort.breakdowns", definition, project_id,
                       resource={"cohort_definition_id": int(cohort_definition_id), "stored_id": stored})  # fmt: skip
    _feasible(grant, definition)
    exact = cohort_breakdowns(engine, stored)
    cells = {f"{name}={key}": value for name, counts in exact.items() for key, value in counts.items()}
    query = {"definition": definition.definition_hash(), "cohort_definition_id": stored,
             "generation": _generated_version(engine, stored)}  # fmt: skip
    release = _release(caller, grant, "health.cohort.breakdowns", query, cells, sensitivity=len(exact))
    result: dict[str, Any] = {
        name: {key: release.values[f"{name}={key}"] for key in counts} for name, counts in exact.items()
    }
    result["release"] = release.describe()
    return result


@dataclass(frozen=True)
class GenerationSummary:
    """What a guarded generation reports: the provenance, with counts released as the grant allows."""

    cohort_definition_id: int
    definition_hash: str
    data_version: str
    vocabulary_version: str
    generated_at: str
    persons: int | None
    rows: int | None
    table: str
    release: dict[str, Any] | None = None


@time_limited
def generate(
    caller: Caller,
    engine: Engine,
    definition: CohortDefinition,
    *,
    cohort_definition_id: int = 1,
    project_id: int | None = None,
) -> GenerationSummary:
    """Generate the cohort into the warehouse's COHORT table; report its provenance and released counts.

    Under a project the rows go to the project's own warehouse id (``project_cohort_id``: no other project
    can overwrite them) and only the rows of its sites and period are written; the summary reports the
    caller's ``cohort_definition_id``. Without raw counts, persons are released noisy and the row count is
    withheld; both are withheld when the definition fails the feasibility limits (record identifiers, dates
    finer than a month).
    """
    stored = project_cohort_id(project_id, cohort_definition_id)
    policy = _scope_policy(caller, "health.cohort.generate", project_id)
    grant = _authorize(caller, "health.cohort.generate", definition, project_id,
                       resource={"cohort_definition_id": int(cohort_definition_id), "stored_id": stored})  # fmt: skip
    restrict = _scope_cohort_rows(policy) if policy is not None else None
    try:
        generation = generate_cohort(engine, definition, stored, restrict=restrict)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    generation = dataclasses.replace(generation, cohort_definition_id=int(cohort_definition_id))
    fields = {f.name: getattr(generation, f.name) for f in dataclasses.fields(generation)}
    if grant.raw_counts:
        return GenerationSummary(**fields, release={"mode": "exact"})
    problems = check_feasible_definition(definition)
    if problems:
        # The operator may generate any cohort (rows go to the warehouse), but a count of a definition
        # that singles persons out is no feasibility count: it is withheld, not released.
        fields.update(persons=None, rows=None)
        reason = "; ".join(problems)
        return GenerationSummary(**fields, release={"mode": "withheld", "withheld": ["persons", "rows"],
                                                    "reason": reason})  # fmt: skip
    query = {"definition": generation.definition_hash, "data": generation.data_version, "stored_id": stored}
    release = _release(caller, grant, "health.cohort.generate", query, {"persons": generation.persons})
    fields.update(persons=release.values["persons"], rows=None)
    return GenerationSummary(**fields, release={**release.describe(), "withheld": ["rows"]})


def person_site(engine: Engine, person_id: int) -> str | None:
    """The care site code (``care_site_source_value``, e.g. ``chu_nord``) of a person, or ``None``."""
    if not engine.table_exists("person") or not engine.table_exists("care_site"):
        return None
    rows = engine.query(
        "SELECT cs.care_site_source_value AS site FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id"
        f" WHERE p.person_id = {int(person_id)}"
    ).to_pylist()
    return str(rows[0]["site"]) if rows and rows[0]["site"] is not None else None


@dataclass(frozen=True)
class Explanation:
    """A guarded explanation and what it discloses.

    ``person`` is the reference the caller used (a person id, or the project pseudonym when
    ``grant.pseudonymized``, in which case ``explanation`` is allow-listed: see ``explain``).
    """

    person: int | str
    grant: Grant
    explanation: PersonExplanation

    @property
    def in_cohort(self) -> bool:
        """Whether the person has at least one cohort period."""
        return self.explanation.in_cohort


def _resolve_pseudonym(
    gov: Governance, engine: Engine, definition: CohortDefinition, project_id: int, pseudonym: str
) -> int:
    """The person id behind a project pseudonym, searched among the persons of the project's cohort and sites."""
    compiled = compile_cohort(definition)
    people = run_step(engine, compiled, "qualified_mask").column("person_id")
    candidates = set(people.to_pylist())
    persons = _scope_persons_query(RowPolicy.of(gov.project_scope(project_id)))
    if persons is not None:  # a person of another site is no person of the project: not found
        candidates &= set(engine.query(persons).column("person_id").to_pylist())
    people = pa.array(sorted(candidates), pa.int64())
    if len(people):
        found = pseudonymize(people, key=gov.project_key(project_id), project=project_id).index(pseudonym).as_py()
        if found >= 0:
            return int(people[found].as_py())
    raise NotFound(f"no person with pseudonym {pseudonym!r} among the qualified events of project {project_id}")


def _pseudonymized(explanation: PersonExplanation, pseudonym: str, shift: int) -> PersonExplanation:
    """The explanation allow-listed (``massalia.health.pseudonymized``): pseudonym, shifted dates, concept ids.

    Record ids become ordinals; every other warehouse key (visit, provider, care site...) is dropped.
    """

    def records(rows: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
        return [pseudonymized_record(row, pseudonym, shift, position + 1) for position, row in enumerate(rows)]

    events = []
    for position, event in enumerate(explanation.events):
        rules = [
            dataclasses.replace(
                rule, evidence=[dataclasses.replace(ev, records=records(ev.records)) for ev in rule.evidence]
            )
            for rule in event.rules
        ]
        events.append(
            dataclasses.replace(event, event_id=position + 1, start_date=shift_value(event.start_date, shift),
                                end_date=shift_value(event.end_date, shift), rules=rules)
        )  # fmt: skip
    return PersonExplanation(
        person_id=0,
        primary_events=records(explanation.primary_events),
        events=events,
        cohort_periods=records(explanation.cohort_periods),
    )


def _record_date(record: Mapping[str, object]) -> dt.date | None:
    """A record's date in the sense of the period (its start date, else its first event date), or ``None``.

    The start is ``start_date``, ``cohort_start_date`` or ``<domain>_start_date``; else ``<domain>_date``.
    Other dates of a record (its end, its observation period's bounds) describe it, they do not date it.
    """
    names = ["start_date", "cohort_start_date"]
    names += [k for k in record if k.endswith("_start_date") and not k.startswith("op_")]
    names += [k for k in record if k.endswith("_date") and not k.startswith("op_") and "end" not in k]
    for name in names:
        value = record.get(name)
        if isinstance(value, dt.date):
            return value
    return None


def _record_in_period(record: Mapping[str, object], policy: RowPolicy) -> bool:
    """Whether a record already read is dated in the project's period (undated records describe, and stay)."""
    day = _record_date(record)
    return day is None or policy.contains_date(day)


def _scope_explanation(explanation: PersonExplanation, policy: RowPolicy | None) -> PersonExplanation:
    """The explanation without the entry events, records and periods dated outside the project's period."""
    if policy is None or not policy.has_period:
        return explanation

    def records(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [row for row in rows if _record_in_period(row, policy)]

    events = [
        dataclasses.replace(event, rules=[
            dataclasses.replace(rule, evidence=[dataclasses.replace(ev, records=records(ev.records))
                                                for ev in rule.evidence])
            for rule in event.rules
        ])
        for event in explanation.events
        if isinstance(event.start_date, dt.date) and policy.contains_date(event.start_date)
    ]  # fmt: skip
    return PersonExplanation(
        person_id=explanation.person_id, primary_events=records(explanation.primary_events), events=events,
        cohort_periods=records(explanation.cohort_periods),
    )  # fmt: skip


def _refuse_out_of_scope(caller: Caller, action: str, project_id: int, person: object) -> None:
    """Audit and refuse a person outside the project's sites (as if they did not exist for the project)."""
    gov, principal = caller.governance, caller.principal
    reason = "the person is not of the project's sites"
    gov.audit(principal, action, decision="denied", denied_because=reason, project_id=project_id,
              resource={"person_id": person})  # fmt: skip
    raise AccessDenied(action, reason)


@time_limited
def explain(
    caller: Caller,
    engine: Engine,
    definition: CohortDefinition,
    person_id: int | str,
    *,
    purpose: str,
    project_id: int | None = None,
) -> Explanation:
    """Why one person is in or out of a cohort; audited (with ``purpose``) before anything is read.

    - members of an approved pseudonymized project name the person by its project pseudonym and see
      the allow-listed records (``massalia.health.pseudonymized``): shifted dates, concept ids, ordinals
      in place of record ids, no other warehouse key;
    - clinicians see the identified records of persons of their own site;
    - nobody else, the local operator included: an in/out verdict on a named person is already personal
      data (an oracle on who has what), so without an approved project there is nothing per person.
      A grant that is not row-level (a deployment's own ``rights.yaml`` rule) is refused and audited.

    Raises
    ------
    InvalidRequest
        No purpose given, or a person reference of the wrong kind for the grant.
    AccessDenied
        When the rights do not allow it (the refusal is audited too).
    """
    gov, principal = caller.governance, caller.principal
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE_LENGTH:
        raise InvalidRequest(f"a purpose (at least {MIN_PURPOSE_LENGTH} characters) is required to explain a person")
    site = None
    if principal.has_role(Role.CLINICIAN) and isinstance(person_id, int):
        site = person_site(engine, person_id)
    reference = person_id if isinstance(person_id, int) else str(person_id)
    grant = _authorize(caller, "health.cohort.explain", definition, project_id, site=site,
                       resource={"person_id": reference}, purpose=purpose.strip())  # fmt: skip
    if grant.pseudonymized:
        if not isinstance(person_id, str) or project_id is None:
            raise InvalidRequest("under a pseudonymized project, name the person by the project's pseudonym")
        real = _resolve_pseudonym(gov, engine, definition, project_id, person_id)
        days = date_shifts([real], key=gov.project_key(project_id), project=project_id,
                           max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py()  # fmt: skip
        policy = _scope_policy(caller, "health.cohort.explain", project_id)
        scoped = _scope_explanation(explain_person(engine, definition, real), policy)
        return Explanation(person_id, grant, _pseudonymized(scoped, person_id, days))
    if not grant.row_level:
        reason = "no per-person verdict without row-level access (a clinician's own site or an approved project)"
        gov.audit(principal, "health.cohort.explain", decision="denied", denied_because=reason, project_id=project_id,
                  resource=_resource(definition, person_id=reference))  # fmt: skip
        raise AccessDenied("health.cohort.explain", reason)
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        raise InvalidRequest(f"person_id must be an integer, got {person_id!r}")
    policy = _scope_policy(caller, "health.cohort.explain", project_id)
    if project_id is not None and not _scope_person_ok(engine, policy, person_id):
        _refuse_out_of_scope(caller, "health.cohort.explain", project_id, person_id)
    return Explanation(person_id, grant, _scope_explanation(explain_person(engine, definition, person_id), policy))


PATIENT_TABLES = (
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death",
)  # fmt: skip
"""The OMOP tables a patient view shows, one section each."""
RECORD_TABLES = frozenset({*PATIENT_TABLES, "episode", "note"})
"""The tables a caller of :func:`patient_view` may ask for (the timeline adds episodes and documents)."""


@dataclass(frozen=True)
class PatientView:
    """One patient's records, table by table, and the grant they were shown under.

    Under a pseudonymized grant ``person`` is the project pseudonym and each table carries only the
    allow-listed columns of ``massalia.health.pseudonymized``: every date shifted by the person's
    project shift, the birth date parts derived from the shifted birth date, concept ids and values,
    and ordinals (``record``, ``visit``) in place of record ids; every other id and every source value
    or free text is dropped.
    """

    person: int | str
    grant: Grant
    tables: dict[str, pa.Table]


@time_limited
def patient_view(
    caller: Caller,
    engine: Engine,
    person: int | str,
    *,
    purpose: str,
    project_id: int | None = None,
    sections: Sequence[str] = PATIENT_TABLES,
) -> PatientView:
    """One patient's records (``health.patient.view``), audited with ``purpose`` before anything is read.

    Clinicians see the identified records of persons of their own site; members of an approved
    pseudonymized project name the person by its project pseudonym (searched among the project
    cohort's persons) and see pseudonymized records. Nobody else may.
    """
    gov, principal = caller.governance, caller.principal
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE_LENGTH:
        raise InvalidRequest(f"a purpose (at least {MIN_PURPOSE_LENGTH} characters) is required to view a patient")
    if not set(sections) <= RECORD_TABLES:
        raise InvalidRequest(f"a patient view shows the tables {', '.join(sorted(RECORD_TABLES))}")
    site = person_site(engine, person) if principal.has_role(Role.CLINICIAN) and isinstance(person, int) else None
    detail = {"resource": {"person_id": person}, "purpose": purpose.strip(), "channel": caller.channel}
    grant = gov.authorize(principal, "health.patient.view", project_id=project_id, site=site, detail=detail)
    if grant.pseudonymized and project_id is not None:
        real, shift = project_person(caller, engine, "health.patient.view", project_id, person)
    elif isinstance(person, int) and not isinstance(person, bool) and not grant.pseudonymized:
        real, shift = person, 0
    else:
        raise InvalidRequest(f"person must be a person_id (an integer), got {person!r}")
    policy = _scope_policy(caller, "health.patient.view", project_id)
    if project_id is not None and not _scope_person_ok(engine, policy, real):
        _refuse_out_of_scope(caller, "health.patient.view", project_id, person)
    tables = {
        name: engine.query(person_rows(name, int(real), policy)) for name in sections if engine.table_exists(name)
    }
    if grant.pseudonymized:
        visits = visit_ordinals(tables.get("visit_occurrence"))
        tables = {name: pseudonymized_table(rows, name, str(person), shift, visits) for name, rows in tables.items()}
    return PatientView(person, grant, tables)


def project_person(caller: Caller, engine: Engine, action: str, project_id: int, person: object) -> tuple[int, int]:
    """The person id behind a project pseudonym and their project date shift, for a pseudonymized grant.

    The pseudonym is searched among the project cohort's persons of the project's sites (see
    ``_resolve_pseudonym``); call it only after ``action`` was authorized with a pseudonymized grant.

    Raises
    ------
    InvalidRequest
        The person is not named by a pseudonym, or the project has no cohort.
    NotFound
        No person of the project has this pseudonym.
    """
    gov = caller.governance
    cohort = project_scope(caller, action, project_id).cohort
    if not isinstance(person, str) or cohort is None:
        raise InvalidRequest("under a pseudonymized project, name the person by its project pseudonym")
    real = _resolve_pseudonym(gov, engine, CohortDefinition.model_validate(cohort), project_id, person)
    key = gov.project_key(project_id)
    return real, int(date_shifts([real], key=key, project=project_id, max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py())


def person_rows(table: str, person_id: int, policy: RowPolicy | None) -> exp.Select:
    """``SELECT * FROM table WHERE person_id = …``, and its event date in the project's period."""
    query = exp.select("*").from_(exp.to_table(table)).where(exp.column("person_id").eq(exp.Literal.number(person_id)))
    date = OMOP_EVENT_DATES.get(table)
    period = policy.period_predicate(exp.column(date)) if policy is not None and date is not None else None
    return query.where(period) if period is not None else query


def _mart_spec(filters: Any) -> Any:
    try:
        if isinstance(filters, FilterSpec):
            return filters
        if isinstance(filters, Mapping):
            return FilterSpec.model_validate(filters)
        if isinstance(filters, Sequence) and not isinstance(filters, str | bytes):
            return FilterSpec(all=[parse_clause(item) if isinstance(item, str) else item for item in filters])
    except (FilterError, ValueError) as error:
        raise InvalidRequest(f"mart filter: {error}") from None
    raise InvalidRequest("mart filters: a FilterSpec, its JSON object, or a list of 'variable op value' clauses")


def _check_mart_scope(
    caller: Caller,
    engine: Engine,
    action: str,
    spec: Any,
    project_id: int | None,
    extra_variables: Sequence[str] = (),
) -> tuple[Any, exp.Expr | None]:
    """Under a project, the filter may use only the project's variables and cohort.

    Returns the filter with its cohort id resolved to the project's own, and the row-level restriction
    of the project's sites and period over the mart (``None`` without a project).
    """
    gov, principal = caller.governance, caller.principal
    if project_id is None:
        if spec.cohort_definition_id is not None:  # a project's block of ids is read under that project only
            check_local_cohort_id(spec.cohort_definition_id)
        return spec, None
    scope = project_scope(caller, action, project_id)
    policy = RowPolicy.of(scope)
    used = {clause.variable for clause in spec.all} | {c.variable for group in spec.any_of for c in group}
    used |= set(extra_variables)
    outside = policy.variables_outside(used)
    stored = None
    if spec.cohort_definition_id is not None:
        stored = _cohort_id(engine, project_id, spec.cohort_definition_id, policy)
    reason = None
    if outside:
        reason = f"variable(s) outside the project's scope: {', '.join(outside)}"
    elif scope.cohort_hash and spec.cohort_definition_id is None:
        reason = "the project is scoped to a cohort: restrict the filter to its generated cohort"
    elif scope.cohort_hash and stored is not None and _generated_hash(engine, stored) != scope.cohort_hash:
        reason = f"cohort {spec.cohort_definition_id} was not generated from the project's definition"
    if reason:
        gov.audit(principal, action, decision="denied", denied_because=reason, project_id=project_id,
                  resource={"filters": spec.model_dump(mode="json")})  # fmt: skip
        raise AccessDenied(action, reason)
    if stored is not None:
        spec = spec.model_copy(update={"cohort_definition_id": stored})
    return spec, policy.predicate(MART_SCOPE)


def _mart_counts(
    caller: Caller,
    engine: Engine,
    spec: Any,
    project_id: int | None,
    by: str | None = None,
) -> tuple[Grant, Release, dict[str | bool | None, str] | None]:
    """Authorize, check the feasibility limits, count exactly, and release (one count, or a breakdown)."""
    resource = {"filters": spec.model_dump(mode="json"), **({"by": by} if by else {})}
    spec, restrict = _check_mart_scope(caller, engine, "health.mart.count", spec, project_id,
                                       extra_variables=[by] if by else [])  # fmt: skip
    grant = caller.authorize("health.mart.count", project_id=project_id,
                             detail={"resource": resource, "channel": caller.channel})  # fmt: skip
    try:
        if not grant.raw_counts:
            check_feasibility(spec, by)
        scope = _scope_key(caller, "health.mart.count", project_id)
        query: dict[str, Any] = {"filters": normalized_spec(spec), "by": by, "scope": scope}
        if by is None:
            cells: dict[str, int] = {"persons": count_persons(engine, spec, restrict=restrict)}
            names = None
        else:
            exact = breakdown_counts(engine, spec, by, restrict=restrict)
            names = {key: json.dumps(key) for key in exact}
            cells = {names[key]: value for key, value in exact.items()}
            cells["total"] = sum(exact.values())
    except MartNotBuiltError:
        raise  # the warehouse's state, not the filter, is wrong: the interfaces say so (HTTP 409)
    except FilterError as error:
        raise InvalidRequest(f"mart filter: {error}") from None
    if not grant.raw_counts:
        query["mart"] = _mart_version(engine)
    sensitivity = 1 if by is None else 2  # a person is in one cell and in the total
    release = _release(caller, grant, "health.mart.count", query, cells, sensitivity=sensitivity)
    return grant, release, names


@time_limited
def mart_count(
    caller: Caller,
    engine: Engine,
    filters: Any,
    *,
    project_id: int | None = None,
) -> Any:
    """Persons of the research mart matching ``filters``: exact under an approved project, otherwise noisy.

    ``filters`` is a :class:`massalia.health.marts.filters.FilterSpec`, its JSON object, or a list of
    ``"variable op value"`` clauses (AND-ed). Without raw counts the feasibility limits apply (no
    identifiers, dates at their catalogue grain). Returns the mart's ``CountResult``.
    """
    spec = _mart_spec(filters)
    _, release, _ = _mart_counts(caller, engine, spec, project_id)
    return CountResult(count=release.values["persons"], shown=release.shown("persons"), release=release.describe())


@time_limited
def mart_breakdown(
    caller: Caller,
    engine: Engine,
    filters: Any,
    by: str,
    *,
    project_id: int | None = None,
) -> Any:
    """Persons matching ``filters`` by value of the category ``by`` (action ``health.mart.count``).

    Every value of the category is a cell (and ``None``: no value), plus the total: exact under an
    approved project, otherwise one noisy release. Returns the mart's ``Breakdown``.
    """
    spec = _mart_spec(filters)
    _, release, names = _mart_counts(caller, engine, spec, project_id, by=by)
    if names is None:  # a breakdown always names its cells
        raise RuntimeError("mart breakdown: no cell names")
    return Breakdown(
        variable=by,
        cells={key: release.values[name] for key, name in names.items()},
        shown={key: release.shown(name) for key, name in names.items()},
        total=release.values["total"],
        total_shown=release.shown("total"),
        release=release.describe(),
    )


def _mart_version(engine: Engine) -> str:
    """What names the mart's data in a release key: a rebuilt mart gives new answers.

    Its build record is one cheap row (the mart's row count otherwise).
    """
    built = last_build(engine)
    if built and built.get("build_id"):
        return str(built["build_id"])
    return f"rows:{engine.scalar_int(f'SELECT count(*) FROM {MART_TABLE}')}"


@dataclass(frozen=True)
class MartSummary:
    """A count of the mart and its breakdowns, released in one call (:func:`mart_count_and_breakdowns`).

    ``breakdowns`` maps each variable asked to its ``Breakdown``, or to why it is withheld (outside the
    project's variables, or the privacy budget ran out before it).
    """

    count: Any
    breakdowns: dict[str, Any]


OUTSIDE_PROJECT = "outside the project's variables"


@time_limited
def mart_count_and_breakdowns(
    caller: Caller,
    engine: Engine,
    filters: Any,
    by: Sequence[str],
    *,
    project_id: int | None = None,
) -> MartSummary:
    """:func:`mart_count` and a :func:`mart_breakdown` by each of ``by``, each released exactly as those release it.

    One call does the work of ``1 + len(by)`` calls: one scope check and one authorization (its audit entry
    lists the breakdowns), one scan of the mart for every breakdown, and one release transaction
    (:func:`massalia.governance.disclosure.release_batch`: each count and breakdown is still its own release
    under the same key as the lone call's, so the same answer, the same charge, the sum for the whole).
    Under a project, a variable outside the project's variables is withheld (a lone breakdown by it is
    refused); once the privacy budget runs out, the remaining breakdowns are withheld, never guessed, and
    a refused count raises as :func:`mart_count` does.

    Examples
    --------
    >>> summary = mart_count_and_breakdowns(caller, engine, {"all": []}, ["sex", "stage_group"])  # doctest: +SKIP
    >>> summary.count.count, summary.breakdowns["sex"].cells  # doctest: +SKIP
    (1230, {'F': 640, 'M': 590, None: None})
    """
    action = "health.mart.count"
    spec = _mart_spec(filters)
    resource = {"filters": spec.model_dump(mode="json")}
    asked = list(dict.fromkeys(by))
    spec, restrict = _check_mart_scope(caller, engine, action, spec, project_id)
    allowed = None if project_id is None else set(project_scope(caller, action, project_id).variables)
    shown = [name for name in asked if not allowed or name in allowed]
    detail = {"resource": {**resource, "breakdowns": shown}, "channel": caller.channel}
    grant = caller.authorize(action, project_id=project_id, detail=detail)
    try:
        if not grant.raw_counts:
            check_feasibility(spec, None)
            for name in shown:
                check_feasibility(spec, name)
        persons, exact = count_and_breakdowns(engine, spec, shown, restrict=restrict)
    except MartNotBuiltError:
        raise  # the warehouse's state, not the filter, is wrong: the interfaces say so (HTTP 409)
    except FilterError as error:
        raise InvalidRequest(f"mart filter: {error}") from None
    names = {name: {key: json.dumps(key) for key in cells} for name, cells in exact.items()}
    counts = [CountsAsked("count", {}, {"persons": persons})]
    for name, cells in exact.items():
        counts.append(CountsAsked(name, {}, {**{names[name][key]: value for key, value in cells.items()},
                                             "total": sum(cells.values())}, sensitivity=2))  # fmt: skip
    if grant.raw_counts:
        releases, refused = [exact_release(one.true_counts) for one in counts], None
    else:
        # The same query keys as the lone calls' (_mart_counts): a batch release is the lone call's release.
        base = {"filters": normalized_spec(spec), "scope": _scope_key(caller, action, project_id),
                "mart": _mart_version(engine)}  # fmt: skip
        keyed = [dataclasses.replace(one, query={**base, "by": None if i == 0 else one.name})
                 for i, one in enumerate(counts)]  # fmt: skip
        batch = release_batch(caller.governance, caller.principal, action, keyed)
        releases, refused = batch.releases, batch.refused
        if not releases and refused is not None:
            raise refused
    count = CountResult(count=releases[0].values["persons"], shown=releases[0].shown("persons"),
                        release=releases[0].describe())  # fmt: skip
    breakdowns: dict[str, Any] = {name: OUTSIDE_PROJECT for name in asked if name not in exact}
    for i, name in enumerate(exact, start=1):
        if i >= len(releases):
            breakdowns[name] = f"privacy budget exhausted: {refused.reason if refused else 'no release'}"
            continue
        release = releases[i]
        breakdowns[name] = Breakdown(
            variable=name,
            cells={key: release.values[cell] for key, cell in names[name].items()},
            shown={key: release.shown(cell) for key, cell in names[name].items()},
            total=release.values["total"],
            total_shown=release.shown("total"),
            release=release.describe(),
        )
    return MartSummary(count, {name: breakdowns[name] for name in asked})


def mart_build(caller: Caller, engine: Engine) -> Any:
    """Build (or rebuild) the research mart from the warehouse (admins and data engineers); audited."""
    caller.authorize("health.mart.build", detail={"channel": caller.channel})
    return build_mart(engine)


def create_extract(
    caller: Caller,
    engine: Engine,
    project_id: int,
    *,
    out_dir: Path,
    fmt: Literal["parquet", "csv"] = "parquet",
    cohort_definition_id: int | None = None,
    k_min: int = 5,
    on_low_k: Literal["refuse", "generalize"] = "refuse",
) -> ExtractResult:
    """A pseudonymized, k-anonymous extract of the project's cohort and variables, audited before it is built.

    Only members of an approved pseudonymized project may; pseudonyms and date shifts use the project's secret.
    k counts every released column (``docs/extracts.md``): keep the project's variables few, or pass
    ``on_low_k="generalize"`` to let dates, durations and rare values coarsen until ``k_min`` holds.
    """
    gov, principal = caller.governance, caller.principal
    if fmt not in ("parquet", "csv"):
        raise InvalidRequest(f"extract format must be parquet or csv, got {fmt!r}")
    if on_low_k not in ("refuse", "generalize"):
        raise InvalidRequest(f"on_low_k must be refuse or generalize, got {on_low_k!r}")
    scope = project_scope(caller, "health.extract.create", project_id)
    policy = RowPolicy.of(scope)
    cohort = None
    if cohort_definition_id is not None:
        stored = _cohort_id(engine, project_id, cohort_definition_id, policy)
        generated = _generated_hash(engine, stored)
        if generated is None or (scope.cohort_hash and generated != scope.cohort_hash):
            raise InvalidRequest(
                f"cohort {cohort_definition_id} was not generated from project {project_id}'s definition"
            )
        cohort = ("cohort", stored)
    elif scope.cohort_hash:
        raise InvalidRequest(f"project {project_id} is scoped to a cohort: generate it and give its cohort id")
    grant = gov.authorize(
        principal, "health.extract.create", project_id=project_id,
        detail={"resource": {"cohort_definition_id": cohort_definition_id, "variables": list(scope.variables),
                             "format": fmt}, "channel": caller.channel},
    )  # fmt: skip
    if not grant.row_level or not grant.pseudonymized:
        reason = "extracts are pseudonymized row-level data: the grant does not allow it"
        raise AccessDenied("health.extract.create", reason)
    extract_policy = ExtractPolicy(
        project_id=project_id, key=gov.project_key(project_id), date_shift_days=PROJECT_DATE_SHIFT_DAYS,
        k_min=k_min, on_low_k=on_low_k,
    )  # fmt: skip
    return build_extract(engine, cohort=cohort, variables=list(scope.variables) or None, policy=extract_policy,
                         out_dir=Path(out_dir), fmt=fmt, person_ids=_scope_mart_persons(engine, policy))  # fmt: skip


def _scope_mart_persons(engine: Engine, policy: RowPolicy) -> list[int] | None:
    """The mart's persons of the project's sites and period (``None``: the scope restricts neither)."""
    restrict = RowPolicy(policy.sites, policy.period_start, policy.period_end).predicate(MART_SCOPE)
    if restrict is None:
        return None
    mart = exp.to_table(MART_TABLE).as_(MART_ALIAS)
    query = exp.select(exp.column("person_id", table=MART_ALIAS)).from_(mart).where(restrict)
    return [int(v) for v in engine.query(query).column(0).to_pylist()]
