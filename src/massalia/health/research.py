"""Guarded health services: every interface (CLI, API, portal) calls these, never the domain functions directly.

Each function follows the same four steps:

1. **scope** — when a project is named, the cohort definition must be the project's (same definition hash);
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

import pyarrow as pa

from massalia.engine import Engine
from massalia.governance import AccessDenied, Governance, Grant, InvalidRequest, NotFound, Principal, Role
from massalia.governance.disclosure import Release, exact_release, release_counts
from massalia.health.cohorts.compiler import compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.explain import PersonExplanation, explain_person
from massalia.health.cohorts.feasibility import check_feasible_definition
from massalia.health.cohorts.service import (
    AttritionRow,
    Counts,
    analyze_cohort,
    cohort_breakdowns,
    data_version,
    generate_cohort,
    run_step,
)
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD, suppress_count

PROJECT_DATE_SHIFT_DAYS = 365
"""Amplitude of the per-person date shift of a project's pseudonymized data (explain and extracts alike)."""

MIN_PURPOSE_LENGTH = 5


def _resource(definition: CohortDefinition, **extra: Any) -> dict[str, Any]:
    return {"definition_hash": definition.definition_hash(), **extra}


def _check_scope(
    gov: Governance, principal: Principal, action: str, definition: CohortDefinition, project_id: int | None
) -> None:
    """Refuse (and audit the refusal) when a project is named but the definition is not its cohort."""
    if project_id is None:
        return
    scope = gov.project_scope(project_id)
    if scope.cohort_hash and scope.cohort_hash != definition.definition_hash():
        reason = "the cohort definition is not the project's (definition hash differs)"
        if gov.rights.audited(action):
            gov.audit(principal, action, decision="denied", denied_because=reason, project_id=project_id,
                      resource=_resource(definition))  # fmt: skip
        raise AccessDenied(action, reason)


def _authorize(
    gov: Governance,
    principal: Principal,
    action: str,
    definition: CohortDefinition,
    project_id: int | None,
    *,
    site: str | None = None,
    channel: str | None = None,
    **detail: Any,
) -> Grant:
    _check_scope(gov, principal, action, definition, project_id)
    resource = _resource(definition, **detail.pop("resource", {}))
    return gov.authorize(
        principal, action, project_id=project_id, site=site,
        detail={"resource": resource, "channel": channel, **detail},
    )  # fmt: skip


def _release(
    gov: Governance,
    principal: Principal,
    grant: Grant,
    action: str,
    query: Mapping[str, Any],
    true_counts: Mapping[str, int],
    *,
    sensitivity: int = 1,
) -> Release:
    """Exact counts under a raw-counts grant, else the one release mechanism (noise, budget, audit)."""
    if grant.raw_counts:
        return exact_release(true_counts)
    return release_counts(gov, principal, action, query, true_counts, sensitivity=sensitivity)


def _feasible(grant: Grant, definition: CohortDefinition) -> None:
    """Without raw counts, a definition may not single out persons (ids, exact-date windows)."""
    if not grant.raw_counts:
        problems = check_feasible_definition(definition)
        if problems:
            raise InvalidRequest("cohort definition not allowed for feasibility counts: " + "; ".join(problems))


def count(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    *,
    project_id: int | None = None,
    enabled: Sequence[bool] | None = None,
    channel: str | None = None,
) -> Counts:
    """Persons and events of a cohort, with the inclusion rules ``enabled`` (what-if).

    Exact under an approved project; otherwise persons are released noisy (events withheld: one person
    can add many events, so no bounded-sensitivity release exists for them).

    Examples
    --------
    >>> count(gov, engine, researcher, definition).persons  # doctest: +SKIP
    120
    """
    grant = _authorize(gov, principal, "cohort.count", definition, project_id, channel=channel,
                       enabled=list(enabled) if enabled is not None else None)  # fmt: skip
    _feasible(grant, definition)
    analysis = analyze_cohort(engine, definition, threshold=DEFAULT_THRESHOLD)
    exact = analysis.count(enabled)
    if grant.raw_counts:
        return Counts(exact.persons, exact.events, {"mode": "exact"})
    flags = [True] * len(analysis.rule_names) if enabled is None else [bool(flag) for flag in enabled]
    required = analysis.required_mask(flags)
    # The same rules required give the same persons: key on the rules, not on how the toggles were spelled.
    query = {"definition": definition.definition_hash(), "required_rules": required, "data": data_version(engine)}
    release = _release(gov, principal, grant, "cohort.count", query, {"persons": int(exact.persons or 0)})
    return Counts(release.values["persons"], None, {**release.describe(), "withheld": ["events"]})


