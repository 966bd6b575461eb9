"""Guarded health services that read no warehouse rows: definitions, the mart's catalogue, reports, extract files.

Like :mod:`massalia.health.research`, every function here takes the :class:`~massalia.governance.Caller`
(principal, governance, and the ``channel`` the call came through), checks the action's rights first (through
:meth:`massalia.governance.Governance.authorize`, which audits what ``rights.yaml`` marks audited and every
act of the local operator), and only then does the work. The interfaces (routes, CLI commands) call these
and never ``authorize`` themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from massalia.governance import Caller, NotFound
from massalia.health.cohorts.compiler import HOUSE_DIALECT, generated_sql
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.lint import Finding, lint
from massalia.health.marts.catalogue import Variable, load_catalogue
from massalia.quality.history import read_runs, with_trend

EXTRACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""An extract's id or one of its files' names: no separator, no leading dot, bounded."""


def _detail(channel: str | None, **extra: Any) -> dict[str, Any]:
    return {"channel": channel, **extra} if channel else dict(extra)


# -- cohort definitions (no data read) -------------------------------------------------------------------
def checked_definition(caller: Caller, definition: CohortDefinition) -> CohortDefinition:
    """``definition`` itself, once the caller may handle definitions (``health.cohort.validate``).

    Used by the import of an ATLAS/Circe definition: converting it reads no data, but it is still an act
    of the platform and checked like any other.
    """
    caller.authorize("health.cohort.validate", detail=_detail(caller.channel))
    return definition


def lint_definition(caller: Caller, definition: CohortDefinition) -> list[Finding]:
    """The lint findings of ``definition`` (``health.cohort.validate``; no data read)."""
    caller.authorize("health.cohort.validate", detail=_detail(caller.channel))
    return lint(definition)


def definition_sql(
    caller: Caller,
    definition: CohortDefinition,
    dialect: str = HOUSE_DIALECT,
    *,
    materialize: bool | None = None,
) -> str:
    """The SQL compiled from ``definition`` in ``dialect`` (``health.cohort.sql``; no data read).

    Raises
    ------
    massalia.health.cohorts.compiler.UnsupportedConstruct
        The definition uses a construct the compiler does not handle.
    """
    caller.authorize("health.cohort.sql", detail=_detail(caller.channel))
    return generated_sql(definition, dialect, materialize=materialize)


# -- the research mart's catalogue -----------------------------------------------------------------------
def mart_variables(caller: Caller) -> list[Variable]:
    """The mart's variables and their definitions (``health.mart.variables``; no personal data)."""
    caller.authorize("health.mart.variables", detail=_detail(caller.channel))
    return list(load_catalogue().variables)


# -- data quality reports ----------------------------------------------------------------------------------
def quality_report(caller: Caller, reports_dir: Path) -> dict[str, Any]:
    """The latest quality report (``health.quality.read``), checked before the file is looked at.

    Raises
    ------
    NotFound
        No report was written yet.
    OSError, ValueError
        The report exists but cannot be read or is not a JSON object.
    """
    caller.authorize("health.quality.read", detail=_detail(caller.channel))
    path = Path(reports_dir) / "quality.json"
    if not path.is_file():
        raise NotFound("No quality report yet: run `massalia quality`.")
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return report


def quality_runs(caller: Caller, reports_dir: Path) -> list[dict[str, Any]]:
    """Every quality run's summary, oldest first, each with its trend since the previous (``health.quality.read``).

    Raises
    ------
    OSError, ValueError
        The latest report exists but cannot be read.
    """
    caller.authorize("health.quality.read", detail=_detail(caller.channel))
    return with_trend(read_runs(Path(reports_dir)))


# -- a project's extracts ---------------------------------------------------------------------------------
def _name(value: str, what: str) -> str:
    if not EXTRACT_NAME.match(value) or ".." in value:
        raise NotFound(f"No such {what}.")
    return value


def list_extracts(caller: Caller, project_id: int, folder: Path) -> list[Path]:
    """The project's extract folders under ``folder``, oldest first (``health.extract.create``, audited)."""
    caller.authorize("health.extract.create", project_id=project_id,
                  detail={"operation": "list", **_detail(caller.channel)})  # fmt: skip
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def extract_file(
    caller: Caller,
    project_id: int,
    folder: Path,
    extract_id: str,
    name: str,
) -> Path:
    """One file of one of the project's extracts (``health.extract.create``; every download is audited).

    The decision is taken and audited with the names as asked (bounded) before they are checked, so a
    probe for other paths is in the trail too; a name that is not a plain file name is a :class:`NotFound`.
    """
    detail = {"operation": "download", "extract_id": extract_id[:140], "file": name[:140], **_detail(caller.channel)}
    caller.authorize("health.extract.create", project_id=project_id, detail=detail)
    path = Path(folder) / _name(extract_id, "extract") / _name(name, "file")
    if not path.is_file():
        raise NotFound("No such file.")
    return path
