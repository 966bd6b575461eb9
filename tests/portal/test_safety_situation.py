"""The live situation page in Chromium: an alarm appears after an ingest, without a reload, and is acknowledged.

Events are posted to the served API as a safety operator's feed would (bearer token); the page, open in the
browser, receives the alarm through its server-sent events stream. A partner opening the page gets a refusal.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, wait_until

from massalia.governance import Role, operator_principal

PASSWORD = "situation correct horse battery"  # noqa: S105 - a test account of a throwaway home
CITY_TZ = dt.timezone(dt.timedelta(hours=1))


def _account(browsing: Browsing, role: Role) -> str:
    """A safety account on the served home (created once), signed in by its role's name."""
    site = browsing.site
    if role.value not in site.accounts:
        gov = site.app.state.massalia.governance
        name = f"{role.value.replace('_', '.')}.live"
        gov.create_user(name, PASSWORD, [role], actor=operator_principal())
        site.accounts[role.value] = (name, PASSWORD)
    return site.accounts[role.value][0]


def _post_events(browsing: Browsing, count: int, tag: str) -> list[dict[str, Any]]:
    gov = browsing.site.app.state.massalia.governance
    name = _account(browsing, Role.SAFETY_OPERATOR)
    token = gov.create_token(name, None, dt.timedelta(hours=1), actor=operator_principal())
    answers = []
    start = dt.datetime.now(CITY_TZ).replace(microsecond=0) - dt.timedelta(minutes=30)
    for i in range(count):
        body = {"source": "csu", "message_id": f"{tag}-{i}", "source_id": f"{tag}-{i}",
                "occurred_at": (start + dt.timedelta(minutes=i)).isoformat(), "local_code": "ATP03",
                "lon": 5.37, "lat": 43.355, "narrative": "rixe sur la voie publique"}  # fmt: skip
        request = urllib.request.Request(  # noqa: S310 - the test's own http:// server
            f"{browsing.site.url}/api/v1/safety/live/csu/events", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's own http:// server
            answers.append(json.loads(response.read()))
    return answers


def test_safety_situation_alarm_appears_live_and_is_acknowledged(
    browsing: Browsing, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browsing.page
    _account(browsing, Role.SAFETY_OPERATOR)
    browsing.sign_in("safety_operator")
    page.goto("/portal/safety/situation")
    page.wait_for_selector("#situation-status:has-text('En direct')")
    before = page.locator("#situation-alarms tr[data-rule='rixes-secteur']").count()
    page.evaluate("window.__sameDocument = true")  # a reload would lose it
    answers = _post_events(browsing, 3, f"portal-{dt.datetime.now().timestamp():.0f}")
    assert any(a["alarms"] for a in answers), answers
    row = page.locator("#situation-alarms tr[data-rule='rixes-secteur'][data-status='open']")
    row.first.wait_for()
    assert page.evaluate("window.__sameDocument") is True, "the alarm arrived without a reload"
    assert page.locator("#situation-alarms tr[data-rule='rixes-secteur']").count() >= before
    alarm_id = row.first.get_attribute("data-alarm-id")
    screenshot(page, "70-safety-situation")
    page.click(f"#ack-{alarm_id}")
    wait_until(page, "(id) => document.querySelector(`tr[data-alarm-id='${id}']`)?.dataset.status === 'acknowledged'",
               alarm_id)  # fmt: skip
    assert "rixe sur la voie publique" not in page.locator("#situation-incidents").text_content()
    page.check("#situation-narratives")  # an operator may read narratives: asked for, audited, shown
    page.wait_for_selector("#situation-incidents .narrative:has-text('rixe sur la voie publique')")


@pytest.mark.parametrize("role", [Role.PARTNER])
def test_safety_situation_attack_a_partner_sees_nothing_live(browsing: Browsing, role: Role) -> None:
    page = browsing.page
    _account(browsing, role)
    browsing.watch.expect(r"HTTP 403: GET .*/safety/alarms")
    browsing.watch.expect(r"status of 403")  # the browser's own console line for the refused call
    browsing.sign_in(role.value)
    page.goto("/portal/safety/situation")
    page.wait_for_selector("#situation-alarms .error, #situation-alarms [role=alert]")
    assert page.locator("#situation-alarms-table").count() == 0 and page.locator("#situation-incidents li").count() == 0
