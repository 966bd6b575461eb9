"""Accessibility: axe-core (npm, run inside each page) finds no serious or critical WCAG 2.1 A/AA violation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing

pytestmark = pytest.mark.browser

RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def audit(page: Any, axe_source: str) -> list[str]:
    """Serious and critical violations of the page as it stands (axe is injected through DevTools, not a tag)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source + "\n;undefined")
    result = page.evaluate("options => axe.run(document, options)", RULES)
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    ("role", "path", "ready", "name"),
    [
        (None, "/portal/signin", "#signin-form", "signin"),
        ("researcher", "/", ".cards", "home"),
        ("researcher", "/portal/account", "#budget-meter", "account"),
        ("researcher", "/portal/health/feasibility", "#breakdown-chart canvas", "feasibility"),
    ],
)
def test_no_serious_accessibility_violation(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path],
    role: str | None, path: str, ready: str, name: str,
) -> None:  # fmt: skip
    if role is not None:
        browsing.sign_in(role)
    page = browsing.page
    page.goto(path)
    page.wait_for_selector(ready)
    if name == "feasibility":  # with a filter row of each kind shown
        page.select_option("#feasibility-add", "sex")
        page.select_option("#feasibility-add", "age_at_diagnosis")
        page.click("details.catalogue summary")
    violations = audit(page, axe_source)
    screenshot(page, f"40-axe-{name}")
    assert not violations, "\n".join(violations)
