"""The example domain's guarded service: the only way its interfaces reach its data."""

from __future__ import annotations

from massalia.governance import Governance, Principal

THINGS = ("anchor", "lighthouse", "quay")


def read_things(gov: Governance, principal: Principal, *, channel: str | None = None) -> list[str]:
    """The things (``example.thing.read``), once the rights allow it."""
    gov.authorize(principal, "example.thing.read", detail={"channel": channel})
    return list(THINGS)