def attrition(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    *,
    project_id: int | None = None,
    channel: str | None = None,
) -> tuple[Counts, list[AttritionRow]]:
    """The attrition table of a cohort: qualified counts, then each rule cumulative and alone.

    Exact under an approved project; otherwise the persons counts are one noisy release (sensitivity
    ``1 + 2 × rules``: one person can change every row) and event counts are withheld.
    """
    grant = _authorize(gov, principal, "cohort.attrition", definition, project_id, channel=channel)
    _feasible(grant, definition)
    analysis = analyze_cohort(engine, definition, threshold=DEFAULT_THRESHOLD)
    base, rows = analysis.attrition()
    if grant.raw_counts:
        return Counts(base.persons, base.events, {"mode": "exact"}), rows
    cells = {"qualified": int(base.persons or 0)}
    for row in rows:
        cells[f"rule {row.rule_index} cumulative"] = int(row.persons_cumulative or 0)
        cells[f"rule {row.rule_index} alone"] = int(row.persons_alone or 0)
    query = {"definition": definition.definition_hash(), "data": data_version(engine)}
    release = _release(gov, principal, grant, "cohort.attrition", query, cells, sensitivity=len(cells))
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


def breakdowns(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    *,
    cohort_definition_id: int = 1,
    project_id: int | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """Persons of the generated cohort ``cohort_definition_id`` by sex, age band and site.

    Exact under an approved project, otherwise one noisy release of every cell (sensitivity 3: a person
    is in one cell of each breakdown). The answer holds ``sex``, ``age_band``, ``site`` and ``release``.

    Raises
    ------
    InvalidRequest
        If that cohort was not generated from ``definition`` (generate it first).
    """
    generated = _generated_hash(engine, cohort_definition_id)
    if generated != definition.definition_hash():
        raise InvalidRequest(f"cohort {cohort_definition_id} was not generated from this definition; generate it first")
    grant = _authorize(gov, principal, "cohort.breakdowns", definition, project_id, channel=channel,
                       resource={"cohort_definition_id": int(cohort_definition_id)})  # fmt: skip
    _feasible(grant, definition)
    exact = cohort_breakdowns(engine, cohort_definition_id)
    cells = {f"{name}={key}": value for name, counts in exact.items() for key, value in counts.items()}
    query = {"definition": definition.definition_hash(), "cohort_definition_id": int(cohort_definition_id),
             "generation": _generated_version(engine, cohort_definition_id)}  # fmt: skip
    release = _release(gov, principal, grant, "cohort.breakdowns", query, cells, sensitivity=len(exact))
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


def generate(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    *,
    cohort_definition_id: int = 1,
    project_id: int | None = None,
    channel: str | None = None,
) -> GenerationSummary:
    """Generate the cohort into the warehouse's COHORT table; report its provenance and released counts.

    Without raw counts, persons are released noisy and the row count is withheld; both are withheld when
    the definition fails the feasibility limits (record identifiers, dates finer than a month).
    """
    grant = _authorize(gov, principal, "cohort.generate", definition, project_id, channel=channel,
                       resource={"cohort_definition_id": int(cohort_definition_id)})  # fmt: skip
    generation = generate_cohort(engine, definition, cohort_definition_id)
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
    query = {"definition": generation.definition_hash, "data": generation.data_version}
    release = _release(gov, principal, grant, "cohort.generate", query, {"persons": generation.persons})
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
    ``grant.pseudonymized``). When ``grant.row_level`` is false, ``explanation`` keeps the verdict and
    which rules each entry event satisfied, but no record, date or record id; ``record_counts`` then
    says how many records each criterion found (suppressed below the small-cell threshold).
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
    """The person id behind a project pseudonym, searched among the persons of the project's cohort."""
    from massalia.governance.pseudonym import pseudonymize

    compiled = compile_cohort(definition)
    people = run_step(engine, compiled, "qualified_mask").column("person_id")
    people = pa.array(sorted(set(people.to_pylist())), pa.int64())
    if len(people):
        found = pseudonymize(people, key=gov.project_key(project_id), project=project_id).index(pseudonym).as_py()
        if found >= 0:
            return int(people[found].as_py())
    raise NotFound(f"no person with pseudonym {pseudonym!r} among the qualified events of project {project_id}")


