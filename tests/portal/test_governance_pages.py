"""The portal's governance pages in a real browser (issue 12): projects and access requests, the DPO's review,
extracts with their manifest, the patient timeline and the audit trail.

Journeys: the researcher creates a pseudonymized project and files an access request; the DPO approves it with a
reason; the researcher generates the cohort, builds the extract and downloads it with its manifest (k, suppressed
rows); a clinician opens a timeline of their own site's patient and is refused another site's; the DPO filters
the audit trail and verifies the log. Every page passes axe-core; load times go to ``timings-governance.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, artifacts_dir, wait_until
from test_accessibility import audit

pytestmark = pytest.mark.browser

TIMINGS: dict[str, float] = {}
OVARY = 4181351  # "Malignant tumor of ovary": a handful of persons in the 600-patient demo warehouse
SCOPE_VARIABLES = ("sex", "primary_site", "stage_group", "diagnosis_date")
COHORT = {
    "ConceptSets": [{"id": 0, "name": "ovary", "expression": {
        "items": [{"concept": {"CONCEPT_ID": OVARY}, "includeDescendants": True}]}}],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0}, "PrimaryCriteriaLimit": {"Type": "First"},
    },
    "InclusionRules": [],
    "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def write_timings() -> Iterator[None]:
    yield
    if TIMINGS:
        (artifacts_dir() / "timings-governance.json").write_text(json.dumps(TIMINGS, indent=2) + "\n", "utf-8")


@pytest.fixture(scope="module")
def site_persons(demo_warehouse: Path) -> dict[str, int]:
    """A person of the clinician's site (chu_nord) and one of another site, read from the suite's warehouse."""
    from massalia.engine.duckdb import DuckDBEngine

    with DuckDBEngine(demo_warehouse) as engine:
        rows = engine.query(
            "SELECT p.person_id, c.care_site_source_value AS site, "
            "(SELECT count(*) FROM condition_occurrence o WHERE o.person_id = p.person_id) AS n "
            "FROM person p JOIN care_site c ON c.care_site_id = p.care_site_id ORDER BY n DESC, p.person_id"
        ).to_pylist()
    own = next(r["person_id"] for r in rows if r["site"] == "chu_nord")
    other = next(r["person_id"] for r in rows if r["site"] != "chu_nord")
    return {"own": int(own), "other": int(other)}


def timed(name: str, page: Any, path: str, ready: str) -> None:
    started = time.perf_counter()
    page.goto(path)
    page.wait_for_selector(ready)
    TIMINGS[name] = round((time.perf_counter() - started) * 1000)


def switch_user(browsing: Browsing, role: str) -> None:
    browsing.page.context.clear_cookies()
    browsing.sign_in(role)


def flash(page: Any, where: str = "#projects-status") -> str:
    """The page's status line once it says something (success or error)."""
    return str(wait_until(page, "s => document.querySelector(s + ' .alert')?.textContent || ''", where))


