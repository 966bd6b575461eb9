"""The Analyses page's similar cases, patient groups, control arm, hypotheses and patterns renderers in a browser.

A researcher of the demo's approved (aggregate) project runs each analysis on the demo home and reads its
result: every count exactly as the API released it ("<10" cells as such), the estimates as the API computed
them, charts drawn. A profile that is not valid is the API's 422, shown under the form; a researcher without an
approved project sees the API's 403. Each renderer passes axe-core, with no console error; screenshots go to the
artifacts folder.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, Site
from test_accessibility import audit
from test_analyses_more import fr, spaced
from test_analyses_page import REFUSAL, open_page, run, texts

from massalia.governance import ProjectScope, operator_principal


@pytest.fixture(scope="module")
def unapproved(portal_site: Site) -> int:
    """A researcher whose only project was never approved (signs in as ``unapproved``); that project's id."""
    gov = portal_site.app.state.massalia.governance
    password = secrets.token_urlsafe(15)
    user = gov.create_user("unapproved.renderers", password, roles=["researcher"], actor=operator_principal())
    draft = gov.create_project(
        "Projet en brouillon", "Analyses sans approbation (test des rendus).", scope=ProjectScope(),
        access_level="aggregate", expires=dt.date.today() + dt.timedelta(days=30), actor=user,
    )  # fmt: skip
    portal_site.accounts["unapproved"] = ("unapproved.renderers", password)
    return int(draft.id)


def rows(page: Any, table: str) -> list[list[str]]:
    """Each body row's cells (header cell first) of a result table."""
    row = f"#{table} tbody tr:nth-child({{}})"
    count = page.locator(f"#{table} tbody tr").count()
    return [texts(page, row.format(i + 1) + " th") + texts(page, row.format(i + 1) + " td") for i in range(count)]


def checked(page: Any, axe_source: str, screenshot: Callable[[Any, str], Path], name: str) -> None:
    # A section left out (nothing to show) leaves nothing behind, not the text "null" or "undefined".
    shown = page.text_content("#analysis-result") or ""
    assert "null" not in shown and "undefined" not in shown and "NaN" not in shown
    screenshot(page, name)
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)


@pytest.mark.browser
def test_similar_cases_of_a_described_patient(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """The neighbours' counts, agreement and at-risk numbers are the API's; the charts are drawn."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "similar")
    page.fill("#similar-k", "40")
    result, status, _ = run(page, "similar")
    assert status == 200, result
    counts = page.text_content("#similar-counts") or ""
    assert result["neighbours"]["shown"] in counts and result["candidates"]["shown"] in counts
    agreement = rows(page, "similar-agreement")
    assert [row[2:5] for row in agreement] == [
        [a["agreeing"]["shown"], a["differing"]["shown"], a["missing"]["shown"]] for a in result["agreement"]
    ]
    assert "<10" in {cell for row in agreement for cell in row}, "a 40-neighbour agreement has small cells"
    at_risk = rows(page, "similar-at-risk")
    assert [row[1] for row in at_risk] == [r["shown"] for r in result["km"]["at_risk"]]
    page.wait_for_selector("#similar-agreement-chart canvas")
    assert page.locator("#similar-profile-table tbody tr").count() == len(result["profile"])
    checked(page, axe_source, screenshot, "64-analyses-similar")


@pytest.mark.browser
def test_an_invalid_profile_shows_the_api_422(browsing: Browsing) -> None:
    """A profile naming a variable the mart does not have: the API's 422, its field named under the form."""
    browsing.watch.expect(r"HTTP 422: POST .*/api/v1/analyses/similar")
    browsing.watch.expect(r"console error: Failed to load resource: .* 422")
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "similar")
    page.fill("#similar-profile", '{"no_such_variable": 1}')
    result, status, _ = run(page, "similar")
    assert status == 422, result
    shown = page.text_content("#analysis-results") or ""
    assert "no_such_variable" in shown or "index_profile" in shown
    assert page.locator("#similar-agreement").count() == 0


