"""A cohort's dashboard: its size and distributions, each released exactly as a mart breakdown is released.

The distributions are demographics, cancer sites, stage, biomarkers, treatment lines and vital status.

The dashboard adds no release mechanism of its own: its size is :func:`massalia.health.research.mart_count`
and each distribution is :func:`massalia.health.research.mart_breakdown` over the research mart, with the
caller's filters (a generated cohort is named by ``cohort_definition_id``). So each number is exact for a
member of an approved project inside its scope, and otherwise a noisy, rounded, thresholded release charged
to the caller's privacy budget, the same answer to the same question; every call is authorized and audited
by those services (their rows are counted together in one scan of the mart that lives for one dashboard,
:func:`massalia.health.marts.filters.breakdowns_in_one_scan`). Under a project, only the project's variables
are broken down (the others are listed as withheld); when the privacy budget runs out part way, the
remaining panels are withheld, never guessed.

Examples
--------
>>> dashboard = cohort_dashboard(caller, warehouse, {"cohort_definition_id": 1})  # doctest: +SKIP
>>> [panel["name"] for panel in dashboard["panels"]]  # doctest: +SKIP
['demographics', 'cancer_sites', 'stage', 'biomarkers', 'treatment_lines', 'vital_status']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.governance.disclosure import BudgetExhausted
from massalia.health import research
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import breakdowns_in_one_scan

PANELS: dict[str, tuple[str, ...]] = {
    "demographics": ("sex", "age_group_at_diagnosis"),
    "cancer_sites": ("primary_site",),
    "stage": ("stage_group",),
    "biomarkers": ("er_status", "her2_status", "egfr_status", "kras_status"),
    "treatment_lines": ("line1_modality", "line2_modality"),
    "vital_status": ("vital_status",),
}
"""Each panel of the dashboard and the mart's category variables it breaks the cohort down by."""


def _breakdown(result: Any) -> dict[str, Any]:
    return {"total": result.total, "total_shown": result.total_shown, "release": result.release,
            "cells": [{"value": value, "count": count, "shown": result.shown[value]}
                      for value, count in result.cells.items()]}  # fmt: skip


def cohort_dashboard(
    caller: Caller,
    engine: Engine,
    filters: Any,
    *,
    project_id: int | None = None,
    panels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The cohort's size and the breakdowns of ``panels`` (default: all of :data:`PANELS`).

    Returns ``{"count": <mart count>, "panels": [{"name", "variables": [{"variable", "label_en", "label_fr",
    "cells", "total", "release"} or {"variable", "withheld": reason}]}]}``.

    Raises
    ------
    InvalidRequest
        An unknown panel.
    massalia.governance.AccessDenied
        The caller may not count the mart (or under that project), or has no privacy budget left at all.
    """
    chosen = list(PANELS) if panels is None else list(dict.fromkeys(panels))
    unknown = sorted(set(chosen) - set(PANELS))
    if unknown:
        raise InvalidRequest(f"unknown dashboard panel(s) {', '.join(unknown)}; panels are {', '.join(PANELS)}")
    # Each guarded call below appends its own audit entries; one signed tree head covers them all (before return).
    with caller.governance.one_tree_head():
        # The size first: it authorizes (and audits) the caller under the project before the scope is read.
        size = research.mart_count(caller, engine, filters, project_id=project_id)
        scope = None if project_id is None else research.project_scope(caller, "health.mart.count", project_id)
        allowed = set(scope.variables) if scope is not None else None
        broken_down = [v for name in chosen for v in PANELS[name] if not allowed or v in allowed]
        # One scan of the mart counts every panel's variable; each breakdown below is still its own guarded call.
        with breakdowns_in_one_scan(broken_down):
            shown = _panels(caller, engine, filters, chosen, allowed, project_id)
    return {"count": {"count": size.count, "shown": size.shown, "release": size.release}, "panels": shown}


def _panels(
    caller: Caller,
    engine: Engine,
    filters: Any,
    chosen: Sequence[str],
    allowed: set[str] | None,
    project_id: int | None,
) -> list[dict[str, Any]]:
    """The breakdowns of the ``chosen`` panels, each released by :func:`research.mart_breakdown`."""
    catalogue = load_catalogue()
    shown: list[dict[str, Any]] = []
    exhausted: str | None = None
    for name in chosen:
        variables: list[dict[str, Any]] = []
        for variable in PANELS[name]:
            entry: dict[str, Any] = {"variable": variable, "label_en": catalogue.variable(variable).label_en,
                                     "label_fr": catalogue.variable(variable).label_fr}  # fmt: skip
            if allowed and variable not in allowed:
                entry["withheld"] = "outside the project's variables"
            elif exhausted is not None:
                entry["withheld"] = exhausted
            else:
                try:
                    found = research.mart_breakdown(caller, engine, filters, variable, project_id=project_id)
                    entry.update(_breakdown(found))
                except BudgetExhausted as error:
                    exhausted = entry["withheld"] = f"privacy budget exhausted: {error.reason}"
            variables.append(entry)
        shown.append({"name": name, "variables": variables})
    return shown
