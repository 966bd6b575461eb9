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


# -- NLP findings: on the patient timeline and as a cohort criterion ------------------------------------------
FINDINGS = (
    # (lexical variant, term_modifiers, term_exists)
    ("HER2 positif", "label=biomarker;value=her2:positive;negated=false;hypothesis=false;family=false;history=false",
     "Y"),
    ("métastase hépatique", "label=metastasis;value=C78.7;negated=true;hypothesis=false;family=false;history=false",
     "N"),
    ("mutation BRCA1", "label=biomarker;value=brca:positive;negated=false;hypothesis=true;family=false;history=false",
     "N"),
)  # fmt: skip


def _timeline_person_with_findings(browsing: Browsing) -> int:
    """A chu_nord person whose first note gets three NOTE_NLP findings (affirmed, negated, hypothetical)."""
    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.nlp.pipeline import nlp_system

    with DuckDBEngine(browsing.site.home.warehouse) as engine:
        row = engine.query(
            "SELECT n.person_id, min(n.note_id) AS note_id FROM note n JOIN person p ON p.person_id = n.person_id "
            "JOIN care_site cs ON cs.care_site_id = p.care_site_id WHERE cs.care_site_source_value = 'chu_nord' "
            "GROUP BY n.person_id ORDER BY n.person_id LIMIT 1"
        ).to_pylist()[0]  # fmt: skip
        engine.execute("DELETE FROM note_nlp WHERE note_nlp_id BETWEEN 700000001 AND 700000003")
        for number, (words, modifiers, exists) in enumerate(FINDINGS, start=1):
            engine.execute(
                "INSERT INTO note_nlp (note_nlp_id, note_id, lexical_variant, \"offset\", nlp_system, nlp_date, "
                f"term_exists, term_temporal, term_modifiers) VALUES ({700_000_000 + number}, {row['note_id']}, "
                f"'{words}', '{number * 10}', '{nlp_system()}', DATE '2026-01-01', '{exists}', 'present', "
                f"'{modifiers}')"
            )  # fmt: skip
    return int(row["person_id"])


def test_the_timeline_shows_nlp_findings_with_their_qualifiers(
    browsing: Browsing, screenshot: Callable[[Any, str], Path]
) -> None:
    person = _timeline_person_with_findings(browsing)
    page = browsing.page
    browsing.sign_in("clinician")
    page.goto("/portal/health/timeline")
    page.fill("#timeline-person-input", str(person))
    page.fill("#timeline-purpose", "Préparation de la RCP du patient.")
    page.click("#timeline-open")
    page.wait_for_selector("#timeline-findings-table")
    rows = page.locator("#timeline-findings-table tbody tr")
    texts = rows.all_text_contents()
    assert len(texts) == 3, texts
    negated = next(t for t in texts if "métastase hépatique" in t)
    assert "nié" in negated and "hypothétique" in next(t for t in texts if "BRCA1" in t)
    assert "affirmé" in next(t for t in texts if "HER2 positif" in t)
    # negated and hypothetical findings are struck through and badged; the affirmed one is not
    assert page.locator("#timeline-findings-table s.finding-doubtful").count() == 2
    assert page.locator("#timeline-findings-table [data-qualifier=negated]").count() == 1
    screenshot(page, "55-timeline-findings")


def test_the_cohort_builder_adds_a_note_finding_with_qualifiers(browsing: Browsing) -> None:
    browsing.sign_in("researcher")
    page = browsing.page
    page.goto("/portal/health/cohorts")
    page.wait_for_selector("#cohort-editor #entry-kind")
    page.select_option("#entry-kind", "NoteFinding")
    page.click("#entry-kind-add")
    card = page.locator("#entry-list li[data-kind=NoteFinding]")
    card.wait_for()
    assert card.locator(".note-label").input_value() == "biomarker"
    assert card.locator(".note-value").input_value() == "her2:positive"
    assert card.locator(".note-negated").input_value() == "false"  # "the patient has it" by default
    card.locator(".note-history").select_option("true")
    card.locator(".note-family").select_option("")  # either
    page.click("#show-sql")
    page.wait_for_selector("#cohort-sql")
    sql = page.text_content("#cohort-sql")
    assert "note_nlp" in sql and "negated=false" in sql and "history=true" in sql and "family=" not in sql
