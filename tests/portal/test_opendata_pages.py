"""Open data's portal pages in Chromium: the public catalog (anonymous, facets and search), a dataset's page
(preview of the datastore rows, version history, a certified file verified in the browser, API examples), the
producers' publishing page, each resource's validity badge and validation report (French and English), and the
attacks: a producer publishing into another organization, a hostile title."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_browser import HOSTILE_TEXT, Browsing, Site, wait_until
from test_accessibility import audit

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, operator_principal
from massalia.opendata import datastore, demo
from massalia.opendata.catalog import Catalog, Upload

CSV = b"commune;puissance_kw;gratuit\nMarseille;22;true\nNice;50;false\nGap;7;true\n"


@pytest.fixture(scope="module")
def opendata_site(portal_site: Site) -> Iterator[Site]:
    """Two organizations (the researcher account edits ``region-sud`` only), a certified CSV in the datastore."""
    gov = portal_site.app.state.massalia.governance
    admin = Caller(operator_principal(), gov, "test")
    catalog = Catalog.for_home(portal_site.home)
    editor = portal_site.accounts["researcher"][0]
    if "region-sud" not in catalog.organization_list(admin):
        catalog.organization_create(admin, {"name": "region-sud", "title": "Région Sud",
                                            "users": [{"name": editor, "capacity": "editor"}]})  # fmt: skip
        catalog.organization_create(admin, {"name": "ville-nice", "title": "Ville de Nice"})
        catalog.group_create(admin, {"name": "mobilite", "title": "Mobilité"})
        catalog.package_create(admin, {"name": "bornes-recharge", "title": "Bornes de recharge (IRVE)",
                                       "owner_org": "region-sud", "tags": [{"name": "IRVE"}],
                                       "groups": [{"name": "mobilite"}], "notes": "Points de recharge."})  # fmt: skip
        made = catalog.resource_create(admin, {"package_id": "bornes-recharge", "name": "IRVE"},
                                       Upload("irve.csv", io.BytesIO(CSV)))  # fmt: skip
        with DuckDBEngine(portal_site.home.warehouse) as engine:
            datastore.load_file(admin, catalog, engine, made["id"])
        catalog.package_create(admin, {"name": "titre-hostile", "title": HOSTILE_TEXT, "owner_org": "ville-nice"})
    yield portal_site


def test_anonymous_searches_the_catalog_with_facets(
    browsing: Browsing, opendata_site: Site, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    page.goto("/portal/opendata/catalog")  # no sign-in: a public page
    page.wait_for_selector("#od-results li")
    assert page.url.endswith("/portal/opendata/catalog")
    page.fill("#od-q", "recharge")
    page.click("#od-submit")
    # the earlier list (every dataset) holds bornes-recharge too: wait for the search's own answer to replace it
    wait_until(page, "() => document.querySelectorAll('#od-results li').length === 1")
    assert page.locator("#od-results li[data-dataset=bornes-recharge]").count() == 1
    page.fill("#od-q", "")
    page.click("#od-submit")
    page.wait_for_selector("#od-results li[data-dataset=titre-hostile]")
    page.locator("#od-facets [data-facet=organization][data-value=ville-nice]").click()
    page.wait_for_selector("#od-facets [data-facet=organization][aria-pressed=true]")
    wait_until(page, "() => document.querySelectorAll('#od-results li').length === 1")
    assert page.locator("#od-results li[data-dataset=titre-hostile]").count() == 1
    # The hostile title is shown as text, never as markup.
    assert "<img" in page.locator("#od-results li h3").text_content()
    assert page.locator("#od-results img").count() == 0 and page.evaluate("document.body.dataset.pwned") is None
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    screenshot(page, "70-opendata-catalog")


def test_anonymous_opens_a_dataset_previews_it_and_verifies_its_file(
    browsing: Browsing, opendata_site: Site, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    page.goto("/portal/opendata/dataset?name=bornes-recharge")
    page.wait_for_selector("#od-resource-table")
    preview = page.locator("table[id^=od-preview-] tbody tr")
    assert preview.count() == 3 and "Marseille" in preview.first.text_content()
    assert page.locator("#od-versions tbody tr").count() == 2  # created, then the upload
    examples = page.locator("#od-examples").text_content()
    assert "ckanapi action package_show id=bornes-recharge" in examples and "massalia verify" in examples
    page.locator("button.verify").first.click()
    outcome = page.locator("[data-outcome]")
    outcome.wait_for()
    assert outcome.get_attribute("data-outcome") == "verified", page.locator(".verify-result").text_content()
    ticks = page.locator(".verify-result li").all_text_contents()
    assert [t[0] for t in ticks] == ["✓"] * 5, ticks  # hash, leaf, inclusion, key, Ed25519 signature (WebCrypto)
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    screenshot(page, "71-opendata-dataset-verified")


def test_a_producer_publishes_a_file_that_verifies(
    browsing: Browsing, opendata_site: Site, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    browsing.sign_in("researcher")
    page.goto("/portal/opendata/publish")
    page.wait_for_selector("#od-publish-form")
    page.select_option("#od-org", "region-sud")
    page.fill("#od-name", "parkings-velo")
    page.fill("#od-title", "Parkings vélo")
    page.set_input_files("#od-file", {"name": "velos.csv", "mimeType": "text/csv", "buffer": b"id;places\n1;12\n"})
    page.click("#od-publish-submit")
    page.wait_for_selector("[data-outcome=published]")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    screenshot(page, "72-opendata-published")
    page.click("#od-published-link")
    page.wait_for_selector("button.verify")
    page.locator("button.verify").click()
    page.wait_for_selector("[data-outcome]")
    assert page.locator("[data-outcome]").get_attribute("data-outcome") == "verified"


def test_attack_a_producer_cannot_publish_into_another_organization(browsing: Browsing, opendata_site: Site) -> None:
    page = browsing.page
    browsing.watch.expect(r"HTTP 403: POST .*package_create")
    browsing.watch.expect(r"console error: Failed to load resource: the server responded with a status of 403")
    browsing.sign_in("researcher")
    page.goto("/portal/opendata/publish")
    page.wait_for_selector("#od-publish-form")
    page.select_option("#od-org", "ville-nice")
    page.fill("#od-name", "intrusion-nice")
    page.fill("#od-title", "Intrusion")
    page.set_input_files("#od-file", {"name": "x.csv", "mimeType": "text/csv", "buffer": b"a\n1\n"})
    page.click("#od-publish-submit")
    page.wait_for_selector("#od-publish-result [role=alert]")
    assert page.locator("[data-outcome=published]").count() == 0
    admin = Caller(operator_principal(), opendata_site.app.state.massalia.governance, "test")
    assert "intrusion-nice" not in Catalog.for_home(opendata_site.home).package_list(admin)


def test_the_catalog_speaks_english(browsing: Browsing, opendata_site: Site) -> None:
    page = browsing.page
    page.goto("/portal/opendata/catalog")
    page.wait_for_selector("#od-results li")
    assert page.locator("h1").text_content() == "Données ouvertes"
    page.click("#language-switch")
    page.locator("h1", has_text="Open data").wait_for()
    assert "dataset(s)" in page.locator("#od-count").text_content()


def test_attack_a_file_altered_on_the_server_fails_the_browser_check(browsing: Browsing, opendata_site: Site) -> None:
    """Someone with access to the server's files swaps a published file: the page's check says so, at the hash."""
    admin = Caller(operator_principal(), opendata_site.app.state.massalia.governance, "test")
    catalog = Catalog.for_home(opendata_site.home)
    catalog.package_create(admin, {"name": "fichier-altere", "owner_org": "region-sud"})
    made = catalog.resource_create(admin, {"package_id": "fichier-altere", "name": "data"},
                                   Upload("data.csv", io.BytesIO(b"a;b\n1;2\n")))  # fmt: skip
    stored = catalog.file_path(made["hash"].removeprefix("sha256:"))
    stored.chmod(0o600)
    stored.write_bytes(b"a;b\n1;3\n")  # one byte changed behind the catalog's back
    page = browsing.page
    page.goto("/portal/opendata/dataset?name=fichier-altere")
    page.locator("button.verify").click()
    outcome = page.locator("[data-outcome]")
    outcome.wait_for()
    assert outcome.get_attribute("data-outcome") == "failed"
    assert page.locator(".verify-result li[data-step=hash]").text_content().startswith("✗")


def test_a_dataset_page_shows_each_resource_badge_and_validation_report_in_both_languages(
    browsing: Browsing, opendata_site: Site, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """A valid IRVE file, an invalid SCDL export and a file without schema: each badge loads from the badge route
    and says its state in its text alternative; the invalid report lists its errors by row and field."""
    admin = Caller(operator_principal(), opendata_site.app.state.massalia.governance, "test")
    catalog = Catalog.for_home(opendata_site.home)
    if "bornes-validees" not in catalog.package_list(admin):
        catalog.package_create(
            admin, {"name": "bornes-validees", "title": "Bornes validées", "owner_org": "region-sud"}
        )
        for name, content, schema in (
            ("irve.csv", demo.irve_sample(6), demo.IRVE_SCHEMA),
            ("subventions.csv", demo.scdl_subsidies_raw_export(3), demo.SUBSIDIES_SCHEMA),
            ("notes.csv", b"a;b\n1;2\n", None),
        ):
            catalog.resource_create(admin, {"package_id": "bornes-validees", "name": name, "format": "CSV",
                                            **({"schema": schema} if schema else {})},
                                    Upload(name, io.BytesIO(content)))  # fmt: skip
    resources = {r["name"]: r["id"] for r in catalog.package_show(admin, "bornes-validees")["resources"]}
    page = browsing.page
    page.goto("/portal/opendata/dataset?name=bornes-validees")
    page.wait_for_selector("#od-validity")
    badges = page.locator("#od-resource-table img.badge")
    assert [badges.nth(i).get_attribute("data-badge") for i in range(3)] == ["valid", "invalid", "no-schema"]
    # Each image really came from the badge route (a failed request would fail the test through the page watch).
    wait_until(page, "() => [...document.querySelectorAll('img.badge')].every((i) => i.complete && i.naturalWidth > 0)")
    assert badges.nth(1).get_attribute("alt") == "Validité : invalide (6 erreurs)"
    assert f"/resource/{resources['irve.csv']}/badge.svg?lang=fr" in str(badges.first.get_attribute("src"))
    valid = page.locator(f"#od-validation-{resources['irve.csv']}")
    assert valid.get_attribute("data-status") == "success"
    assert "Valide selon etalab/schema-irve-statique@2.3.0 : 6 lignes lues, aucune erreur." in valid.text_content()
    invalid = page.locator(f"#od-validation-{resources['subventions.csv']}")
    assert invalid.get_attribute("data-status") == "failure"
    assert "6 erreur(s) dans 3 lignes lues" in invalid.text_content()
    errors = invalid.locator("tbody tr")
    assert errors.count() == 6
    cells = [errors.nth(i).locator("td").all_text_contents()[:3] for i in range(2)]
    assert cells == [["2", "montant", "type-error"], ["2", "notificationUE", "type-error"]]
    assert page.locator(f"#od-validation-{resources['notes.csv']}").count() == 0  # no schema, no report
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    screenshot(page, "73-opendata-validation")
    page.click("#language-switch")
    page.locator("#od-validity", has_text="Validation against the declared schemas").wait_for()
    badges = page.locator("#od-resource-table img.badge")
    assert badges.nth(1).get_attribute("alt") == "Validity: invalid (6 errors)"
    assert "badge.svg?lang=en" in str(badges.first.get_attribute("src"))
    assert (
        "Invalid against scdl/subventions@2.1.1: 6 error(s) in 3 rows read."
        in page.locator(f"#od-validation-{resources['subventions.csv']}").text_content()
    )
