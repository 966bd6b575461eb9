"""DataQualityDashboard check definitions as data: which check runs on which table, field or concept.

``dqd_checks.json`` is derived from OHDSI DataQualityDashboard v2.8.4's CSVs by
``scripts/gen_dqd_checks.py``. Each check description carries an ``evaluationFilter`` (for
example ``isForeignKey=='Yes' & fkDomain!= ''``) that is evaluated against every table-, field- or
concept-level row to decide where the check applies; the row's ``<checkName>Threshold`` column
gives the percentage of violating rows tolerated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from massalia.quality.definitions import LEVELS, CheckDescription, CheckInstance

__all__ = [
    "LEVELS",
    "CheckDescription",
    "CheckInstance",
    "check_descriptions",
    "dqd_definitions",
    "instantiate",
    "matches_filter",
]

_CLAUSE = re.compile(r"^\s*(\w+)\s*(==|!=)\s*'([^']*)'\s*$")


def matches_filter(expression: str, row: Mapping[str, str]) -> bool:
    """Evaluate a DQD ``evaluationFilter`` (clauses ``col=='v'`` / ``col!='v'`` joined by ``&``).

    Examples
    --------
    >>> matches_filter("isForeignKey=='Yes' & fkDomain!= ''", {"isForeignKey": "Yes", "fkDomain": "Drug"})
    True
    >>> matches_filter("isRequired=='Yes'", {"isRequired": "No"})
    False
    """
    for clause in expression.split("&"):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"unsupported DQD evaluationFilter clause {clause!r} in {expression!r}")
        column, operator, value = match.groups()
        actual = row.get(column, "").strip()
        if (actual == value) != (operator == "=="):
            return False
    return True


@cache
def dqd_definitions() -> dict[str, Any]:
    """The shipped DQD definitions (check descriptions and table/field/concept rows)."""
    text = resources.files("massalia.health.quality").joinpath("dqd_checks.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def check_descriptions() -> dict[str, CheckDescription]:
    """DQD check types by name, in DQD's order.

    Examples
    --------
    >>> check_descriptions()["isRequired"].kahn_category
    'Conformance'
    """
    return {
        d["name"]: CheckDescription(
            name=d["name"],
            level=d["level"],
            description=d["description"],
            kahn_context=d["kahn_context"],
            kahn_category=d["kahn_category"],
            kahn_subcategory=d["kahn_subcategory"],
            evaluation_filter=d["evaluation_filter"],
            severity=d["severity"],
        )
        for d in dqd_definitions()["check_descriptions"]
    }


def _threshold(row: Mapping[str, str], check: str) -> float:
    value = row.get(f"{check}Threshold", "").strip()
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _as_int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else None


def instantiate(description: CheckDescription) -> list[CheckInstance]:
    """All instances of one check type, one per definition row its ``evaluationFilter`` enables."""
    rows = dqd_definitions()[f"{description.level.lower()}_level"]
    instances = []
    for row in rows:
        if not matches_filter(description.evaluation_filter, row):
            continue
        instances.append(
            CheckInstance(
                check=description,
                table=row["cdmTableName"].lower(),
                field=row["cdmFieldName"].lower() if "cdmFieldName" in row else None,
                concept_id=_as_int(row.get("conceptId", "")),
                unit_concept_id=_as_int(row.get("unitConceptId", "")),
                threshold=_threshold(row, description.name),
                params=dict(row),
            )
        )
    return instances