def _shift(value: object, days: int) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value + dt.timedelta(days=days)
    return value


def _pseudonymized(explanation: PersonExplanation, pseudonym: str, shift: int) -> PersonExplanation:
    """The explanation with dates shifted and record ids replaced by ordinals (the person is the pseudonym)."""

    def record(row: Mapping[str, object], position: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in row.items():
            if key in ("person_id", "subject_id"):
                out[key] = pseudonym
            elif key in ("event_id", "record_id"):
                out[key] = position + 1
            else:
                out[key] = _shift(value, shift)
        return out

    events = []
    for position, event in enumerate(explanation.events):
        rules = [
            dataclasses.replace(
                rule,
                evidence=[
                    dataclasses.replace(ev, records=[record(r, i) for i, r in enumerate(ev.records)])
                    for ev in rule.evidence
                ],
            )
            for rule in event.rules
        ]
        events.append(
            dataclasses.replace(event, event_id=position + 1, start_date=_shift(event.start_date, shift),
                                end_date=_shift(event.end_date, shift), rules=rules)
        )  # fmt: skip
    return PersonExplanation(
        person_id=0,
        primary_events=[record(r, i) for i, r in enumerate(explanation.primary_events)],
        events=events,
        cohort_periods=[record(r, i) for i, r in enumerate(explanation.cohort_periods)],
    )


def _redacted(explanation: PersonExplanation) -> PersonExplanation:
    """Verdicts only: rule satisfaction per entry event, record counts (suppressed), no record, date or id."""
    events = []
    for position, event in enumerate(explanation.events):
        rules = []
        for rule in event.rules:
            evidence = []
            for ev in rule.evidence:
                found = suppress_count(len(ev.records))
                shown = "fewer than 10" if found is None else str(found)
                evidence.append(dataclasses.replace(ev, description=f"{ev.description}; {shown} found", records=[]))
            rules.append(dataclasses.replace(rule, evidence=evidence))
        events.append(dataclasses.replace(event, event_id=position + 1, start_date=None, end_date=None, rules=rules))
    return PersonExplanation(
        person_id=explanation.person_id,
        primary_events=[{"event": i + 1} for i in range(len(explanation.primary_events))],
        events=events,
        cohort_periods=[{"period": i + 1} for i in range(len(explanation.cohort_periods))],
    )


def explain(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    person_id: int | str,
    *,
    purpose: str,
    project_id: int | None = None,
    channel: str | None = None,
) -> Explanation:
    """Why one person is in or out of a cohort; audited (with ``purpose``) before anything is read.

    - members of an approved pseudonymized project name the person by its project pseudonym and see
      records with shifted dates and no record ids;
    - clinicians see the identified records of persons of their own site;
    - the local operator (admin, data engineer) sees verdicts and rule satisfaction only.

    Raises
    ------
    InvalidRequest
        No purpose given, or a person reference of the wrong kind for the grant.
    AccessDenied
        When the rights do not allow it (the refusal is audited too).
    """
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE_LENGTH:
        raise InvalidRequest(f"a purpose (at least {MIN_PURPOSE_LENGTH} characters) is required to explain a person")
    site = None
    if principal.has_role(Role.CLINICIAN) and isinstance(person_id, int):
        site = person_site(engine, person_id)
    reference = person_id if isinstance(person_id, int) else str(person_id)
    grant = _authorize(gov, principal, "cohort.explain", definition, project_id, site=site, channel=channel,
                       resource={"person_id": reference}, purpose=purpose.strip())  # fmt: skip
    if grant.pseudonymized:
        if not isinstance(person_id, str) or project_id is None:
            raise InvalidRequest("under a pseudonymized project, name the person by the project's pseudonym")
        from massalia.governance.pseudonym import date_shifts

        real = _resolve_pseudonym(gov, engine, definition, project_id, person_id)
        days = date_shifts([real], key=gov.project_key(project_id), project=project_id,
                           max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py()  # fmt: skip
        return Explanation(person_id, grant, _pseudonymized(explain_person(engine, definition, real), person_id, days))
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        raise InvalidRequest(f"person_id must be an integer, got {person_id!r}")
    explanation = explain_person(engine, definition, person_id)
    return Explanation(person_id, grant, explanation if grant.row_level else _redacted(explanation))


PATIENT_TABLES = (
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death",
)  # fmt: skip
"""The OMOP tables a patient view shows, one section each."""


@dataclass(frozen=True)
class PatientView:
    """One patient's records, table by table, and the grant they were shown under.

    Under a pseudonymized grant ``person`` is the project pseudonym, every date is shifted by the
    person's project shift, and record ids, source values and care-site/provider/location ids are
    removed (concept ids, values and units are kept).
    """

    person: int | str
    grant: Grant
    tables: dict[str, pa.Table]


def _pseudonymized_table(table: pa.Table, pseudonym: str, shift: int) -> pa.Table:
    from massalia.governance.pseudonym import is_temporal, shift_dates

    shifts = pa.array([shift] * table.num_rows, pa.int32())
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == "person_id":
            columns.append(pa.array([pseudonym] * table.num_rows, pa.string()))
        elif name.endswith("_source_value") or (name.endswith("_id") and not name.endswith("_concept_id")):
            continue
        elif is_temporal(column.type):
            columns.append(shift_dates(column.combine_chunks(), shifts))
        else:
            columns.append(column)
        names.append(name)
    return pa.table(columns, names=names)


def patient_view(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    person: int | str,
    *,
    purpose: str,
    project_id: int | None = None,
    channel: str | None = None,
) -> PatientView:
    """One patient's records (``patient.view``), audited with ``purpose`` before anything is read.

    Clinicians see the identified records of persons of their own site; members of an approved
    pseudonymized project name the person by its project pseudonym (searched among the project
    cohort's persons) and see pseudonymized records. Nobody else may.
    """
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE_LENGTH:
        raise InvalidRequest(f"a purpose (at least {MIN_PURPOSE_LENGTH} characters) is required to view a patient")
    site = person_site(engine, person) if principal.has_role(Role.CLINICIAN) and isinstance(person, int) else None
    detail = {"resource": {"person_id": person}, "purpose": purpose.strip(), "channel": channel}
    grant = gov.authorize(principal, "patient.view", project_id=project_id, site=site, detail=detail)
    if grant.pseudonymized and project_id is not None:
        cohort = gov.project_scope(project_id).cohort
        if not isinstance(person, str) or cohort is None:
            raise InvalidRequest("under a pseudonymized project, name the person by its project pseudonym")
        from massalia.governance.pseudonym import date_shifts

        real = _resolve_pseudonym(gov, engine, CohortDefinition.model_validate(cohort), project_id, person)
        key = gov.project_key(project_id)
        shift = date_shifts([real], key=key, project=project_id, max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py()
    elif isinstance(person, int) and not isinstance(person, bool) and not grant.pseudonymized:
        real, shift = person, 0
    else:
        raise InvalidRequest(f"person must be a person_id (an integer), got {person!r}")
    tables = {}
    for name in PATIENT_TABLES:
        if engine.table_exists(name):
            rows = engine.query(f"SELECT * FROM {name} WHERE person_id = {int(real)}")
            tables[name] = _pseudonymized_table(rows, str(person), shift) if grant.pseudonymized else rows
    return PatientView(person, grant, tables)


def _mart_spec(filters: Any) -> Any:
    from massalia.health.marts.filters import FilterError, FilterSpec, parse_clause

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
    gov: Governance,
    engine: Engine,
    principal: Principal,
    action: str,
    spec: Any,
    project_id: int | None,
    extra_variables: Sequence[str] = (),
) -> None:
    """Under a project, the filter may use only the project's variables and cohort."""
    if project_id is None:
        return
    scope = gov.project_scope(project_id)
    used = {clause.variable for clause in spec.all} | {c.variable for group in spec.any_of for c in group}
    used |= set(extra_variables)
    reason = None
    if scope.variables and not used <= set(scope.variables):
        reason = f"variable(s) outside the project's scope: {', '.join(sorted(used - set(scope.variables)))}"
    elif scope.cohort_hash and spec.cohort_definition_id is None:
        reason = "the project is scoped to a cohort: restrict the filter to its generated cohort"
    elif scope.cohort_hash and _generated_hash(engine, spec.cohort_definition_id) != scope.cohort_hash:
        reason = f"cohort {spec.cohort_definition_id} was not generated from the project's definition"
    if reason:
        gov.audit(principal, action, decision="denied", denied_because=reason, project_id=project_id,
                  resource={"filters": spec.model_dump(mode="json")})  # fmt: skip
        raise AccessDenied(action, reason)


def _mart_counts(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    spec: Any,
    project_id: int | None,
    channel: str | None,
    by: str | None = None,
) -> tuple[Grant, Release, dict[str | bool | None, str] | None]:
    """Authorize, check the feasibility limits, count exactly, and release (one count, or a breakdown)."""
    from massalia.health.marts.builder import MART_TABLE, last_build
    from massalia.health.marts.filters import (
        FilterError,
        breakdown_counts,
        check_feasibility,
        count_persons,
        normalized_spec,
    )

    _check_mart_scope(gov, engine, principal, "mart.count", spec, project_id, extra_variables=[by] if by else [])
    resource = {"filters": spec.model_dump(mode="json"), **({"by": by} if by else {})}
    grant = gov.authorize(
        principal, "mart.count", project_id=project_id, detail={"resource": resource, "channel": channel}
    )
    try:
        if not grant.raw_counts:
            check_feasibility(spec, by)
        query: dict[str, Any] = {"filters": normalized_spec(spec), "by": by}
        if by is None:
            cells: dict[str, int] = {"persons": count_persons(engine, spec)}
            names = None
        else:
            exact = breakdown_counts(engine, spec, by)
            names = {key: json.dumps(key) for key in exact}
            cells = {names[key]: value for key, value in exact.items()}
            cells["total"] = sum(exact.values())
    except FilterError as error:
        raise InvalidRequest(f"mart filter: {error}") from None
    if not grant.raw_counts:
        # A rebuilt mart gives new answers; its build record is one cheap row (the mart's row count otherwise).
        built = last_build(engine)
        query["mart"] = (
            str(built["build_id"])
            if built and built.get("build_id")
            else f"rows:{int(engine.scalar(f'SELECT count(*) FROM {MART_TABLE}') or 0)}"  # type: ignore[call-overload]
        )
    sensitivity = 1 if by is None else 2  # a person is in one cell and in the total
    release = _release(gov, principal, grant, "mart.count", query, cells, sensitivity=sensitivity)
    return grant, release, names


def mart_count(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    filters: Any,
    *,
    project_id: int | None = None,
    channel: str | None = None,
) -> Any:
    """Persons of the research mart matching ``filters``: exact under an approved project, otherwise noisy.

    ``filters`` is a :class:`massalia.health.marts.filters.FilterSpec`, its JSON object, or a list of
    ``"variable op value"`` clauses (AND-ed). Without raw counts the feasibility limits apply (no
    identifiers, dates at their catalogue grain). Returns the mart's ``CountResult``.
    """
    from massalia.health.marts.filters import CountResult

    spec = _mart_spec(filters)
    _, release, _ = _mart_counts(gov, engine, principal, spec, project_id, channel)
    return CountResult(count=release.values["persons"], shown=release.shown("persons"), release=release.describe())


def mart_breakdown(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    filters: Any,
    by: str,
    *,
    project_id: int | None = None,
    channel: str | None = None,
) -> Any:
    """Persons matching ``filters`` by value of the category ``by`` (action ``mart.count``).

    Every value of the category is a cell (and ``None``: no value), plus the total: exact under an
    approved project, otherwise one noisy release. Returns the mart's ``Breakdown``.
    """
    from massalia.health.marts.filters import Breakdown

    spec = _mart_spec(filters)
    _, release, names = _mart_counts(gov, engine, principal, spec, project_id, channel, by=by)
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


def mart_build(gov: Governance, engine: Engine, principal: Principal, *, channel: str | None = None) -> Any:
    """Build (or rebuild) the research mart from the warehouse (admins and data engineers); audited."""
    from massalia.health.marts.builder import build_mart

    gov.authorize(principal, "mart.build", detail={"channel": channel})
    return build_mart(engine)


def create_extract(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    project_id: int,
    *,
    out_dir: Path,
    fmt: Literal["parquet", "csv"] = "parquet",
    cohort_definition_id: int | None = None,
    k_min: int = 5,
    on_low_k: Literal["refuse", "generalize"] = "refuse",
    channel: str | None = None,
) -> Any:
    """A pseudonymized, k-anonymous extract of the project's cohort and variables, audited before it is built.

    Only members of an approved pseudonymized project may; pseudonyms and date shifts use the project's secret.
    """
    from massalia.health.extracts import ExtractPolicy, build_extract  # helper E's extract builder

    if fmt not in ("parquet", "csv"):
        raise InvalidRequest(f"extract format must be parquet or csv, got {fmt!r}")
    if on_low_k not in ("refuse", "generalize"):
        raise InvalidRequest(f"on_low_k must be refuse or generalize, got {on_low_k!r}")
    scope = gov.project_scope(project_id)
    cohort = None
    if cohort_definition_id is not None:
        generated = _generated_hash(engine, cohort_definition_id)
        if generated is None or (scope.cohort_hash and generated != scope.cohort_hash):
            raise InvalidRequest(
                f"cohort {cohort_definition_id} was not generated from project {project_id}'s definition"
            )
        cohort = ("cohort", int(cohort_definition_id))
    elif scope.cohort_hash:
        raise InvalidRequest(f"project {project_id} is scoped to a cohort: generate it and give its cohort id")
    grant = gov.authorize(
        principal, "extract.create", project_id=project_id,
        detail={"resource": {"cohort_definition_id": cohort_definition_id, "variables": list(scope.variables),
                             "format": fmt}, "channel": channel},
    )  # fmt: skip
    if not grant.row_level or not grant.pseudonymized:
        raise AccessDenied("extract.create", "extracts are pseudonymized row-level data: the grant does not allow it")
    policy = ExtractPolicy(
        project_id=project_id, key=gov.project_key(project_id), date_shift_days=PROJECT_DATE_SHIFT_DAYS,
        k_min=k_min, on_low_k=on_low_k,
    )  # fmt: skip
    return build_extract(engine, cohort=cohort, variables=list(scope.variables) or None, policy=policy,
                         out_dir=Path(out_dir), fmt=fmt)  # fmt: skip
