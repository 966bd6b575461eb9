"""The cohort builder and the cohort dashboard in a real browser (issue 12): build, toggle, import, save, dashboard.

Each test runs in a fresh context and fails on any console error, uncaught exception, failed request or HTTP
error it did not provoke (``conftest.Watch``); pages are saved as screenshots, timings to ``cohort-timings.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, artifacts_dir, wait_until
from test_accessibility import audit

pytestmark = pytest.mark.browser

TIMINGS: dict[str, float] = {}
PHENOTYPE = "phenotypes/cohorts/648.json"  # a small ATLAS/Circe phenotype (colon cancer), 1.3 kB


def settled(page: Any, after: int) -> int:
    """Wait until the count and attrition answered a request newer than ``after``; its sequence number."""
    wait_until(
        page,
        "n => Number(document.getElementById('results')?.dataset.sequence || 0) > n "
        "&& document.getElementById('results').getAttribute('aria-busy') === 'false'",
        after,
    )
    return int(page.get_attribute("#results", "data-sequence"))


def count_text(page: Any) -> str:
    return page.text_content("#count-value").strip()


def write_timings() -> None:
    path = artifacts_dir() / "cohort-timings.json"
    known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    known.update(TIMINGS)
    path.write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")


def open_builder(browsing: Browsing) -> Any:
    browsing.sign_in("researcher")
    page = browsing.page
    started = time.perf_counter()
    page.goto("/portal/health/cohorts")
    page.wait_for_selector("#cohort-editor #entry-kind")
    settled(page, 0)
    TIMINGS["cohorts_first_load_ms"] = round((time.perf_counter() - started) * 1000)
    return page


def test_build_two_rules_toggle_one(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    """Entry on the cancer diagnosis, two rules; switching one off changes the count and the attrition chart."""
    page = open_builder(browsing)
    assert page.input_value("#cohort-project") == str(browsing.site.project_id), "the approved project: exact counts"
    seq = int(page.get_attribute("#results", "data-sequence"))
    page.select_option("#entry-kind", "CancerDiagnosis")
    page.click("#entry-kind-add")
    seq = settled(page, seq)
    everyone = count_text(page)
    assert everyone.isdigit() and int(everyone) > 0
    assert "Exact" in page.text_content("#release-mode")
    page.wait_for_selector("#attrition-chart canvas")

    page.click("#add-rule")
    page.fill("[data-rule-name='0']", "Stade ≥ III")
    page.select_option("#rule-kind-0", "TnmStage")
    page.click("#rule-kind-0-add")
    seq = settled(page, seq)
    page.click("#add-rule")
    page.fill("[data-rule-name='1']", "Première ligne")
    page.select_option("#rule-kind-1", "TreatmentLine")
    page.click("#rule-kind-1-add")
    seq = settled(page, seq)
    both = count_text(page)
    bars_both = page.get_attribute("#attrition-chart", "data-bars")
    assert int(both) < int(everyone)
    assert len(bars_both.split("|")) == 3, "entry + two rules"
    rows = page.locator("#attrition-table tbody tr td:first-child").all_text_contents()
    assert rows[1:] == ["Stade ≥ III", "Première ligne"]
    screenshot(page, "50-cohorts-two-rules")

    timings = []
    changed = "before => document.getElementById('count-value')?.textContent.trim() !== before"
    for _ in range(3):  # switch the stage rule off and on: what-if counts, attrition without the rule
        before = count_text(page)
        started = time.perf_counter()
        page.click("[data-rule-toggle='0']")
        wait_until(page, changed, before)
        timings.append((time.perf_counter() - started) * 1000)
        seq = settled(page, seq)
        if len(timings) == 1:
            TIMINGS["cohort_count_request_ms (first switch)"] = float(page.text_content("#count-timing").split()[-2])
        off = count_text(page)
        bars_off = page.get_attribute("#attrition-chart", "data-bars")
        assert len(bars_off.split("|")) == 2, "the rule switched off is left out of the attrition"
        page.click("[data-rule-toggle='0']")
        seq = settled(page, seq)
        assert page.get_attribute("#attrition-chart", "data-bars") == bars_both
    assert int(off) > int(both), "without the stage rule, more persons qualify"
    assert count_text(page) == both, "switched back on: the same exact count"
    page.click("[data-rule-toggle='0']")
    seq = settled(page, seq)
    screenshot(page, "51-cohorts-rule-off")
    TIMINGS["cohort_toggle_to_count_shown_ms (first time: asked)"] = round(timings[0])
    TIMINGS["cohort_toggle_to_count_shown_ms (seen before: the released answer again)"] = round(max(timings[1:]))

    page.click("#run-breakdowns")
    page.wait_for_selector("#breakdowns canvas")
    assert page.locator("#breakdowns table").count() == 3
    page.click("#show-sql")
    page.wait_for_selector("#cohort-sql")
    assert "WITH" in page.text_content("#cohort-sql")
    page.fill("#cohort-title", "Stade avancé, première ligne")
    page.click("#save-cohort")
    page.wait_for_selector("#save-status")
    page.locator("#saved-list li").filter(has_text="Stade avancé, première ligne").wait_for()
    page.click("#save-cohort")  # the same definition again: no new version
    page.wait_for_selector("#saved-current")
    screenshot(page, "52-cohorts-saved")
    write_timings()


def test_import_a_phenotype_and_export(
    browsing: Browsing, reference: Path, screenshot: Callable[[Any, str], Path], tmp_path: Path
) -> None:
    """An ATLAS/Circe phenotype imported from a file: its concept set, entry and rules in the editor, counted."""
    page = open_builder(browsing)
    seq = int(page.get_attribute("#results", "data-sequence"))
    source = json.loads((reference / PHENOTYPE).read_text(encoding="utf-8"))
    page.set_input_files("#cohort-import", str(reference / PHENOTYPE))
    page.wait_for_selector("#import-status")
    seq = settled(page, seq)
    assert page.locator("#concept-sets > li").count() == len(source["ConceptSets"])
    assert page.locator("#entry-list > li").count() == len(source["PrimaryCriteria"]["CriteriaList"])
    assert page.locator("#rule-list > li").count() == len(source.get("InclusionRules", []))
    assert page.locator("#count-value").count() == 1
    screenshot(page, "53-cohorts-imported")
    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert (
        exported["concept_sets"][0]["expression"]["items"][0]["concept"]["concept_id"]
        == (source["ConceptSets"][0]["expression"]["items"][0]["concept"]["CONCEPT_ID"])
    )
    # the concept search and hierarchy of the imported concept set
    page.fill("[data-concept-search='0']", "colon")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-search-results='0'] li")
    page.locator("[data-search-results='0'] li button").nth(1).click()
    page.wait_for_selector("[data-hierarchy='0']")
    count = count_text(page)
    page.click("#language-switch")  # English: the same definition and released count, not asked again
    page.wait_for_selector("h1:has-text('Cohort builder')")
    assert page.locator("#concept-sets > li").count() == len(source["ConceptSets"])
    assert count_text(page) == count
    screenshot(page, "56-cohorts-en")


def test_dashboard(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    """The dashboard's panels as charts, every number exactly as the API released it."""
    browsing.sign_in("researcher")
    page = browsing.page
    started = time.perf_counter()
    answers: list[Any] = []
    page.on("response", lambda r: answers.append(r) if r.url.endswith("/api/v1/mart/dashboard") else None)
    page.goto("/portal/health/dashboard")
    page.wait_for_selector("#dashboard-count")
    TIMINGS["dashboard_count_shown_ms"] = round((time.perf_counter() - started) * 1000)
    page.wait_for_selector("#dashboard-body[data-loaded] canvas")
    TIMINGS["dashboard_first_charts_ms"] = round((time.perf_counter() - started) * 1000)
    page.wait_for_selector("#dashboard-body[data-loaded='all']")
    TIMINGS["dashboard_all_panels_ms"] = round((time.perf_counter() - started) * 1000)
    released = [answer.json() for answer in answers]
    assert len(released) == 1, "one request: every panel released in one guarded call"
    assert page.text_content("#dashboard-count").strip() == released[0]["count"]["shown"]
    panels = released[0]["panels"]
    assert page.locator("[data-panel]").count() == len(panels) == 6
    shown_sites = {p["name"]: p for p in panels}["cancer_sites"]["variables"][0]
    table = page.locator("[data-panel='cancer_sites'] tbody td.number").all_text_contents()
    assert table[: len(shown_sites["cells"])] == [cell["shown"] for cell in shown_sites["cells"]]
    screenshot(page, "54-dashboard")
    write_timings()


def test_dashboard_accessibility(browsing: Browsing, axe_source: str) -> None:
    browsing.sign_in("researcher")
    page = browsing.page
    page.goto("/portal/health/dashboard")
    page.wait_for_selector("#dashboard-body[data-loaded='all'] canvas")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)


def test_builder_accessibility(browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]) -> None:
    page = open_builder(browsing)
    seq = int(page.get_attribute("#results", "data-sequence"))
    page.click("#add-concept-set")
    page.select_option("#entry-kind", "ConditionOccurrence")
    page.click("#entry-kind-add")
    page.click("#add-rule")
    page.select_option("#rule-kind-0", "Biomarker")
    page.click("#rule-kind-0-add")
    settled(page, seq)
    violations = audit(page, axe_source)
    screenshot(page, "55-axe-cohorts")
    assert not violations, "\n".join(violations)
