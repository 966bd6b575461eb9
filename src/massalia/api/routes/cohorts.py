"""Cohort definitions over HTTP: import, validate, SQL, counts, attrition, explain, generate.

Definitions are sent as JSON, in Massalia's model or as an OHDSI ATLAS/Circe export (recognised by its
``PrimaryCriteria``). Routes that read data call the guarded services of ``massalia.health.research``
(authorize → audit → compute → exact counts for an approved project's members, otherwise the one
noisy, budgeted release mechanism, ``release`` in each answer saying which); the others read no data
and go through ``massalia.health.services`` (``health.cohort.validate``, ``health.cohort.sql``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field, ValidationError

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError, validation_details
from massalia.health import services
from massalia.health.cohorts import CirceImportError, CohortDefinition, UnsupportedConstruct, import_circe

router = APIRouter(prefix="/cohorts", tags=["cohorts"])

CHANNEL = "api"
"""Recorded in audit entries: which interface the access came through."""


class DefinitionBody(BaseModel):
    """A cohort definition (Massalia JSON or ATLAS/Circe JSON)."""

    definition: dict[str, Any]


class CountBody(DefinitionBody):
    """A definition, the project it is counted under, and optional what-if rule toggles."""

    project_id: int | None = Field(default=None, ge=1)
    enabled: list[bool] | None = Field(default=None, max_length=64, description="One flag per inclusion rule.")


class ExplainBody(DefinitionBody):
    """Which person to explain (a person id, or a project pseudonym), why, and under which project."""

    # person_id is a BIGINT: a number beyond it is the client's error (422), not an empty answer.
    person: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | Annotated[str, Field(max_length=128)] = Field(
        description="person_id, or the project pseudonym under a pseudonymized project"
    )
    purpose: str = Field(min_length=3, max_length=1000)
    project_id: int | None = Field(default=None, ge=1)


class GenerateBody(DefinitionBody):
    """Where the rows go (``cohort_definition_id``) and under which project."""

    cohort_id: int = Field(default=1, ge=1, le=2**31 - 1)
    project_id: int | None = Field(default=None, ge=1)


class SqlBody(DefinitionBody):
    """The dialect to render."""

    dialect: Literal["duckdb", "postgres", "spark"] = "duckdb"


def parse_definition(data: dict[str, Any]) -> CohortDefinition:
    """A :class:`CohortDefinition` from JSON; a malformed one is a 422 naming the JSON paths at fault."""
    try:
        if "PrimaryCriteria" in data:
            return import_circe(data)
        return CohortDefinition.model_validate(data)
    except ValidationError as error:
        details = [(["body", "definition", *loc], msg) for loc, msg in validation_details(error.errors())]
        raise ApiError(422, "invalid_request", "The cohort definition is not valid.", details=details) from None
    except CirceImportError as error:
        problems = getattr(error, "problems", None) or []
        details = [(["body", "definition", str(path)], str(msg)) for path, msg in problems]
        raise ApiError(422, "invalid_request", "The Circe definition cannot be imported.", details=details) from None
    except (UnsupportedConstruct, ValueError) as error:
        raise ApiError(422, "invalid_request", f"The cohort definition is not valid: {error}") from None


def _compiled(call: Any) -> Any:
    """Run a compile-dependent call; an unsupported construct is the client's 422, not a 500."""
    try:
        return call()
    except UnsupportedConstruct as error:
        raise ApiError(422, "invalid_request", f"The definition cannot be compiled: {error}") from None


