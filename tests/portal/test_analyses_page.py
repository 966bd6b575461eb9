"""The Analyses page in a real browser (issue 13): survival and treatment comparison of an approved project's cohort.

A researcher of the demo's approved project runs a survival analysis and a comparison and sees the charts and
tables, every count exactly as the API released it; a researcher without an approved project sees the API's
refusal (also when they slip another project's id into the form); a bad request shows the API's 422; the cohort
dashboard opens the page on its cohort; the page passes axe-core. Requests carry the cohort in their bodies,
never in an address. Timings go to ``analyses-timings.json`` in the artifacts folder.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from portal_browser import Browsing, Site, artifacts_dir
from test_accessibility import audit

from massalia.api import ApiSettings, create_app
from massalia.config import Home
from massalia.governance import ProjectScope, operator_principal

pytestmark = pytest.mark.browser

PAGE = "/portal/health/analyses"
TIMINGS: dict[str, float] = {}
REFUSAL = "approved members of an approved, unexpired project"


def write_timings() -> None:
    path = artifacts_dir() / "analyses-timings.json"
    known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    known.update(TIMINGS)
    path.write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def outsider(portal_site: Site) -> int:
    """A researcher whose only project was never approved (drafted, no request filed); that project's id."""
    gov = portal_site.app.state.massalia.governance
    password = secrets.token_urlsafe(15)
    user = gov.create_user("outsider.analyses", password, roles=["researcher"], actor=operator_principal())
    draft = gov.create_project(
        "Projet non approuvé", "Analyses de survie sans approbation (test).", scope=ProjectScope(),
        access_level="aggregate", expires=dt.date.today() + dt.timedelta(days=30), actor=user,
    )  # fmt: skip
    portal_site.accounts["outsider"] = ("outsider.analyses", password)
    return int(draft.id)


@pytest.fixture(scope="module")
def unbuilt_site(tmp_path_factory: pytest.TempPathFactory, demo_warehouse: Path) -> Iterator[tuple[str, str, str]]:
    """A second served home: the demo's warehouse, accounts and approved project, but the mart never built."""
    import uvicorn

    from massalia.cli.demo_portal import demo_accounts, demo_project

    home = Home(tmp_path_factory.mktemp("unbuilt-home")).ensure()
    shutil.copy(demo_warehouse, home.warehouse)
    home.mark_initialized("duckdb")
    app = create_app(home, settings=ApiSettings())
    gov = app.state.massalia.governance
    accounts = demo_accounts(gov, operator_principal(), home.root)
    demo_project(gov, accounts)
    researcher = next(account for account in accounts if account.role == "researcher")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", server_header=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="unbuilt-uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the unbuilt home's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", researcher.username, researcher.password or ""
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def open_page(browsing: Browsing, role: str = "researcher") -> tuple[Any, list[str]]:
    """Sign in, open the page (first render timed); every request's address the page makes from here on."""
    browsing.sign_in(role)
    page = browsing.page
    addresses: list[str] = []
    page.on("request", lambda request: addresses.append(request.url))
    started = time.perf_counter()
    page.goto(PAGE)
    page.wait_for_selector("#main[data-ready='true'] #analysis-run")
    TIMINGS.setdefault(f"first_render_ms ({role})", round((time.perf_counter() - started) * 1000))
    return page, addresses


def run(page: Any, path: str) -> tuple[dict[str, Any], int, float]:
    """Click "run", wait for the result or the error; the API's JSON answer, its status and the seconds taken."""
    # Whether a progress bar showed while the analysis ran (an observer: a fast run may end before a poll sees it).
    page.evaluate(
        "() => { window.sawProgress = false; const box = document.querySelector('#analysis-results');"
        " new MutationObserver(() => { if (box.querySelector('progress')) window.sawProgress = true; })"
        ".observe(box, { childList: true, subtree: true }); }"
    )
    started = time.perf_counter()
    # A comparison with negative controls takes seconds, more on a loaded machine: well past the 15 s default.
    with page.expect_response(lambda r: r.url.endswith(f"/api/v1/analyses/{path}"), timeout=120_000) as answer:
        page.click("#analysis-run")
    page.wait_for_selector(
        "#analysis-results[data-state='done'], #analysis-results[data-state='error']", timeout=30_000
    )
    seconds = time.perf_counter() - started
    assert page.evaluate("() => window.sawProgress"), "a progress bar shows while the analysis runs"
    response = answer.value
    assert not response.request.url.count("?"), "an analysis request carries nothing in its address"
    return response.json(), response.status, seconds


def texts(page: Any, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_text_contents()]


