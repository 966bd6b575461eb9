"""The safety pages in Chromium: search (an operator's snippets, a partner's noisy count), the dashboard with its
offline map, heat layer and a timeline whose brush refilters the map; axe checks; screenshots."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, Site, wait_until
from test_accessibility import audit

from massalia.governance import Caller, Role, operator_principal
from massalia.pipelines import LineageStore
from massalia.safety import notify, search, views
from massalia.safety.log import load_delivery
from massalia.safety.synth.generator import GeneratorConfig, generate

SAFETY_ACCOUNTS = {
    "safety_operator": Role.SAFETY_OPERATOR,
    "safety_analyst": Role.SAFETY_ANALYST,
    "partner": Role.PARTNER,
}


@pytest.fixture(scope="module")
def safety_site(portal_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The portal's home with a small incident log, its search index, and an operator and a partner account."""
    logs = generate(
        tmp_path_factory.mktemp("portal-safety-logs"), GeneratorConfig(events=1500, seed=5, max_documents=40)
    )
    keeper = portal_site.app.state.massalia.warehouses
    gov = portal_site.app.state.massalia.governance
    engine = keeper.connect()
    try:
        lineage = tmp_path_factory.mktemp("portal-safety-lineage") / "lineage.sqlite"
        load_delivery(engine, logs.root, LineageStore(f"sqlite:///{lineage.as_posix()}"))
        search.index_reports(Caller(operator_principal(), gov, "test"), engine, portal_site.home.indexes, rebuild=True)
    finally:
        keeper.release(engine)
    for role, value in SAFETY_ACCOUNTS.items():
        if role in portal_site.accounts:
            continue
        password = secrets.token_urlsafe(15)
        username = f"{role.replace('_', '.')}.portal"
        gov.create_user(username, password, roles=[value], actor=operator_principal())
        portal_site.accounts[role] = (username, password)
    return portal_site