@router.post("/import", **action("health.cohort.validate"))
def import_definition(body: DefinitionBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Convert an ATLAS/Circe definition (or a Massalia one) into Massalia JSON."""
    definition = services.checked_definition(caller, parse_definition(body.definition))
    return {"definition": definition.model_dump(mode="json", exclude_none=True),
            "definition_hash": definition.definition_hash()}  # fmt: skip


@router.post("/validate", **action("health.cohort.validate"))
def validate(body: DefinitionBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Lint a definition: findings with their JSON path; ``valid`` is false when any is an error."""
    findings = services.lint_definition(caller, parse_definition(body.definition))
    return {
        "valid": not any(f.severity == "error" for f in findings),
        "findings": [{"severity": f.severity, "code": f.code, "path": f.path, "message": f.message} for f in findings],
    }


@router.post("/sql", **action("health.cohort.sql"))
def sql(body: SqlBody, context: Context, caller: Caller) -> dict[str, Any]:
    """The SQL the compiler generates for a definition, in a dialect."""
    definition = parse_definition(body.definition)
    sql_text = _compiled(lambda: services.definition_sql(caller, definition, body.dialect))
    return {"dialect": body.dialect, "sql": sql_text}


def _enabled(body: CountBody, definition: CohortDefinition) -> list[bool] | None:
    if body.enabled is not None and len(body.enabled) != len(definition.inclusion_rules):
        raise ApiError(
            422,
            "invalid_request",
            "enabled needs one flag per inclusion rule.",
            details=[(["body", "enabled"], f"expected {len(definition.inclusion_rules)}, got {len(body.enabled)}")],
        )
    return body.enabled


@router.post("/count", **action("health.cohort.count"))
def count(body: CountBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Persons and events of a cohort: exact for an approved project's members, otherwise noisy persons only.

    Without an approved project the definition may not name records or compare exact dates, ``persons``
    is noisy and rounded (``null``: under the threshold, a true 0 included) and ``events`` is withheld.
    """
    from massalia.health import research

    definition = parse_definition(body.definition)
    enabled = _enabled(body, definition)
    result = _compiled(
        lambda: research.count(
            caller, warehouse, definition, project_id=body.project_id, enabled=enabled,
        )
    )  # fmt: skip
    return jsonable_encoder(result)


@router.post("/attrition", **action("health.cohort.attrition"))
def attrition(body: CountBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Attrition table: persons (and events) after each inclusion rule, cumulative and alone.

    Exact for an approved project's members; otherwise one noisy release of the persons counts.
    """
    from massalia.health import research

    definition = parse_definition(body.definition)
    qualified, rows = _compiled(lambda: research.attrition(caller, warehouse, definition, project_id=body.project_id))
    return {"qualified": jsonable_encoder(qualified), "rules": jsonable_encoder(rows), "release": qualified.release}


@router.post("/breakdowns", **action("health.cohort.breakdowns"))
def breakdowns(body: GenerateBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Persons of a generated cohort by sex, age band and site (exact or noisy); generate the cohort first."""
    from massalia.health import research

    definition = parse_definition(body.definition)
    result = _compiled(
        lambda: research.breakdowns(
            caller, warehouse, definition, cohort_definition_id=body.cohort_id,
            project_id=body.project_id,
        )
    )  # fmt: skip
    return jsonable_encoder(result)


@router.post("/explain", **action("health.cohort.explain"))
def explain(body: ExplainBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Why one person is in or out of a cohort (audited before anything is read).

    Under a pseudonymized project the person is named by its project pseudonym (a string) and records
    are allow-listed (shifted dates, no warehouse key); clinicians see their own site's persons; others
    are refused (a verdict on a named person is personal data).
    """
    from massalia.health import research

    definition = parse_definition(body.definition)
    result = _compiled(
        lambda: research.explain(
            caller, warehouse, definition, body.person, purpose=body.purpose,
            project_id=body.project_id,
        )
    )  # fmt: skip
    grant = result.grant
    return {
        "person": result.person,
        "in_cohort": result.in_cohort,
        "grant": {"row_level": grant.row_level, "pseudonymized": grant.pseudonymized, "raw_counts": grant.raw_counts},
        "explanation": jsonable_encoder(result.explanation),
    }


@router.post("/generate", **action("health.cohort.generate"))
def generate(body: GenerateBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Write a cohort's rows into the warehouse's COHORT table (audited); counts are released as for a count."""
    from massalia.health import research

    definition = parse_definition(body.definition)
    result = _compiled(
        lambda: research.generate(
            caller, warehouse, definition, cohort_definition_id=body.cohort_id,
            project_id=body.project_id,
        )
    )  # fmt: skip
    return jsonable_encoder(result)