@pytest.mark.browser
def test_patient_groups_sizes_what_sets_them_apart_and_survival(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """One card per group with its released size and its distinguishing variables; silhouette per k."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "groups")
    page.select_option("#groups-max", "4")
    result, status, _ = run(page, "groups")
    assert status == 200, result
    groups = result["groups"]
    assert page.locator("#groups-cards section").count() == len(groups) == result["k"]
    for group in groups:
        title = page.text_content(f"#groups-group-{group['group']}-title") or ""
        assert group["size"]["shown"] in title
        if group["size"]["count"] is not None and group["distinguishing"]:
            first = rows(page, f"groups-group-{group['group']}-table")[0]
            assert spaced(first[1]).replace("\u2212", "-") == fr(group["distinguishing"][0]["smd"], 2)
    assert [row[0] for row in rows(page, "groups-silhouette")] == sorted(result["silhouette"], key=int)
    page.wait_for_selector("#groups-km-chart canvas")
    checked(page, axe_source, screenshot, "65-analyses-groups")


@pytest.mark.browser
def test_control_arm_from_a_summary_then_from_the_trial_s_patients(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """MAIC: balance on the trial's targets, the survival at its times; then IPD: arms and the two HRs."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "control_arm")
    result, status, _ = run(page, "control-arm")
    assert status == 200, result
    assert result["mode"] == "summary"
    balance = rows(page, "control-balance")
    assert [row[0] for row in balance] == [b["covariate"] for b in result["balance"]]
    survival = rows(page, "control-survival")
    assert len(survival) == len(result["survival_comparison"])
    sizes = rows(page, "control-arms")
    assert sizes[1][1] == result["n"]["shown"] and sizes[2][1] == result["effective_sample_size"]["shown"]
    page.wait_for_selector("#control-km-chart canvas")
    checked(page, axe_source, screenshot, "66-analyses-control-arm-summary")

    page.select_option("#control-mode", "individual")
    page.wait_for_selector("#control-trial")
    result, status, _ = run(page, "control-arm")
    assert status == 200, result
    assert result["mode"] == "individual"
    arms = rows(page, "control-arms")
    assert [row[1] for row in arms] == [result["arms"][a]["n"]["shown"] for a in ("trial", "control")]
    hazard = rows(page, "control-hr")
    assert [spaced(row[1]) for row in hazard] == [
        fr(result["hazard_ratios"][m]["hr"], 2) for m in ("naive", "weighted") if result["hazard_ratios"].get(m)
    ]
    page.wait_for_selector("#control-balance-chart canvas")
    checked(page, axe_source, screenshot, "67-analyses-control-arm-individual")


@pytest.mark.browser
def test_hypotheses_two_groups_compared(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """One row per variable: the test, each group's n as released, the adjusted p-values, the verdict."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "hypotheses")
    result, status, _ = run(page, "hypotheses")
    assert status == 200, result
    sizes = rows(page, "hypotheses-groups")
    assert [row[1] for row in sizes] == [
        result["groups"]["group_a"]["shown"], result["groups"]["group_b"]["shown"],
        result["excluded_in_both_groups"]["shown"],
    ]  # fmt: skip
    if result.get("withheld"):
        assert result["withheld"] in (page.text_content("#hypotheses-withheld") or "")
    else:
        table = rows(page, "hypotheses-table")
        comparisons = result["comparisons"]
        assert len(table) == len(comparisons)
        released = [[c["n"]["group_a"]["shown"], c["n"]["group_b"]["shown"]] for c in comparisons]
        assert [row[2:4] for row in table] == released
        page.wait_for_selector("#hypotheses-p-chart canvas")
    checked(page, axe_source, screenshot, "68-analyses-hypotheses")


@pytest.mark.browser
def test_patterns_rules_and_sequences_as_released(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """Each shown rule and sequence with its persons exactly as released, unexpected ones marked, the lift chart."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "patterns")
    page.fill("#patterns-lift", "1.2")
    result, status, _ = run(page, "patterns")
    assert status == 200, result
    summary = page.text_content("#patterns-summary") or ""
    assert result["persons"]["shown"] in summary and str(result["associations"]["tested"]) in summary
    rules = result["associations"]["rules"]
    assert rules, "the demo cohort has association rules to show"
    table = rows(page, "patterns-rules")
    assert [row[1] for row in table] == [rule["persons"]["shown"] for rule in rules]
    marked = [row[-1] != "—" for row in table]
    assert marked == [rule["unexpected"] for rule in rules]
    assert all("⇒" in row[0] for row in table)
    if any(marked):
        page.wait_for_selector("#patterns-lift-chart canvas")
    sequences = result["sequences"]["sequences"]
    if sequences:
        shown_sequences = rows(page, "patterns-sequences")
        assert [row[1] for row in shown_sequences] == [s["persons"]["shown"] for s in sequences]
    checked(page, axe_source, screenshot, "69-analyses-patterns")


@pytest.mark.browser
def test_a_researcher_without_approval_is_refused_the_new_analyses(browsing: Browsing, unapproved: int) -> None:
    """The five analyses answer the API's 403 (reason shown) to a researcher whose project is not approved."""
    page, _ = open_page(browsing, "unapproved")
    assert page.input_value("#analyses-project") == str(unapproved)
    for kind, path in (("similar", "similar"), ("groups", "groups"), ("control_arm", "control-arm"),
                       ("hypotheses", "hypotheses"), ("patterns", "patterns")):  # fmt: skip
        browsing.watch.expect(rf"HTTP 403: POST .*/api/v1/analyses/{path}")
        browsing.watch.expect(r"console error: Failed to load resource: .* 403")
        page.select_option("#analyses-kind", kind)
        result, status, _ = run(page, path)
        assert status == 403, result
        assert REFUSAL in (page.text_content("#analysis-results [role=alert]") or "")
        assert page.locator("[data-result]").count() == 0