def test_request_approval_and_extract_journey(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    page = browsing.page
    browsing.sign_in("researcher")
    timed("projects_page_ms", page, "/portal/health/projects", "#projects-list")
    page.click("#project-new")
    page.fill("#project-title", "Cancer de l'ovaire : lignes de traitement")
    page.fill("#project-purpose", "Décrire les traitements de première ligne du cancer de l'ovaire.")
    page.select_option("#project-level", "pseudonymized")
    for name in SCOPE_VARIABLES:
        page.check(f"#scope-var-{name}")
    page.fill("#project-end", "2099-12-31")
    page.fill("#project-cohort", json.dumps(COHORT))
    screenshot(page, "50-project-form")
    page.click("#project-create")
    assert "créé" in flash(page)
    assert page.text_content("#project-status") == "brouillon"
    project_id = int(page.text_content("#project-detail-title").split()[1])
    assert "… → 2099-12-31" in page.text_content("#project-detail")
    assert "pseudonymisés approuvés" in page.text_content("#extracts")
    page.fill("#request-justification", "Protocole ONCO-7, AIPD réalisée.")
    page.click("#request-file")
    assert "Demande d'accès déposée" in flash(page)
    assert "en attente" in page.text_content("#project-requests")
    screenshot(page, "51-project-requested")

    # The DPO reviews the request with the project's scope and approves it with a reason.
    switch_user(browsing, "dpo")
    timed("requests_page_ms", page, "/portal/health/requests", "#requests-table")
    row = page.locator("#requests-table tbody tr").filter(has_text="Protocole ONCO-7")
    request_id = row.locator("td").first.text_content()
    page.click(f"#request-open-{request_id}")
    assert "Décrire les traitements" in page.text_content("#request-review")
    page.click("#request-approve")  # without a reason: refused in the page, nothing sent
    assert "motif" in page.text_content("#decision-status")
    page.fill("#decision-reason", "Protocole et AIPD examinés.")
    screenshot(page, "52-dpo-review")
    page.click("#request-approve")
    assert "approuvée" in flash(page, "#requests-status")

    # The researcher generates the project's cohort and builds a k-anonymous extract, then downloads it.
    switch_user(browsing, "researcher")
    page.goto("/portal/health/projects")
    page.click(f"#project-open-{project_id}")
    assert page.text_content("#project-status") == "approuvé"
    page.click("#cohort-generate")
    assert "Cohorte générée" in flash(page)
    persons = page.text_content("#cohort-generated")
    page.select_option("#extract-format", "csv")
    page.select_option("#extract-low", "generalize")
    page.click("#extract-create")
    assert "Extraction construite" in flash(page)
    item = page.locator("#extracts-list > li").first
    rows = item.locator(".extract-rows").text_content()
    assert rows in persons, (rows, persons)  # every person of the cohort, none suppressed at this size
    assert int(item.locator(".extract-k").text_content().split()[0]) >= 5
    assert item.locator(".extract-suppressed").text_content() == "0"
    data = item.locator("a[download$='.csv']")
    with page.expect_download() as download_info:
        data.click()
    download = download_info.value
    header = Path(download.path()).read_text(encoding="utf-8").splitlines()[0]
    assert {name.strip('"') for name in header.split(",")} == {"person_pseudonym", *SCOPE_VARIABLES}
    screenshot(page, "53-extract-made")


def test_clinician_timeline_own_site_and_refusal(
    browsing: Browsing, screenshot: Callable[[Any, str], Path], site_persons: dict[str, int]
) -> None:
    browsing.watch.expect(r"HTTP 403: POST .*/api/v1/patients/timeline")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    page = browsing.page
    browsing.sign_in("clinician")
    page.goto("/portal/health/timeline")
    page.fill("#timeline-person-input", str(site_persons["own"]))
    page.fill("#timeline-purpose", "Préparation de la RCP du patient.")
    started = time.perf_counter()
    page.click("#timeline-open")
    page.wait_for_selector("#timeline-chart canvas")
    TIMINGS["timeline_open_ms"] = round((time.perf_counter() - started) * 1000)
    assert page.text_content("#timeline-person") == f"Patient {site_persons['own']}"
    assert int(page.text_content("#timeline-total").replace("\u202f", "").replace("\xa0", "")) > 0
    assert page.locator("#timeline-table tbody tr").count() > 0
    assert page.text_content("#timeline-audit").startswith("entrée n°")
    chart_box = page.locator("#timeline-chart").bounding_box()
    page.mouse.move(chart_box["x"] + chart_box["width"] / 2, chart_box["y"] + 120)
    page.mouse.wheel(0, -400)  # the shared dataZoom zooms every panel: no error in the page
    screenshot(page, "54-timeline")
    page.locator("#timeline-chart").screenshot(path=str(artifacts_dir() / "54-timeline-chart.png"))
    page.click("#timeline-next")
    assert page.locator("#timeline-table tbody tr").count() > 0
    page.fill("#timeline-person-input", str(site_persons["other"]))
    page.click("#timeline-open")
    wait_until(page, "() => document.getElementById('timeline-result').dataset.state === 'error'")
    assert "Accès refusé" in page.text_content("#timeline-result [role=alert]")
    screenshot(page, "55-timeline-refused")


def test_dpo_reads_and_verifies_the_audit_trail(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    page = browsing.page
    browsing.sign_in("dpo")
    timed("audit_page_ms", page, "/portal/health/audit", "#audit-table")
    total = page.text_content("#audit-total")
    researcher = browsing.site.accounts["researcher"][0]
    page.fill("#audit-actor", researcher)
    page.select_option("#audit-limit", "25")
    loaded = int(page.get_attribute("#audit-results", "data-loaded"))
    page.click("#audit-apply")
    wait_until(page, "n => Number(document.getElementById('audit-results').dataset.loaded) > n", loaded)
    actors = set(page.locator("#audit-table tbody tr td:nth-child(3)").all_text_contents())
    assert actors == {researcher}, actors
    assert page.text_content("#audit-total") != total
    page.select_option("#audit-decision", "allowed")
    page.fill("#audit-action", "project.*")
    page.click("#audit-apply")
    wait_until(page, "n => Number(document.getElementById('audit-results').dataset.loaded) > n + 1", loaded)
    actions = set(page.locator("#audit-table tbody tr td:nth-child(4)").all_text_contents())
    assert actions and all(a.startswith("project.") for a in actions), actions
    page.click("#audit-verify")
    result = page.locator("#audit-verify-result .alert")
    result.wait_for()
    assert result.get_attribute("data-ok") == "true"
    assert "intact" in result.text_content()
    screenshot(page, "56-audit")


def test_vocabulary_search_and_concept(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    page = browsing.page
    browsing.sign_in("researcher")
    timed("vocabulary_page_ms", page, "/portal/health/vocabulary", "#vocabulary-form")
    page.fill("#vocabulary-q", "malignant tumor of ovary")
    page.check("#vocabulary-standard")
    started = time.perf_counter()
    page.click("#vocabulary-search")
    page.wait_for_selector("#vocabulary-table")
    TIMINGS["vocabulary_search_ms"] = round((time.perf_counter() - started) * 1000)
    names = page.locator("#vocabulary-table tbody .concept-link").all_text_contents()
    assert names and all("ovary" in name.lower() for name in names), names
    page.locator(f"#vocabulary-table .concept-link[data-concept='{OVARY}']").click()
    page.wait_for_selector("#concept-detail")
    assert page.text_content("#concept-title").endswith(f"({OVARY})")
    assert page.locator("#concept-ancestors tbody tr").count() > 0
    screenshot(page, "57-vocabulary")


@pytest.fixture(scope="module")
def quality_history(portal_site: Any, demo_warehouse: Path) -> int:
    """Two quality runs recorded in the served home (a few checks, on a read-only copy): a history with a trend."""
    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.quality.runner import run_quality

    with DuckDBEngine(demo_warehouse) as engine:
        run_quality(engine, out_dir=portal_site.home.reports, checks=["cdmTable"])
        report = run_quality(engine, out_dir=portal_site.home.reports, checks=["cdmTable", "isRequired"])
    return int(report.summary()["status"]["failed"])


def test_quality_runs_trend_and_results(
    browsing: Browsing, screenshot: Callable[[Any, str], Path], quality_history: int
) -> None:
    page = browsing.page
    browsing.sign_in("dpo")
    timed("quality_page_ms", page, "/portal/health/quality", "#quality-chart canvas")
    assert page.locator("#quality-runs-table tbody tr").count() >= 2
    first = page.locator("#quality-runs-table tbody tr").first.locator("td")
    assert first.nth(5).text_content() == str(quality_history)  # failed checks of the newest run, as released
    page.select_option("#quality-status", "passed")
    page.wait_for_selector("#quality-results-table")
    assert set(page.locator("#quality-results-table tbody td:nth-child(5)").all_text_contents()) == {"réussi"}
    assert page.locator("#etl-no-runs, #etl-runs-table").count() == 1  # the DPO reads the ETL history
    screenshot(page, "58-quality")


@pytest.mark.parametrize(
    ("role", "path", "ready", "name"),
    [
        ("researcher", "/portal/health/projects", "#projects-list", "projects"),
        ("dpo", "/portal/health/requests", "#requests-filter", "requests"),
        ("dpo", "/portal/health/audit", "#audit-table", "audit"),
        ("clinician", "/portal/health/timeline", "#timeline-form", "timeline"),
        ("researcher", "/portal/health/vocabulary", "#vocabulary-form", "vocabulary"),
        ("researcher", "/portal/health/quality", "#quality-results", "quality"),
    ],
)
def test_governance_pages_are_accessible(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path],
    role: str, path: str, ready: str, name: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if name == "quality":
        request.getfixturevalue("quality_history")  # a report to show (none is a 409 the page would show)
    browsing.sign_in(role)
    page = browsing.page
    page.goto(path)
    page.wait_for_selector(ready)
    if name == "projects":
        page.click("#project-new")
        page.click(f"#project-open-{browsing.site.project_id}")
        page.wait_for_selector("#project-detail")
    if name == "vocabulary":
        page.fill("#vocabulary-q", "ovary")
        page.click("#vocabulary-search")
        page.locator("#vocabulary-table .concept-link").first.click()
        page.wait_for_selector("#concept-detail")
    violations = audit(page, axe_source)
    screenshot(page, f"41-axe-{name}")
    assert not violations, "\n".join(violations)