def test_safety_operator_searches_narratives_and_attachments(
    browsing: Browsing, safety_site: Site, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/search")
    page.wait_for_selector("#safety-search-form")
    page.fill("#safety-q", "audition")
    page.click("#safety-submit")
    page.wait_for_selector("#safety-hits")
    marks = {m.lower() for m in page.locator("#safety-hits mark").all_text_contents()}
    assert marks == {"audition"}, marks
    kinds = set(page.locator("#safety-facets [data-facet=document_kind]").all_text_contents())
    assert kinds == {"pdf", "docx", "odt", "eml"}, kinds
    zone = page.locator("#safety-facets [data-facet=zone]").first
    chosen = zone.text_content()
    zone.click()
    cells = "[...document.querySelectorAll('#safety-hits tbody td:nth-child(2)')]"
    wait_until(page, f"(z) => {cells}.every((td) => td.textContent === z)", chosen)
    screenshot(page, "80-safety-search")


def test_an_operator_saves_a_search_and_sees_its_new_matches_as_a_badge(browsing: Browsing, safety_site: Site) -> None:
    page = browsing.page
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/search")
    page.wait_for_selector("#safety-save-form")
    page.fill("#safety-q", "vol")
    page.click("#safety-submit")
    page.wait_for_selector("#safety-hits")
    page.fill("#safety-save-name", "Vols, badge")
    page.click("#safety-save")
    page.locator("#safety-saved li", has_text="Vols, badge").wait_for()
    # What is indexed when a search is saved is not new for it: as if it had been saved before these reports,
    # the next index run (here its notification step) finds them and notifies its owner.
    keeper = safety_site.app.state.massalia.warehouses
    engine = keeper.connect()
    try:
        engine.execute(f"UPDATE {views.SEARCHES} SET checked_up_to = 0 WHERE name = 'Vols, badge'")
        summary = notify.notify_new_matches(safety_site.app.state.massalia.governance, engine, safety_site.home.indexes)
    finally:
        keeper.release(engine)
    assert summary["notified"] == 1
    page.reload()
    page.wait_for_selector("#safety-unread")
    badge = page.locator("#safety-saved li", has_text="Vols, badge").locator(".badge")
    assert badge.get_attribute("data-unread") == "1"
    page.locator("#safety-saved li", has_text="Vols, badge").locator("[data-read]").click()
    wait_until(page, "() => document.querySelector('#safety-unread') === null")


def test_attack_a_partner_gets_a_noisy_count_in_the_search_page(browsing: Browsing, safety_site: Site) -> None:
    page = browsing.page
    browsing.sign_in("partner")
    page.goto("/portal/safety/search")
    page.wait_for_selector("#safety-search-form")
    page.fill("#safety-q", "audition")
    page.click("#safety-submit")
    total = page.locator("#safety-total")
    total.wait_for()
    assert page.locator("#safety-hits").count() == 0 and page.locator("#safety-facets").count() == 0
    assert "Incidents correspondants" in (total.text_content() or "")
    assert page.locator("mark").count() == 0


def test_dashboard_offline_map_heat_layer_and_timeline_brushing(
    browsing: Browsing, safety_site: Site, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/dashboard")
    page.wait_for_selector("#safety-stats tbody tr")
    page.wait_for_selector("#safety-map .background polygon.district")
    assert page.locator("#safety-map .district").count() == 16
    assert page.locator("#safety-stats tbody tr").count() == 16, "one row per zone, with rate and comparisons"
    status = page.locator("#safety-map-status")
    whole = int(status.get_attribute("data-total") or 0)
    assert whole > 0 and page.locator("#safety-map rect.cell").count() > 0
    # Brush a summer month on the timeline: the map asks again with that period and shows fewer incidents.
    page.locator("#safety-timeline").scroll_into_view_if_needed()
    box = page.locator("#safety-timeline").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=4)
    page.mouse.up()
    fewer = "(before) => Number(document.querySelector('#safety-map-status')?.dataset.total ?? before) < before"
    wait_until(page, fewer, whole)
    brushed = [u for u in requests if "/api/v1/safety/map" in u and "start=2025-0" in u]
    assert brushed, "the map was asked again with the brushed period"
    assert "sélection de la frise" in (status.text_content() or "")
    # Every request stayed on this server: no tile server, no CDN.
    assert all(u.startswith(safety_site.url) for u in requests), [
        u for u in requests if not u.startswith(safety_site.url)
    ]
    page.select_option("#safety-d-layer", "heat")
    page.click("#safety-apply")
    page.wait_for_selector("#safety-map circle.heat")
    screenshot(page, "81-safety-dashboard")


def test_a_partner_dashboard_shows_released_counts(browsing: Browsing, safety_site: Site) -> None:
    page = browsing.page
    browsing.sign_in("partner")
    page.goto("/portal/safety/dashboard")
    page.wait_for_selector("#safety-stats tbody tr")
    assert "bruités" in (page.locator("#safety-release").text_content() or "")
    counts = page.locator("#safety-stats tbody td:nth-child(2)").all_text_contents()
    assert all(c.startswith("<") or int(c.replace("\u202f", "").replace(" ", "")) % 5 == 0 for c in counts), counts


def test_the_safety_pages_have_no_serious_accessibility_violation(browsing: Browsing, safety_site: Site,
                                                                 axe_source: str) -> None:  # fmt: skip
    page = browsing.page
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/dashboard")
    page.wait_for_selector("#safety-map .district")
    page.wait_for_selector("#safety-timeline rect")
    assert audit(page, axe_source) == [], "safety dashboard"
    page.goto("/portal/safety/search")
    page.wait_for_selector("#safety-search-form")
    page.fill("#safety-q", "vol")
    page.click("#safety-submit")
    page.wait_for_selector("#safety-hits")
    assert audit(page, axe_source) == [], "safety search"


def test_an_operator_saves_a_view_and_opens_it_again(browsing: Browsing, safety_site: Site) -> None:
    page = browsing.page
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/dashboard")
    page.wait_for_selector("#safety-view-form")
    page.wait_for_selector("#safety-stats tbody tr")
    page.select_option("#safety-d-zone", "D03")
    page.select_option("#safety-d-by", "family")
    page.click("#safety-apply")
    wait_until(page, "() => document.querySelector('#safety-d-by').value === 'family' && "
               "document.querySelector('#safety-map-status') !== null")  # fmt: skip
    page.fill("#safety-view-name", "Centre, par famille")
    page.check("#safety-view-share")
    page.click("#safety-view-save")
    button = page.locator("#safety-views [data-view]", has_text="Centre, par famille")
    button.wait_for()
    page.select_option("#safety-d-zone", "")
    page.select_option("#safety-d-by", "zone")
    page.click("#safety-apply")
    wait_until(page, "() => document.querySelectorAll('#safety-stats tbody tr').length === 16")
    button.click()
    wait_until(page, "() => document.querySelector('#safety-d-zone').value === 'D03'")
    wait_until(page, "() => document.querySelectorAll('#safety-stats tbody tr').length < 16")
    assert page.locator("#safety-d-by").input_value() == "family"


def _open_merged_incident(page: Any) -> str:
    """Open the list, then an incident that merges reports of several sources (sorted by source, server-side)."""
    page.goto("/portal/safety/incidents")
    page.wait_for_selector("#safety-incidents tbody tr")
    merged = page.locator("#safety-incidents tbody tr", has_text=",").first
    for _ in range(20):
        if merged.count():
            break
        page.click("#safety-incidents-next")
        page.wait_for_selector("#safety-incidents tbody tr")
        merged = page.locator("#safety-incidents tbody tr", has_text=",").first
    assert merged.count(), "an incident merging several sources within 20 pages"
    number = merged.get_attribute("data-incident") or ""
    merged.locator("[data-open]").click()
    page.wait_for_selector("#safety-reports tbody tr")
    return number


def test_incident_list_sorts_pages_and_opens_a_record_with_history_and_merged_sources(
    browsing: Browsing, safety_site: Site, screenshot: Callable[[Any, str], Path], axe_source: str
) -> None:
    page = browsing.page
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/incidents")
    page.wait_for_selector("#safety-incidents tbody tr")
    assert page.locator("#safety-incidents tbody tr").count() == 25, "a page of 25"
    first_page = page.locator("#safety-incidents tbody tr").first.get_attribute("data-incident")
    page.click("#safety-incidents-next")
    wait_until(page, "(f) => document.querySelector('#safety-incidents tbody tr')?.dataset.incident !== f", first_page)
    assert "26" in (page.locator("#safety-incidents-total").text_content() or "")
    # Sort by zone on the server: every page comes sorted, not just the rows shown.
    page.click("[data-sort=zone]")
    wait_until(page, "() => document.querySelector('th[aria-sort=ascending] [data-sort=zone]') !== null")
    zones = page.locator("#safety-incidents tbody td:nth-child(3)").all_text_contents()
    assert zones == sorted(zones) and zones[0] == "D01", zones
    page.select_option("#safety-i-zone", "D03")
    page.click("#safety-i-apply")
    wait_until(page, "() => [...document.querySelectorAll('#safety-incidents tbody td:nth-child(3)')]"
               ".every((td) => td.textContent === 'D03')")  # fmt: skip
    page.select_option("#safety-i-zone", "")
    page.click("#safety-i-apply")
    page.click("[data-sort=source]")
    page.wait_for_selector("th[aria-sort=ascending] [data-sort=source]")
    number = _open_merged_incident(page)
    assert f"{number}" in (page.locator("#safety-incident-title").text_content() or "")
    assert page.locator("#safety-reports tbody tr").count() >= 2, "reports of several sources"
    assert page.locator("#safety-links li").count() >= 1
    joined = page.locator("#safety-links li:not([data-rule=new_incident])").first.text_content() or ""
    assert "règle" in joined and "écart" in joined, f"the dedup rule explained: {joined}"
    assert page.locator("#safety-links li[data-rule=new_incident]").count() >= 1, "the report that opened it"
    assert page.locator("#safety-reports td.narrative").count() == 0, "no narrative before it is asked for"
    page.click("#safety-show-narrative")
    page.wait_for_selector("#safety-reports td.narrative")
    page.click("#safety-show-parties")
    page.wait_for_selector("#safety-reports td.parties")
    assert audit(page, axe_source) == [], "safety incidents"
    screenshot(page, "82-safety-incident")


def test_attack_an_analyst_asking_for_narratives_or_parties_is_shown_the_refusal(
    browsing: Browsing, safety_site: Site
) -> None:
    page = browsing.page
    browsing.watch.expect(r"HTTP 403: GET .*/api/v1/safety/incidents/\d+\?include=(narrative|parties)")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    browsing.sign_in("safety_analyst")
    _open_merged_incident(page)
    page.click("#safety-show-narrative")
    page.wait_for_selector("[data-refused=narrative]")
    page.click("#safety-show-parties")
    page.wait_for_selector("[data-refused=parties]")
    assert page.locator("#safety-reports td.narrative, #safety-reports td.parties").count() == 0


def test_attack_a_partner_lists_no_incident_in_the_page(browsing: Browsing, safety_site: Site) -> None:
    page = browsing.page
    browsing.watch.expect(r"HTTP 403: GET .*/api/v1/safety/incidents\?")
    browsing.watch.expect(r"console error: Failed to load resource: .* 403")
    browsing.sign_in("partner")
    page.goto("/portal/safety/incidents")
    page.wait_for_load_state("networkidle")
    assert page.locator("#safety-incidents tbody tr").count() == 0, "a partner lists no incident"
    assert page.locator("[data-open]").count() == 0
    assert page.locator("#safety-incidents-list [role=alert]").count() == 1, "refusal shown"