def test_survival_curves_at_risk_logrank_and_cox(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """KM by stage with bands, the numbers at risk under it, log-rank p and the Cox table, as the API released them."""
    page, addresses = open_page(browsing)
    assert page.input_value("#survival-group") == "stage_group"
    result, status, seconds = run(page, "survival")
    TIMINGS["survival_run_to_charts_ms"] = round(seconds * 1000)
    assert status == 200
    page.wait_for_selector("#survival-km-chart canvas")
    groups = result["km"]["groups"]
    assert set(groups) >= {"I", "II", "III", "IV"}
    at_risk_rows = page.locator("#survival-at-risk tbody tr")
    assert at_risk_rows.count() == len(groups)
    for index, km in enumerate(groups.values()):
        cells = texts(page, f"#survival-at-risk tbody tr:nth-child({index + 1}) td")
        assert cells == [cell["shown"] for cell in km["at_risk"]]
    late = [cell["shown"] for km in groups.values() for cell in km["at_risk"] if cell["count"] is None]
    assert late and all(value == "<10" for value in late), "stage groups at 60 months hold cells under the threshold"
    assert "<10" in texts(page, "#survival-at-risk tbody td")
    assert "p < 0" in page.text_content("#survival-logrank").replace("\u202f", " ")  # stages differ strongly
    cox_rows = page.locator("#survival-cox tbody tr")
    assert cox_rows.count() == len(result["cox"]["terms"]) > 0
    queries = {key for url in addresses if "/api/" in url for key in parse_qs(urlsplit(url).query)}
    assert queries <= {"limit"} and not [url for url in addresses if "stage_group" in url], "no data in any address"
    screenshot(page, "60-analyses-survival")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    # A language switch redraws the result in English without asking the API again.
    asked = len([url for url in addresses if "/analyses/" in url])
    page.click("#language-switch")
    page.wait_for_selector("#survival-at-risk caption:text('Numbers at risk')")
    page.wait_for_selector("#survival-km-chart canvas")
    assert texts(page, "#survival-at-risk tbody tr:nth-child(1) td") == [c["shown"] for c in groups["I"]["at_risk"]]
    assert len([url for url in addresses if "/analyses/" in url]) == asked
    write_timings()


def test_compare_balance_ps_adjusted_km_hr_and_assumptions(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """Chemotherapy or not: balance plot, PS histograms ("<10" cells as such), adjusted KM, HRs, assumptions."""
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "compare")
    assert page.locator("#compare-treated-list [data-variable='received_chemotherapy']").count() == 1
    for control in ("rfs", "relapse", "second_cancer"):  # three controls: enough to calibrate (a demo, not a study)
        page.check(f"#compare-control-{control}")
    result, status, seconds = run(page, "compare")
    TIMINGS["compare_run_to_charts_ms"] = round(seconds * 1000)
    assert status == 200, result
    for chart in ("#compare-balance-chart", "#compare-ps-chart", "#compare-km-matched", "#compare-km-ipw"):
        page.wait_for_selector(f"{chart} canvas")
    histogram = result["propensity_score"]["histogram"]
    shown = [[bin_["treated"]["shown"], bin_["comparator"]["shown"]] for bin_ in histogram]
    table = [texts(page, f"#compare-ps-table tbody tr:nth-child({i + 1}) td") for i in range(len(histogram))]
    assert table == shown
    assert any(cell == "<10" for row in shown for cell in row), "some PS bins are under the threshold"
    assert page.locator("#compare-hr tbody tr").count() == len(result["hazard_ratios"]) == 3
    calibrated = result["negative_controls"]["calibrated"]
    assert "ipw" in calibrated, result["negative_controls"]
    ipw_row = texts(page, "#compare-hr tbody tr:nth-child(3) td")
    assert ipw_row[3] == f"{calibrated['ipw']['hr']:.2f}".replace(".", ","), "the calibrated HR as the API gave it"
    assert texts(page, "#compare-assumptions li") == result["assumptions"]
    assert page.locator("#compare-balance-table tbody tr").count() == len(result["balance"])
    screenshot(page, "61-analyses-compare")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    write_timings()


def test_a_researcher_without_approval_sees_the_refusal(
    browsing: Browsing, outsider: int, screenshot: Callable[[Any, str], Path]
) -> None:
    """The page warns, the API refuses (403 with its reason), also for another project's id slipped into the form."""
    browsing.watch.expect(r"HTTP 403: POST .*/api/v1/analyses/survival")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    page, _ = open_page(browsing, "outsider")
    page.wait_for_selector("#analyses-no-approved")
    assert page.input_value("#analyses-project") == str(outsider)
    result, status, _ = run(page, "survival")
    assert status == 403 and REFUSAL in result["error"]["message"]
    box = page.text_content("#analysis-results [role=alert]")
    assert REFUSAL in box and "km" not in result
    assert page.locator("#survival-km-chart").count() == 0
    screenshot(page, "62-analyses-refused")
    # The attack: the demo's approved project (not theirs) forced into the selector.
    project = browsing.site.project_id
    page.evaluate(
        "id => { const s = document.querySelector('#analyses-project'); s.append(new Option('x', id)); s.value = id;"
        " s.dispatchEvent(new Event('change')); }",
        str(project),
    )
    result, status, _ = run(page, "survival")
    assert status == 403 and REFUSAL in result["error"]["message"]
    assert page.locator("#survival-km-chart").count() == 0


def test_an_invalid_request_shows_the_api_422(browsing: Browsing) -> None:
    """Competing risks asked of overall survival (no competing event): the API's 422; of relapse: the incidence."""
    browsing.watch.expect(r"HTTP 422: POST .*/api/v1/analyses/survival")
    browsing.watch.expect(r"console error: Failed to load resource: .* 422")
    page, _ = open_page(browsing)
    page.check("#survival-competing")
    result, status, _ = run(page, "survival")
    assert status == 422
    assert "no competing event" in result["error"]["message"]
    assert "no competing event" in page.text_content("#analysis-results [role=alert]")
    # Relapse, death competing: the cumulative incidence (Aalen–Johansen) is drawn under the KM.
    page.select_option("#survival-endpoint", "relapse")
    result, status, _ = run(page, "survival")
    assert status == 200
    page.wait_for_selector("#survival-cif-chart canvas")
    assert result["cumulative_incidence"]["competing_events"]["shown"] in page.text_content("main")


def test_an_unbuilt_mart_says_how_to_build_it(browsing: Browsing, unbuilt_site: tuple[str, str, str]) -> None:
    """The API's real 409 (the mart of this home was never built) is shown with the command that builds it."""
    browsing.watch.expect(r"HTTP 409: .*/api/v1/")
    browsing.watch.expect(r"console error: Failed to load resource: .* 409")
    address, username, password = unbuilt_site
    page = browsing.page
    page.goto(f"{address}/portal/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#signin-submit")
    page.wait_for_selector("#current-user")
    page.goto(f"{address}{PAGE}")
    page.wait_for_selector("#main[data-ready='true'] #analysis-run")
    result, status, _ = run(page, "survival")
    assert status == 409 and "not available" in result["error"]["message"]
    assert "massalia mart build" in page.text_content("#analysis-results [role=alert]")


def test_the_dashboard_opens_the_page_on_its_cohort(browsing: Browsing) -> None:
    """The dashboard's link presets the project and the generated cohort (session storage, not the address)."""
    browsing.sign_in("researcher")
    page = browsing.page
    page.goto("/portal/health/dashboard")
    page.wait_for_selector("#dashboard-body[data-loaded='all']")
    page.fill("#dashboard-cohort", "7")
    page.click("#dashboard-show")
    page.wait_for_selector("#dashboard-body[data-loaded='all'] #dashboard-analyse")
    page.click("#dashboard-analyse")
    page.wait_for_url(f"**{PAGE}")
    assert page.url.endswith(PAGE), "nothing of the cohort in the address"
    page.wait_for_selector("#main[data-ready='true'] #analysis-run")
    assert page.input_value("#analyses-cohort") == "7"
    assert page.input_value("#analyses-project") == str(browsing.site.project_id)
    assert page.evaluate("() => sessionStorage.getItem('massalia.analyses.preset')") is None, "the preset is used once"


def test_a_forged_preset_is_ignored(browsing: Browsing, outsider: int) -> None:
    """A preset naming a project that is not the user's, or a cohort id that is not a positive integer, is dropped."""
    browsing.sign_in("outsider")
    page = browsing.page
    browsing.watch.expect(r"HTTP 403: POST .*/api/v1/analyses/survival")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    forged = {"project_id": browsing.site.project_id, "cohort_definition_id": -3}
    page.evaluate("preset => sessionStorage.setItem('massalia.analyses.preset', JSON.stringify(preset))", forged)
    page.goto(PAGE)
    page.wait_for_selector("#main[data-ready='true'] #analysis-run")
    assert page.input_value("#analyses-project") == str(outsider)
    assert page.input_value("#analyses-cohort") == ""
    with page.expect_request(lambda r: r.url.endswith("/api/v1/analyses/survival")) as sent:
        page.click("#analysis-run")
    body = sent.value.post_data_json
    assert body["project_id"] == outsider and "cohort_definition_id" not in body["filters"], body
    page.wait_for_selector("#analysis-results[data-state='error']")


def test_analyses_page_accessibility(browsing: Browsing, axe_source: str) -> None:
    """No serious axe violation on the form of either analysis (the results are audited in their own tests)."""
    page, _ = open_page(browsing)
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    page.select_option("#analyses-kind", "compare")
    page.wait_for_selector("#compare-treated-list")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
