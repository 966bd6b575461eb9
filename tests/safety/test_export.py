"""CAP 1.2 exports of alarms are valid CAP: a schema of the standard, message ids, times and references.

A partner's CAD or a national aggregator rejects a message whose date-time carries ``+00:00`` for UTC (CAP wants
``-00:00``), whose identifier repeats across updates, or whose Update or Cancel does not reference what it
updates; the schema (``cap-1.2.xsd`` beside this file, written from the standard's data dictionary) rejects
the structural errors, the tests below the rules a schema cannot say.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from massalia.safety.alarms.state import Alarm
from massalia.safety.export import SENDER, cap_xml

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("cap-1.2.xsd"))))
OPENED = dt.datetime(2026, 3, 14, 21, 5, 9)
FOUND_TERM = "Dupontel"


def _alarm(**changes: object) -> Alarm:
    base = Alarm(
        alarm_id=42, rule_id="rixes-d01", rule_version=3, kind="threshold", key="D01", title="Rixes en série",
        severity="high", status="open", level=0, opened_at=OPENED, updated_at=OPENED, last_event_at=OPENED,
        event_count=3, incidents=[7, 8, 9], zone="D01", type_code="ATP.RIXE", x_l93=893_000.0, y_l93=6_247_000.0,
        detail={"term": FOUND_TERM},
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _valid(text: str) -> etree._Element:
    root = etree.fromstring(text.encode("utf-8"))
    if not SCHEMA.validate(root):
        pytest.fail("; ".join(f"line {e.line}: {e.message}" for e in SCHEMA.error_log))
    return root


LATER = OPENED + dt.timedelta(minutes=12)
MESSAGES = {
    "Alert": _alarm(),
    "Update": _alarm(updated_at=LATER, event_count=5, level=1),
    "Cancel": _alarm(updated_at=LATER, status="closed", reason="traité"),
    "Update without a place": _alarm(updated_at=LATER, zone=None, x_l93=None, y_l93=None, type_code=None),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_every_kind_of_message_is_valid_cap_with_utc_as_minus_zero(name: str) -> None:
    root = _valid(cap_xml(MESSAGES[name]))
    assert root.findtext(f"{CAP}msgType") == name.split()[0]
    for moment in (root.findtext(f"{CAP}sent"), root.findtext(f"{CAP}info/{CAP}effective")):
        assert moment is not None and moment.endswith("-00:00"), f"CAP writes UTC as -00:00, got {moment}"
    assert root.findtext(f"{CAP}scope") == "Restricted" and root.findtext(f"{CAP}restriction")


def test_updates_and_cancels_reference_the_first_message_and_ids_never_repeat() -> None:
    first = _valid(cap_xml(MESSAGES["Alert"]))
    assert first.find(f"{CAP}references") is None
    original = f"{SENDER},{first.findtext(f'{CAP}identifier')},{first.findtext(f'{CAP}sent')}"
    identifiers = {first.findtext(f"{CAP}identifier")}
    for name in ("Update", "Cancel"):
        root = _valid(cap_xml(MESSAGES[name]))
        assert root.findtext(f"{CAP}references") == original, name
        identifiers.add(root.findtext(f"{CAP}identifier"))
    again = _valid(cap_xml(_alarm(updated_at=LATER + dt.timedelta(seconds=1), event_count=6, level=1)))
    identifiers.add(again.findtext(f"{CAP}identifier"))
    assert len(identifiers) == 4, "two updates of the same state are two messages: two identifiers"


def test_the_schema_rejects_what_consumers_reject() -> None:
    """The schema is not a formality: the earlier export's faults and a few others fail it."""
    good = cap_xml(MESSAGES["Update"])
    broken = {
        "UTC as Z": good.replace("-00:00</sent>", "Z</sent>"),
        "space in identifier": good.replace("massalia-safety-alarm-42", "massalia safety alarm 42"),
        "unknown severity": good.replace("<severity>Severe<", "<severity>High<"),
        "scope after restriction": good.replace("<scope>Restricted</scope>", "").replace(
            "</restriction>", "</restriction><scope>Restricted</scope>"
        ),
        "circle without radius": good.replace(" 0.5</circle>", "</circle>"),
    }
    for name, text in broken.items():
        assert text != good, name
        assert not SCHEMA.validate(etree.fromstring(text.encode("utf-8"))), f"{name} passed the schema"


@settings(max_examples=60, deadline=None)
@given(title=st.text(min_size=1, max_size=80), count=st.integers(min_value=1, max_value=10**6))
def test_any_title_gives_a_valid_message_and_never_the_found_term(title: str, count: int) -> None:
    text = cap_xml(_alarm(title=title.replace("\x00", "") or "x", event_count=count, updated_at=LATER))
    _valid(text)
    assert FOUND_TERM not in text or FOUND_TERM in title
