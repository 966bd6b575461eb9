"""The portal in a real browser (Debian's headless Chromium through Playwright): the journeys of issue 12, part A.

Each test runs in a fresh context and fails on any console error, uncaught exception, failed request or HTTP
error it did not provoke on purpose (``conftest.Watch``); every page is saved as a screenshot artifact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, artifacts_dir, wait_until

pytestmark = pytest.mark.browser

TIMINGS: dict[str, float] = {}


def wait_for_count(page: Any, after: int) -> int:
    """Wait until the live count answered a request newer than ``after``; its sequence number."""
    wait_until(
        page,
        "n => Number(document.getElementById('results')?.dataset.sequence || 0) > n "
        "&& document.getElementById('results').getAttribute('aria-busy') === 'false'",
        after,
    )
    return int(page.get_attribute("#results", "data-sequence"))


def breakdown_cells(page: Any) -> list[str]:
    return [cell.strip() for cell in page.locator("#breakdown-table tbody td.number").all_text_contents()]


def test_anonymous_visitor_is_sent_to_sign_in(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    page = browsing.page
    page.goto("/portal/health/feasibility")
    page.wait_for_url("**/portal/signin")
    page.wait_for_selector("#signin-form")
    assert page.locator("html").get_attribute("lang") == "fr", "French by default"
    assert page.locator("h1").text_content() == "Connexion"
    assert page.locator("nav").count() == 0, "no navigation before signing in"
    screenshot(page, "01-signin-fr")
    page.goto("/")
    page.wait_for_url("**/portal/signin")


def test_wrong_password_shows_the_api_refusal(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    browsing.watch.expect(r"HTTP 401: POST .*/api/v1/auth/login")
    browsing.watch.expect(r"console error: Failed to load resource: .* 401")
    page = browsing.page
    page.goto("/portal/signin")
    page.fill("input[name=username]", browsing.site.accounts["researcher"][0])
    page.fill("input[name=password]", "not the right passphrase")
    page.click("#signin-submit")
    alert = page.locator("#signin-form [role=alert]")
    alert.wait_for()
    assert "incorrect" in alert.text_content()
    screenshot(page, "02-signin-refused")


def test_researcher_feasibility_journey(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    """Sign in, switch language (remembered), set two filters: the count and the chart follow, as released."""
    page = browsing.page
    page.goto("/portal/health/feasibility")
    page.wait_for_url("**/portal/signin")
    username, password = browsing.site.accounts["researcher"]
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#signin-submit")
    page.wait_for_url("**/portal/health/feasibility")  # back where the visitor was going
    first = wait_for_count(page, 0)
    page.wait_for_selector("#breakdown-chart canvas")
    everyone = page.text_content("#count-value")
    assert everyone.startswith("~"), "without a project, counts are noisy and shown as such"
    assert "Bruité" in page.text_content("#release-mode")
    assert "budget restant" in page.text_content("#release-facts")
    screenshot(page, "10-feasibility-fr")

    page.click("#language-switch")
    wait_until(page, "() => document.documentElement.lang === 'en'")
    assert page.locator("h1").text_content() == "Feasibility — quick mode"
    page.reload()
    wait_until(page, "() => document.documentElement.lang === 'en'")  # remembered across loads
    after_reload = wait_for_count(page, 0)
    assert page.locator("h1").text_content() == "Feasibility — quick mode"
    assert page.text_content("#count-value") == everyone, "the same query gets the same stored release"
    del first

    cells_before = breakdown_cells(page)
    page.select_option("#feasibility-add", "sex")
    started = time.perf_counter()
    page.check("[data-variable=sex] input[data-value=female]")
    second = wait_for_count(page, after_reload)
    TIMINGS["filter_to_count_ms (debounce included)"] = round((time.perf_counter() - started) * 1000)
    women = page.text_content("#count-value")
    page.select_option("#feasibility-add", "age_at_diagnosis")
    page.fill("[data-variable=age_at_diagnosis] input[data-bound=min]", "60")
    wait_for_count(page, second)
    older_women = page.text_content("#count-value")
    assert len({everyone, women, older_women}) == 3, (everyone, women, older_women)
    assert breakdown_cells(page) != cells_before, "the breakdown follows the filters"
    screenshot(page, "11-feasibility-two-filters-en")

    # An approved project's member sees exact counts of the same filters.
    page.select_option("#feasibility-project", str(browsing.site.project_id))
    wait_until(page, "() => document.getElementById('release-mode')?.textContent === 'Exact'")
    assert not page.text_content("#count-value").startswith("~")
    page.select_option("#feasibility-by", "sex")
    wait_until(page, "() => document.getElementById('breakdown-chart').dataset.variable === 'sex'")
    screenshot(page, "12-feasibility-exact-by-sex")


def test_account_shows_roles_projects_and_budget(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    browsing.sign_in("researcher")
    page = browsing.page
    page.wait_for_selector(".cards .card")
    summaries = [text.strip() for text in page.locator(".cards .card p").all_text_contents()]
    # each card's summary comes from its domain's messages, never a bare message key
    assert summaries and all(summaries) and not [s for s in summaries if s.startswith("page.")], summaries
    screenshot(page, "20-home")
    page.click("nav a[data-page='portal.account']")
    page.wait_for_selector("#budget-meter")
    assert page.text_content("#account-roles") == "chercheur"
    assert page.locator("#projects-table tbody tr").filter(has_text="Démo").count() == 1  # other tests add projects
    assert float(page.get_attribute("#budget-meter", "max")) > 0
    screenshot(page, "21-account")
    page.click("#sign-out")
    page.wait_for_url("**/portal/signin")
    page.goto("/portal/account")
    page.wait_for_url("**/portal/signin"), "signed out: the session is gone"


def test_clinician_sees_the_pages_of_their_roles(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    browsing.sign_in("clinician")
    page = browsing.page
    links = page.locator("nav a").all_text_contents()
    assert links[:3] == ["Accueil", "Mon compte", "Faisabilité"], links
    assert "Parcours patient" in links and not {"Piste d'audit", "Demandes d'accès"} & set(links), links
    assert {"Cohortes", "Tableau de bord"} <= set(links), links  # counts a clinician may ask (noisy)
    page.click("nav a[data-page='portal.account']")
    page.wait_for_selector("#budget-meter")
    assert "chu_nord" in page.text_content("main")
    screenshot(page, "22-account-clinician")


def test_a_post_without_the_csrf_token_is_refused(browsing: Browsing) -> None:
    browsing.watch.expect(r"HTTP 403: POST .*/api/v1/mart/count")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    browsing.sign_in("researcher")
    call = """async (withToken) => {
        const token = document.cookie.split('; ').find(c => c.startsWith('massalia_csrf='))?.split('=')[1];
        const headers = {'Content-Type': 'application/json'};
        if (withToken) headers['X-CSRF-Token'] = token;
        const r = await fetch('/api/v1/mart/count', {method: 'POST', credentials: 'same-origin', headers,
                                                     body: JSON.stringify({filters: {}})});
        return {status: r.status, body: await r.json()};
    }"""
    refused = browsing.page.evaluate(call, False)
    assert refused["status"] == 403 and refused["body"]["error"]["code"] == "csrf_failed"
    allowed = browsing.page.evaluate(call, True)
    assert allowed["status"] == 200, allowed


def test_csp_is_strict_and_no_inline_script_runs(browsing: Browsing) -> None:
    browsing.watch.expect(r"console error: .*Content Security Policy")
    page = browsing.page
    response = page.goto("/portal/signin")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    html = response.text()
    scripts = page.locator("script").evaluate_all("s => s.map(e => [e.type, e.src, e.textContent.length])")
    assert all(src or kind == "application/json" for kind, src, _ in scripts), scripts
    assert " style=" not in html and "<style" not in html and "onclick=" not in html
    page.wait_for_selector("#signin-form")
    ran = page.evaluate("""() => {
        window.injected = false;
        const s = document.createElement('script');
        s.textContent = 'window.injected = true';
        document.head.append(s);
        return window.injected;
    }""")
    assert ran is False, "an inline script must be refused by the content security policy"
    static = page.request.get("/static/js/app.js")
    assert static.headers["content-security-policy"] == csp and static.headers["x-content-type-options"] == "nosniff"


def test_unbuilt_mart_says_how_to_build_it(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    """The API's 409 (mart not built) is shown with the command that builds it (the answer is the API's shape)."""
    browsing.watch.expect(r"HTTP 409: POST .*/api/v1/mart/count")
    browsing.watch.expect(r"console error: Failed to load resource: .* 409")
    browsing.sign_in("researcher")
    page = browsing.page
    body = {"error": {"code": "conflict", "message": "The research mart is not available: mart_patient does not exist",
                      "details": [], "request_id": "test"}}  # fmt: skip
    page.route("**/api/v1/mart/count", lambda route: route.fulfill(status=409, json=body))
    page.goto("/portal/health/feasibility")
    alert = page.locator("#count-body [role=alert]")
    alert.wait_for()
    assert "massalia mart build" in alert.text_content()
    screenshot(page, "13-feasibility-unbuilt-mart")


def test_unknown_page_is_a_404_with_the_shell(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    browsing.watch.expect(r"HTTP 404: GET .*/portal/nowhere")
    browsing.watch.expect(r"console error: Failed to load resource: .* 404")
    browsing.sign_in("dpo")
    response = browsing.page.goto("/portal/nowhere")
    assert response.status == 404
    browsing.page.wait_for_selector("text=Page introuvable")
    screenshot(browsing.page, "30-not-found")


def test_timings(browsing: Browsing) -> None:
    """First page load and live count refresh times at this size, written to the artifacts (timings.json)."""
    browsing.sign_in("researcher")
    page = browsing.page
    started = time.perf_counter()
    page.goto("/portal/health/feasibility")
    sequence = wait_for_count(page, 0)
    TIMINGS["feasibility_first_count_ms"] = round((time.perf_counter() - started) * 1000)
    navigation = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
    TIMINGS["feasibility_load_event_ms"] = round(navigation["loadEventEnd"])
    page.select_option("#feasibility-project", str(browsing.site.project_id))
    sequence = wait_for_count(page, sequence)
    page.select_option("#feasibility-add", "age_at_diagnosis")
    refreshes = []
    for age in ("40", "50", "60", "70"):
        page.fill("[data-variable=age_at_diagnosis] input[data-bound=min]", age)
        sequence = wait_for_count(page, sequence)
        refreshes.append(float(page.text_content("#count-timing").split()[-2]))
    TIMINGS["count_refresh_ms (request to display, median)"] = sorted(refreshes)[len(refreshes) // 2]
    started = time.perf_counter()
    page.goto("/portal/account")
    page.wait_for_selector("#budget-meter")
    TIMINGS["account_page_ms"] = round((time.perf_counter() - started) * 1000)
    (artifacts_dir() / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n", encoding="utf-8")
    assert TIMINGS["feasibility_first_count_ms"] < 5_000


def test_a_second_visit_loads_every_asset_from_the_cache(browsing: Browsing) -> None:
    """Issue 12: the shell links the assets under the build hash, kept for good (``immutable``). A second screen
    asks the server for no script, style or catalogue, and nothing is loaded from the plain, revalidated
    ``/static/...`` (an absolute import there would be a second copy of a core module)."""
    browsing.sign_in("researcher")
    page = browsing.page
    page.goto("/portal/health/feasibility", wait_until="networkidle")
    page.goto("/portal/health/timeline", wait_until="networkidle")
    page.goto("/portal/health/feasibility", wait_until="networkidle")
    entries = page.evaluate(
        "() => performance.getEntriesByType('resource').filter(e => e.name.includes('/static/'))"
        ".map(e => [new URL(e.name).pathname, e.transferSize])"
    )
    assert len(entries) >= 8, entries
    assert all(path.startswith("/static/v/") for path, _ in entries), entries
    fetched = [path for path, size in entries if size > 0]
    assert not fetched, f"assets asked of the server again: {fetched}"
