"""A cohort's dashboard: its size and distributions, each released exactly as a mart breakdown is released.

The distributions are demographics, cancer sites, stage, biomarkers, treatment lines and vital status.

The dashboard adds no release mechanism of its own: its size is what :func:`massalia.health.research.mart_count`
releases and each distribution what :func:`massalia.health.research.mart_breakdown` releases, with the
caller's filters (a generated cohort is named by ``cohort_definition_id``). So each number is exact for a
member of an approved project inside its scope, and otherwise a noisy, rounded, thresholded release charged
to the caller's privacy budget, the same answer to the same question. One guarded call
(:func:`massalia.health.research.mart_count_and_breakdowns`) releases them all: one authorization whose
audit entry names every breakdown, one scan of the mart, one release transaction (each breakdown still its
own release, under the same key as a lone breakdown's: the same answer, the same charge, the dashboard
charged the sum). Under a project, only the project's variables are broken down (the others are listed as
withheld); when the privacy budget runs out part way, the remaining panels are withheld, never guessed.

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
from massalia.health import research
from massalia.health.marts.catalogue import load_catalogue

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
    # One guarded call releases the size and every breakdown (one authorization, one scan, one release
    # transaction); its audit entries share one signed tree head, signed before the answer leaves.
    variables = [variable for name in chosen for variable in PANELS[name]]
    with caller.governance.one_tree_head():
        summary = research.mart_count_and_breakdowns(caller, engine, filters, variables, project_id=project_id)
    size = summary.count
    return {"count": {"count": size.count, "shown": size.shown, "release": size.release},
            "panels": _panels(chosen, summary.breakdowns)}  # fmt: skip


def _panels(chosen: Sequence[str], breakdowns: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``chosen`` panels: each variable's breakdown, or why it is withheld."""
    catalogue = load_catalogue()
    shown: list[dict[str, Any]] = []
    for name in chosen:
        variables: list[dict[str, Any]] = []
        for variable in PANELS[name]:
            entry: dict[str, Any] = {"variable": variable, "label_en": catalogue.variable(variable).label_en,
                                     "label_fr": catalogue.variable(variable).label_fr}  # fmt: skip
            found = breakdowns[variable]
            if isinstance(found, str):
                entry["withheld"] = found
            else:
                entry.update(_breakdown(found))
            variables.append(entry)
        shown.append({"name": name, "variables": variables})
    return shown
