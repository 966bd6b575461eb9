"""Helpers of the live-ingest and alarm tests: a governed city with one user per role, and event builders."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massalia.governance import Caller, Governance, Principal, Role, operator_principal
from massalia.ledger import TransparencyLog

ROLES = {
    "operator": Role.SAFETY_OPERATOR,
    "analyst": Role.SAFETY_ANALYST,
    "manager": Role.SAFETY_MANAGER,
    "partner": Role.PARTNER,
    "engineer": Role.DATA_ENGINEER,
    "researcher": Role.RESEARCHER,
}
CITY_TZ = dt.timezone(dt.timedelta(hours=1))
# Points inside the city (lon, lat) and the districts they fall in.
CENTRE = (5.3800, 43.3000)
NORTH = (5.3700, 43.3550)


@dataclass
class City:
    gov: Governance
    principals: dict[str, Principal]

    def caller(self, name: str, channel: str = "api") -> Caller:
        return Caller(self.principals[name], self.gov, channel)

    def size(self) -> int:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return log.size

    def entries(self, since: int) -> list[dict[str, Any]]:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return [log.get(i).entry for i in range(since, log.size)]


def make_city(root: Path) -> City:
    gov = Governance(f"sqlite:///{(root / 'meta.sqlite').as_posix()}", root / "ledger", key_path=root / "master.key")
    principals = {n: gov.create_user(f"{n}.live", None, [r], actor=operator_principal()) for n, r in ROLES.items()}
    return City(gov, principals)


def event(
    n: int,
    *,
    source: str = "csu",
    code: str = "ATP03",
    at: dt.datetime | None = None,
    point: tuple[float, float] | None = CENTRE,
    narrative: str | None = "rixe signalée devant un commerce",
    **extra: Any,
) -> dict[str, Any]:
    """One event of a feed (message id ``<source>-m<n>``, record ``<source>-r<n>``)."""
    moment = at or dt.datetime(2026, 12, 7, 20, 0, tzinfo=CITY_TZ)
    body: dict[str, Any] = {
        "source": source,
        "message_id": f"{source}-m{n}",
        "source_id": f"{source}-r{n}",
        "occurred_at": moment.isoformat(),
        "local_code": code,
        "narrative": narrative,
    }
    if point is not None:
        body["lon"], body["lat"] = point
    else:
        body["zone"] = "D03"
    body.update(extra)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
