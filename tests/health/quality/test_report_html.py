"""The quality report reads well: no DQD placeholder left in a detail, and the failed-checks table fits the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from massalia.health.quality.definitions import check_descriptions, instantiate
from massalia.quality.html import render_html
from massalia.quality.report import CheckResult, QualityReport
from massalia.quality.runner import _describe

PAGE_WIDTH = 1400
"""The width the report was seen overflowing at."""


def _descriptions() -> list[object]:
    found = check_descriptions()
    return list(found.values()) if isinstance(found, dict) else list(found)


def test_no_detail_keeps_an_unsubstituted_placeholder() -> None:
    """Details said '… CONCEPT_ID 3013721 (@conceptName) …': DQD's names were dropped from the definitions."""
    left: dict[str, str] = {}
    for description in _descriptions():
        for instance in instantiate(description):  # type: ignore[arg-type]
            for placeholder in re.findall(r"@\w+", _describe(description.description, instance)):  # type: ignore[attr-defined]
                left.setdefault(placeholder, description.name)  # type: ignore[attr-defined]
    assert not left, f"placeholders left in check details: {left}"


def test_the_unit_check_names_its_concept() -> None:
    [description] = [d for d in _descriptions() if d.name == "plausibleUnitConceptIds"]  # type: ignore[attr-defined]
    [instance] = [i for i in instantiate(description) if i.concept_id == 3013721]  # type: ignore[arg-type]
    text = _describe(description.description, instance)  # type: ignore[attr-defined]
    assert "Aspartate aminotransferase" in text


def _failing(index: int) -> CheckResult:
    """A failed check with what made the table overflow: a long dotted target, a long detail and SQL."""
    return CheckResult(
        check_id=f"c{index}", check_name="plausibleUnitConceptIds", level="Concept", table="measurement",
        field="measurement_concept_id", concept_id=3013721 + index, unit_concept_id=None,
        category="Plausibility", subcategory="Atemporal", context="Verification", severity="characterization",
        description="UNIT_CONCEPT_ID NOT IN (8645,8923," + ",".join(str(8000 + i) for i in range(60)) + ")",
        num_violated_rows=6577, num_denominator_rows=6577, percent_violated=100.0, threshold=5.0,
        status="failed", sql="SELECT " + "+".join(f"very_long_column_name_{i}" for i in range(80)) + " FROM m",
    )  # fmt: skip


class _Layout(HTMLParser):
    """Which element holds the failed-checks table."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.table_parents: list[tuple[str, dict[str, str | None]]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and dict(attrs).get("id") == "failed":
            self.table_parents = list(self.stack)
        if tag not in ("meta", "input", "br", "img"):
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass


def _rules(css: str) -> dict[str, str]:
    return {selector.strip(): body for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)}


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(QualityReport([_failing(i) for i in range(3)], engine="duckdb"))


def test_the_failed_checks_table_scrolls_inside_the_page(page: str) -> None:
    """The failed-checks table overflowed the page at 1,400 px: it now scrolls in its own box."""
    layout = _Layout()
    layout.feed(page)
    assert layout.table_parents is not None
    classes = {(attrs.get("class") or "") for _, attrs in layout.table_parents}
    rules = _rules(re.search(r"<style>(.*?)</style>", page, re.S).group(1))  # type: ignore[union-attr]
    scrolling = [c for c in classes if c and "overflow-x:auto" in rules.get(f".{c}", "")]
    assert scrolling, f"no scrolling container around the failed-checks table (parents: {classes})"


def test_long_cells_and_sql_wrap_within_the_page(page: str) -> None:
    rules = _rules(re.search(r"<style>(.*?)</style>", page, re.S).group(1))  # type: ignore[union-attr]
    cells = rules.get("th,td", "")
    assert "overflow-wrap:anywhere" in cells, "a long dotted target or unit list cannot break"
    pre = rules.get("pre", "")
    assert "overflow-wrap:anywhere" in pre
    widths = [int(w) for w in re.findall(r"max-width:(\d+)px", pre)]
    assert all(w <= PAGE_WIDTH for w in widths) and "max-width:100%" in pre
