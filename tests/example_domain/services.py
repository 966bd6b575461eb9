"""The example domain's guarded service: the only way its interfaces reach its data."""

from __future__ import annotations

from massalia.governance import Caller

THINGS = ("anchor", "lighthouse", "quay")


def read_things(caller: Caller) -> list[str]:
    """The things (``example.thing.read``), once the rights allow it."""
    caller.authorize("example.thing.read", detail={"channel": caller.channel})
    return list(THINGS)
