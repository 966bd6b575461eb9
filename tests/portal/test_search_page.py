"""The document search page in Chromium: a clinician's own-site hits with highlighted snippets and facets, a
researcher's protected count, and a note whose text is an XSS attempt shown as text (the attack fails)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal_browser import HOSTILE_TEXT, Browsing
from test_accessibility import audit


def test_clinician_searches_their_sites_notes(browsing: Browsing, screenshot: Callable[[Any, str], Path]) -> None:
    page = browsing.page
    browsing.sign_in("clinician")
    page.goto("/portal/health/search")
    page.wait_for_selector("#search-form")
    page.fill("#search-q", '"tumeur maligne"')
    page.click("#search-submit")
    page.wait_for_selector("#search-hits")
    marks = [m.lower() for m in page.locator("#search-hits mark").all_text_contents()]
    assert marks and set(marks) <= {"tumeur", "maligne"}, marks
    sites = page.locator("#search-facets [data-facet=site]").all_text_contents()
    assert sites == ["chu_nord"], sites
    assert "page 1" in page.locator("#search-total").text_content()
    screenshot(page, "60-document-search")


def test_attack_a_hostile_note_is_shown_as_text(browsing: Browsing) -> None:
    page = browsing.page
    browsing.sign_in("clinician")
    page.goto("/portal/health/search")
    page.wait_for_selector("#search-form")
    page.fill("#search-q", "zygomycose")
    page.click("#search-submit")
    page.wait_for_selector("#search-hits mark")
    shown = page.locator("#search-hits .snippet").first.text_content()
    assert "<img" in shown and "<b>gras</b>" in shown and HOSTILE_TEXT.startswith(shown[: len("Zygomycose")])
    assert page.locator("#search-hits img, #search-hits b").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None


def test_researcher_without_project_gets_a_protected_count(browsing: Browsing) -> None:
    page = browsing.page
    browsing.sign_in("researcher")
    page.goto("/portal/health/search")
    page.wait_for_selector("#search-form")
    page.fill("#search-q", "sein")
    page.click("#search-submit")
    total = page.locator("#search-total")
    total.wait_for()
    assert page.locator("#search-hits").count() == 0 and page.locator("#search-facets").count() == 0
    assert "Patients ayant un document correspondant" in total.text_content()  # a count, never a hit


def test_the_page_with_results_has_no_serious_accessibility_violation(browsing: Browsing, axe_source: str) -> None:
    page = browsing.page
    browsing.sign_in("clinician")
    page.goto("/portal/health/search")
    page.wait_for_selector("#search-form")
    page.fill("#search-q", "sein")
    page.click("#search-submit")
    page.wait_for_selector("#search-hits")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
