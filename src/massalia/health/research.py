"""Guarded health services: every interface (CLI, API, portal) calls these, never the domain functions directly.

Each function follows the same four steps:

1. **scope** — when a project is named, the cohort definition must be the project's (same definition hash);
2. **authorize** — :meth:`massalia.governance.Governance.authorize` decides from ``rights.yaml`` and, for
   actions touching personal data, appends the decision to the transparency log *before* any data is read;
3. **compute** — the domain function (:mod:`massalia.health.cohorts.service`, ``explain``, marts, extracts);
4. **disclose** — small-cell suppression unless the grant allows raw counts; person-level records only
   when the grant is row-level, pseudonymized (keyed per project, dates shifted) when it says so.

A researcher without an approved, unexpired project of which they are a member therefore gets only
suppressed aggregates; a clinician gets identified records of their own site only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from massalia.engine import Engine
from massalia.governance import AccessDenied, Governance, Grant, InvalidRequest, NotFound, Principal, Role
from massalia.governance.pseudonym import date_shifts, pseudonymize
from massalia.health.cohorts.compiler import compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.explain import PersonExplanation, explain_person
from massalia.health.cohorts.service import (
    AttritionRow,
    CohortGeneration,
    Counts,
    analyze_cohort,
    cohort_breakdowns,
    generate_cohort,
    run_step,
)
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD, suppress_count
from massalia.health.extracts import ExtractPolicy, ExtractResult, build_extract
from massalia.health.pseudonymized import pseudonymized_record, pseudonymized_table, shift_value, visit_ordinals

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
    """Persons and events of a cohort, with the inclusion rules ``enabled`` (what-if), suppressed unless allowed.

    Examples
    --------
    >>> count(gov, engine, researcher, definition).persons  # doctest: +SKIP
    120
    """
    grant = _authorize(gov, principal, "cohort.count", definition, project_id, channel=channel,
                       enabled=list(enabled) if enabled is not None else None)  # fmt: skip
    analysis = analyze_cohort(engine, definition, threshold=DEFAULT_THRESHOLD)
    return analysis.count(enabled, allowed_raw=grant.raw_counts)


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

    Counts are suppressed unless the grant allows raw counts.
    """
    grant = _authorize(gov, principal, "cohort.attrition", definition, project_id, channel=channel)
    analysis = analyze_cohort(engine, definition, threshold=DEFAULT_THRESHOLD)
    return analysis.attrition(allowed_raw=grant.raw_counts)


def _generated_hash(engine: Engine, cohort_definition_id: int) -> str | None:
    if not engine.table_exists("cohort_generation"):
        return None
    rows = engine.query(
        f"SELECT definition_hash FROM cohort_generation WHERE cohort_definition_id = {int(cohort_definition_id)}"
    ).to_pylist()
    return str(rows[0]["definition_hash"]) if rows else None


