"""Alarms exported as CAP 1.2 XML (OASIS Common Alerting Protocol) and NGSI-LD ``Alert`` entities.

Both carry what an alarm is (rule, kind, severity, category from the catalogue's crosswalks, time, place as a
zone or a point, counts) and never what the incidents say: no narrative, no party, and not the word a
``new_term`` alarm found (a new word may be a person's name). That holds for every role allowed to export, so
an export can leave the city's systems (a partner's CAD, a FIWARE broker) without personal data.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from massalia.safety.alarms.state import Alarm
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import districts, to_wgs84

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "massalia@safety.marseille.invalid"
NGSI_CONTEXT = [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld",
]
CAP_SEVERITY = {"critical": "Extreme", "high": "Severe", "medium": "Moderate", "low": "Minor", "informational": "Minor"}
CAP_CERTAINTY = {"geofence": "Observed", "threshold": "Observed", "frequency": "Observed", "silence": "Observed"}
CAP_CATEGORIES = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)


def _point(alarm: Alarm) -> tuple[float, float] | None:
    """The alarm's point in WGS84 (its first incident's, else its zone's seed), or ``None`` (city-wide)."""
    x, y = alarm.x_l93, alarm.y_l93
    if x is None or y is None:
        seed = next((d.seed for d in districts() if d.zone == alarm.zone), None)
        if seed is None:
            return None
        x, y = seed
    lon, lat = to_wgs84(np.array([x]), np.array([y]))
    return round(float(lon[0]), 6), round(float(lat[0]), 6)


def _categories(alarm: Alarm) -> tuple[str, str, str | None]:
    """(CAP category, SDM category, SDM subcategory) from the catalogue's crosswalk of the alarm's type."""
    if alarm.type_code:
        crosswalk = load_catalogue().types[alarm.type_code].crosswalk
        cap = crosswalk.get("cap") or "Security"
        return (
            (cap if cap in CAP_CATEGORIES else "Other"),
            crosswalk.get("sdm_category") or "security",
            (crosswalk.get("sdm_subcategory") or None),
        )
    return "Security", "security", None


def _description(alarm: Alarm) -> str:
    """A description built from the rule and counts only (never from narratives or terms)."""
    where = alarm.zone or "city-wide"
    rule = f"{alarm.kind}, rule {alarm.rule_id} v{alarm.rule_version}"
    return f"{alarm.title} [{rule}]: {alarm.event_count} event(s), {where}"


def _iso(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=dt.UTC, microsecond=0).isoformat()


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/FFFF): a CAP consumer's parser stops on them."""


def _cap_time(moment: dt.datetime) -> str:
    """A CAP date-time: seconds and a numeric offset, UTC written ``-00:00`` (CAP 1.2, 3.3.2; never ``Z``)."""
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "-00:00"


def _cap_identifier(alarm_id: int, status: str, level: int, moment: dt.datetime) -> str:
    """One message's identifier, unique per alarm, state and time (no space, comma, ``<`` or ``&``)."""
    return f"massalia-safety-alarm-{alarm_id}-{status}-{level}-{moment.strftime('%Y%m%dT%H%M%S')}"


def cap_xml(alarm: Alarm) -> str:
    """The alarm as a CAP 1.2 ``alert`` (status Actual; ``Cancel`` once closed, ``Update`` after a change)."""
    ET.register_namespace("", CAP_NS)

    def sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
        if text is not None:
            element.text = _NOT_XML.sub("\ufffd", text)
        return element

    root = ET.Element(f"{{{CAP_NS}}}alert")
    sub(root, "identifier", _cap_identifier(alarm.alarm_id, alarm.status, alarm.level, alarm.updated_at))
    sub(root, "sender", SENDER)
    sub(root, "sent", _cap_time(alarm.updated_at))
    sub(root, "status", "Actual")
    message = "Cancel" if alarm.status == "closed" else ("Alert" if alarm.updated_at == alarm.opened_at else "Update")
    sub(root, "msgType", message)
    sub(root, "scope", "Restricted")
    sub(root, "restriction", "City public-safety services and their authorised partners")
    if message != "Alert":
        # an Update or a Cancel names the message it follows: the alarm's first one (sender,identifier,sent)
        first = _cap_identifier(alarm.alarm_id, "open", 0, alarm.opened_at)
        sub(root, "references", f"{SENDER},{first},{_cap_time(alarm.opened_at)}")
    info = sub(root, "info")
    sub(info, "language", "fr-FR")
    cap_category, _, _ = _categories(alarm)
    sub(info, "category", cap_category)
    sub(info, "event", alarm.title)
    sub(info, "urgency", "Past" if alarm.status == "closed" else "Immediate")
    sub(info, "severity", CAP_SEVERITY[alarm.severity])
    sub(info, "certainty", CAP_CERTAINTY.get(alarm.kind, "Likely"))
    sub(info, "effective", _cap_time(alarm.opened_at))
    sub(info, "senderName", "Massalia - centre de supervision urbaine")
    sub(info, "description", _description(alarm))
    for name, value in (("rule", alarm.rule_id), ("kind", alarm.kind), ("level", str(alarm.level))):
        parameter = sub(info, "parameter")
        sub(parameter, "valueName", name)
        sub(parameter, "value", value)
    area = sub(info, "area")
    sub(area, "areaDesc", next((f"{d.zone} {d.name}" for d in districts() if d.zone == alarm.zone), "Marseille"))
    point = _point(alarm)
    if point is not None:
        sub(area, "circle", f"{point[1]},{point[0]} 0.5")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def ngsi_alert(alarm: Alarm) -> dict[str, Any]:
    """The alarm as an NGSI-LD ``Alert`` (key-values form, the Smart Data Models schema's)."""
    _, category, subcategory = _categories(alarm)
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Alert:massalia-safety:{alarm.alarm_id}",
        "type": "Alert",
        "alertSource": "urn:ngsi-ld:Massalia:safety",
        "category": category,
        "dateIssued": _iso(alarm.opened_at),
        "validFrom": _iso(alarm.opened_at),
        "severity": alarm.severity,
        "description": _description(alarm),
        "name": alarm.rule_id,
        "data": {"status": alarm.status, "level": alarm.level, "events": alarm.event_count, "kind": alarm.kind},
        "@context": NGSI_CONTEXT,
    }
    if subcategory:
        entity["subCategory"] = subcategory
    if alarm.status == "closed":
        entity["validTo"] = _iso(alarm.updated_at)
    point = _point(alarm)
    if point is not None:
        entity["location"] = {"type": "Point", "coordinates": [point[0], point[1]]}
    if alarm.zone:
        entity["address"] = {"addressLocality": "Marseille", "addressRegion": alarm.zone}
    return entity
