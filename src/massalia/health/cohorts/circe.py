"""OHDSI Circe (ATLAS) cohort JSON: import into a ``CohortDefinition`` and export back.

Circe's names are the aliases of our node fields, so import is validation and export is a dump by
alias. Everything Circe can say is modelled; a key we do not know is refused with its JSON path,
never dropped. A few keys that Circe's own Java model ignores for a criteria type (and which some
ATLAS exports still carry) are accepted only when ``lenient=True``: they are reported, not used.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from massalia.health.cohorts.criteria import CRITERIA_BY_KIND, OncologyCriterion
from massalia.health.cohorts.definition import CohortDefinition, check_input_bounds
from massalia.health.cohorts.nodes import ConceptSet

_WRAPPED_KINDS = {*CRITERIA_BY_KIND, "DateOffset", "CustomEra"}


class CirceImportError(ValueError):
    """A Circe definition cannot be imported; ``problems`` lists (JSON path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  at {path}: {message}" for path, message in problems)
        super().__init__(f"Circe definition refused ({len(problems)} problem(s)):\n{lines}")


@dataclass
class CirceImport:
    """The result of a lenient import: the definition and the keys Circe itself ignores that were skipped."""

    definition: CohortDefinition
    ignored: list[str] = field(default_factory=list)


def _json_path(loc: tuple[int | str, ...]) -> str:
    parts = ["$"]
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in _WRAPPED_KINDS or str(item).startswith("function-"):
            continue  # pydantic's union tag, not a JSON key
        else:
            parts.append(f".{item}")
    return "".join(parts)


def _load(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        loaded = json.loads(data)
    except json.JSONDecodeError as error:
        raise CirceImportError([("$", f"not JSON: {error}")]) from error
    if not isinstance(loaded, dict):
        raise CirceImportError([("$", "a Circe definition is a JSON object")])
    return loaded


def _circe_ignored_keys(node: Any, path: str, found: list[tuple[str, dict[str, Any], str]]) -> None:
    """Collect criteria keys that are not attributes of that criteria type."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _circe_ignored_keys(item, f"{path}[{index}]", found)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in CRITERIA_BY_KIND and isinstance(value, dict) and len(node) == 1:
            model = CRITERIA_BY_KIND[key]
            known = {f.alias or name for name, f in model.model_fields.items()}
            for attribute in list(value):
                if attribute not in known:
                    found.append((f"{path}.{key}.{attribute}", value, attribute))
        _circe_ignored_keys(value, f"{path}.{key}", found)


class CirceExportError(ValueError):
    """A definition uses constructs Circe cannot express; ``problems`` lists (path, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  at {path}: {message}" for path, message in problems)
        super().__init__(f"cannot export to Circe ({len(problems)} construct(s) Circe cannot express):\n{lines}")


def circe_refusals(definition: CohortDefinition) -> list[tuple[str, str]]:
    """The (path in Massalia's JSON, reason) of every construct of ``definition`` that Circe cannot express."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, OncologyCriterion):
            found.append((path, f"{node.kind} is a Massalia oncology criterion: {node.circe_refusal}"))
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]")
        elif hasattr(type(node), "model_fields"):
            for name in type(node).model_fields:
                value = getattr(node, name)
                if value is not None:
                    walk(value, f"{path}.{name}")

    walk(definition, "$")
    return found


class CirceCompatibilityWarning(UserWarning):
    """Attributes that Circe's own model ignores were skipped during an import (their JSON paths are listed)."""


def import_circe(data: str | bytes | dict[str, Any], *, lenient: bool = True) -> CohortDefinition:
    """Import an OHDSI Circe / ATLAS cohort definition.

    Parameters
    ----------
    data
        The Circe JSON, as text or as an already-parsed dictionary.
    lenient
        Skip criteria attributes that are not part of that criteria type in Circe's model (Circe
        ignores them too), with a ``CirceCompatibilityWarning`` naming their JSON paths. With
        ``lenient=False`` they are refused.

    Returns
    -------
    CohortDefinition
        The definition; ``to_circe`` writes it back.

    Raises
    ------
    CirceImportError
        With the JSON path and reason of every unsupported or invalid construct.

    Examples
    --------
    >>> definition = import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}')
    >>> definition.primary_criteria.criteria_list[0].kind
    'Death'
    """
    report = import_circe_report(data, lenient=lenient)
    if report.ignored:
        warnings.warn(
            CirceCompatibilityWarning(
                "skipped attributes that Circe ignores for their criteria type: " + ", ".join(report.ignored)
            ),
            stacklevel=2,
        )
    return report.definition


def import_circe_report(data: str | bytes | dict[str, Any], *, lenient: bool = True) -> CirceImport:
    """Like ``import_circe`` but also returns the JSON paths of the attributes that were skipped."""
    loaded = _load(data)
    check_input_bounds(loaded)  # before the deep copy and the recursive walks below
    document = json.loads(json.dumps(loaded))  # deep copy: leniency must not touch the caller's dict
    ignored: list[tuple[str, dict[str, Any], str]] = []
    _circe_ignored_keys(document, "$", ignored)
    if ignored and not lenient:
        raise CirceImportError(
            [(path, f"attribute {attribute!r} is not part of this criteria type") for path, _, attribute in ignored]
        )
    for _path, owner, attribute in ignored:
        owner.pop(attribute, None)
    # Circe writes "Title"/"Name" on some exports: they label, they do not select.
    try:
        definition = CohortDefinition.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as error:
        problems = [(_json_path(err["loc"]), _describe(err)) for err in error.errors()]
        raise CirceImportError(problems) from None
    return CirceImport(definition, [path for path, _, _ in ignored])


def _describe(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return f"unsupported construct {err['loc'][-1]!r} (not part of the Circe model supported here)"
    return str(err["msg"])


def _wrap(node: Any) -> Any:
    if isinstance(node, list):
        return [_wrap(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _wrap(value) for key, value in node.items()}
    kind = node.get("kind")
    if kind in _WRAPPED_KINDS:
        body = {key: value for key, value in node.items() if key != "kind"}
        return {kind: body}
    return node


def import_circe_concept_sets(data: str | bytes | list[Any] | dict[str, Any]) -> list[ConceptSet]:
    """Import Circe concept sets: a list of ``{id, name, expression}`` or one bare expression ``{items}``.

    Examples
    --------
    >>> import_circe_concept_sets('{"items": []}')[0].expression.items
    []
    """
    loaded = json.loads(data) if isinstance(data, str | bytes) else data
    entries = loaded if isinstance(loaded, list) else [{"id": 0, "name": "", "expression": loaded}]
    try:
        return [ConceptSet.model_validate(entry, by_alias=True, by_name=False) for entry in entries]
    except ValidationError as error:
        raise CirceImportError([(_json_path(err["loc"]), _describe(err)) for err in error.errors()]) from None


_SEGMENT = re.compile(r"\.(\w+)|\[(\d+)\]")


def circe_path(definition: CohortDefinition, path: str) -> str:
    """Translate a path in Massalia's JSON (``$.primary_criteria.criteria_list[0].age``) to Circe's.

    Examples
    --------
    >>> definition = import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}')
    >>> circe_path(definition, "$.primary_criteria.criteria_list[0].age")
    '$.PrimaryCriteria.CriteriaList[0].Death.Age'
    """
    node: Any = definition
    out = "$"
    for name, index in _SEGMENT.findall(path.removeprefix("$")):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return path
            node = node[int(index)]
            out += f"[{index}]"
        else:
            fields = getattr(type(node), "model_fields", {})
            if name not in fields:
                return path
            out += f".{fields[name].alias or name}"
            node = getattr(node, name)
        kind = getattr(node, "kind", None)
        if isinstance(kind, str) and kind in _WRAPPED_KINDS:
            out += f".{kind}"
    return out


def to_circe(definition: CohortDefinition) -> dict[str, Any]:
    """Export a definition as OHDSI Circe JSON (a dictionary; ``json.dumps`` it to save).

    Examples
    --------
    >>> exported = to_circe(import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}'))
    >>> exported["PrimaryCriteria"]["CriteriaList"]
    [{'Death': {}}]

    Raises
    ------
    CirceExportError
        When the definition uses Massalia's oncology criteria (``CancerDiagnosis``, ``TnmStage``,
        ``Biomarker``, ``TreatmentLine``, ``DiseaseProgression``): each is named with its path and
        the reason Circe cannot express it. Save such definitions with ``definition.to_json()``.
    """
    refused = circe_refusals(definition)
    if refused:
        raise CirceExportError(refused)
    wrapped: dict[str, Any] = _wrap(definition.model_dump(mode="json", by_alias=True, exclude_none=True))
    return wrapped