def breakdowns(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    definition: CohortDefinition,
    *,
    cohort_definition_id: int = 1,
    project_id: int | None = None,
    channel: str | None = None,
) -> dict[str, dict[str, int | None]]:
    """Persons of the generated cohort ``cohort_definition_id`` by sex, age band and site, suppressed unless allowed.

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
    return cohort_breakdowns(engine, cohort_definition_id, allowed_raw=grant.raw_counts)


@dataclass(frozen=True)
class GenerationSummary:
    """What a guarded generation reports: the provenance, with counts suppressed unless allowed."""

    cohort_definition_id: int
    definition_hash: str
    data_version: str
    vocabulary_version: str
    generated_at: str
    persons: int | None
    rows: int | None
    table: str

    @classmethod
    def of(cls, generation: CohortGeneration, *, allowed_raw: bool) -> GenerationSummary:
        """The summary of ``generation``, its counts suppressed unless ``allowed_raw``."""
        fields = {f.name: getattr(generation, f.name) for f in dataclasses.fields(generation)}
        fields["persons"] = suppress_count(generation.persons, allowed_raw=allowed_raw)
        fields["rows"] = suppress_count(generation.rows, allowed_raw=allowed_raw)
        return cls(**fields)


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
    """Generate the cohort into the warehouse's COHORT table; report its provenance with suppressed counts."""
    grant = _authorize(gov, principal, "cohort.generate", definition, project_id, channel=channel,
                       resource={"cohort_definition_id": int(cohort_definition_id)})  # fmt: skip
    generation = generate_cohort(engine, definition, cohort_definition_id)
    return GenerationSummary.of(generation, allowed_raw=grant.raw_counts)


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
    """The person id behind a project pseudonym, searched among the persons of the project's cohort."""
    compiled = compile_cohort(definition)
    people = run_step(engine, compiled, "qualified_mask").column("person_id")
    people = pa.array(sorted(set(people.to_pylist())), pa.int64())
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
        real = _resolve_pseudonym(gov, engine, definition, project_id, person_id)
        days = date_shifts([real], key=gov.project_key(project_id), project=project_id,
                           max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py()  # fmt: skip
        return Explanation(person_id, grant, _pseudonymized(explain_person(engine, definition, real), person_id, days))
    if not grant.row_level:
        reason = "no per-person verdict without row-level access (a clinician's own site or an approved project)"
        gov.audit(principal, "cohort.explain", decision="denied", denied_because=reason, project_id=project_id,
                  resource=_resource(definition, person_id=reference))  # fmt: skip
        raise AccessDenied("cohort.explain", reason)
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        raise InvalidRequest(f"person_id must be an integer, got {person_id!r}")
    return Explanation(person_id, grant, explain_person(engine, definition, person_id))


PATIENT_TABLES = (
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death",
)  # fmt: skip
"""The OMOP tables a patient view shows, one section each."""


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
        real = _resolve_pseudonym(gov, engine, CohortDefinition.model_validate(cohort), project_id, person)
        key = gov.project_key(project_id)
        shift = date_shifts([real], key=key, project=project_id, max_days=PROJECT_DATE_SHIFT_DAYS)[0].as_py()
    elif isinstance(person, int) and not isinstance(person, bool) and not grant.pseudonymized:
        real, shift = person, 0
    else:
        raise InvalidRequest(f"person must be a person_id (an integer), got {person!r}")
    tables = {
        name: engine.query(f"SELECT * FROM {name} WHERE person_id = {int(real)}")
        for name in PATIENT_TABLES
        if engine.table_exists(name)
    }
    if grant.pseudonymized:
        visits = visit_ordinals(tables.get("visit_occurrence"))
        tables = {name: pseudonymized_table(rows, name, str(person), shift, visits) for name, rows in tables.items()}
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


def mart_count(
    gov: Governance,
    engine: Engine,
    principal: Principal,
    filters: Any,
    *,
    project_id: int | None = None,
    channel: str | None = None,
) -> Any:
    """Persons of the research mart matching ``filters``, suppressed unless the grant allows raw counts.

    ``filters`` is a :class:`massalia.health.marts.filters.FilterSpec`, its JSON object, or a list of
    ``"variable op value"`` clauses (AND-ed). Returns the mart's ``CountResult``.
    """
    from massalia.health.marts.filters import FilterError, count_persons

    spec = _mart_spec(filters)
    _check_mart_scope(gov, engine, principal, "mart.count", spec, project_id)
    resource = {"filters": spec.model_dump(mode="json")}
    grant = gov.authorize(
        principal, "mart.count", project_id=project_id, detail={"resource": resource, "channel": channel}
    )
    try:
        return count_persons(engine, spec, allowed_raw=grant.raw_counts)
    except FilterError as error:
        raise InvalidRequest(f"mart filter: {error}") from None


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

    Cells are suppressed, with complementary cells, unless the grant allows raw counts. Returns the
    mart's ``Breakdown``.
    """
    from massalia.health.marts.filters import FilterError, breakdown

    spec = _mart_spec(filters)
    _check_mart_scope(gov, engine, principal, "mart.count", spec, project_id, extra_variables=[by])
    resource = {"filters": spec.model_dump(mode="json"), "by": by}
    grant = gov.authorize(
        principal, "mart.count", project_id=project_id, detail={"resource": resource, "channel": channel}
    )
    try:
        return breakdown(engine, spec, by, allowed_raw=grant.raw_counts)
    except FilterError as error:
        raise InvalidRequest(f"mart filter: {error}") from None


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
) -> ExtractResult:
    """A pseudonymized, k-anonymous extract of the project's cohort and variables, audited before it is built.

    Only members of an approved pseudonymized project may; pseudonyms and date shifts use the project's secret.
    k counts every released column (``docs/extracts.md``): keep the project's variables few, or pass
    ``on_low_k="generalize"`` to let dates, durations and rare values coarsen until ``k_min`` holds.
    """
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
