"""Guarded reads of the audit trail: verify the log, read its entries, its tree heads and proofs.

The interfaces (``GET /api/v1/audit/...``) call these functions, which check ``audit.read`` (entries: admins
and DPOs) or ``audit.verify`` (hashes, signatures and proofs, which hold no personal data: anyone) before
the log is opened read-only. The routes never decide themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massalia.governance.caller import Caller
from massalia.governance.model import InvalidRequest, NotFound
from massalia.ledger import TransparencyLog


@contextmanager
def _read_log(ledger: Path) -> Iterator[TransparencyLog]:
    if not Path(ledger).is_dir():
        raise NotFound("No audit log yet (nothing has been audited).")
    with TransparencyLog(ledger, readonly=True) as log:
        yield log


@dataclass(frozen=True)
class Verification:
    """The outcome of recomputing the whole log."""

    ok: bool
    size: int
    summary: str


def verify_log(caller: Caller, ledger: Path) -> Verification:
    """Recompute the log at ``ledger`` and check every stored hash and signed tree head (``audit.verify``)."""
    caller.authorize("audit.verify")
    with _read_log(ledger) as log:
        report = log.verify()
        return Verification(bool(report.ok), log.size, report.summary())


def latest_tree_head(caller: Caller, ledger: Path) -> tuple[dict[str, Any], str]:
    """The latest signed tree head (JSON) and the log's public key (PEM) (``audit.verify``)."""
    caller.authorize("audit.verify")
    with _read_log(ledger) as log:
        head = log.latest_tree_head()
        if head is None:
            raise NotFound("The audit log has no signed tree head yet.")
        return head.to_json(), log.public_key_pem.decode()


def read_entries(caller: Caller, ledger: Path, start: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Entries ``start`` to ``start + limit`` (exclusive) with their index, and the log's size (``audit.read``)."""
    caller.authorize("audit.read")
    with _read_log(ledger) as log:
        size = log.size
        stop = min(max(start, 0) + max(limit, 0), size)
        return [{"index": i, "entry": log.get(i).entry} for i in range(max(start, 0), stop)], size


ENTRY_SORTS: tuple[str, ...] = ("index", "actor", "action")
"""What a filtered read of the entries may be sorted by (``index`` is time order: the log only grows)."""
MAX_FILTER_LENGTH = 200


@dataclass(frozen=True)
class EntryFilter:
    """Which audit entries to show, and in which order.

    ``actor`` is a username (exact); ``action`` an action (exact) or an area (``health.*``: every action under
    it); ``decision`` is ``allowed`` or ``denied``; ``since`` / ``until`` bound the entry's time (inclusive;
    a date alone means the whole day, in UTC).
    """

    actor: str | None = None
    action: str | None = None
    decision: str | None = None
    since: dt.datetime | dt.date | None = None
    until: dt.datetime | dt.date | None = None
    sort: str = "index"
    descending: bool = False

    def __post_init__(self) -> None:
        for name in ("actor", "action", "decision"):
            value = getattr(self, name)
            if value is not None and (not value or len(value) > MAX_FILTER_LENGTH or not value.isprintable()):
                raise InvalidRequest(f"{name} must be 1 to {MAX_FILTER_LENGTH} printable characters")
        if self.sort not in ENTRY_SORTS:
            raise InvalidRequest(f"sort must be one of {', '.join(ENTRY_SORTS)}, got {self.sort!r}")
        low, high = _moment(self.since, end=False), _moment(self.until, end=True)
        if low is not None and high is not None and low > high:
            raise InvalidRequest("since must not be after until")

    @property
    def filters(self) -> bool:
        """Whether any entry may be left out (else the page is read straight from the log)."""
        return any(value is not None for value in (self.actor, self.action, self.decision, self.since, self.until))

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` passes every filter."""
        if self.actor is not None and entry.get("actor") != self.actor:
            return False
        action = str(entry.get("action") or "")
        if self.action is not None and not (
            action == self.action or (self.action.endswith(".*") and action.startswith(self.action[:-1]))
        ):
            return False
        if self.decision is not None and entry.get("decision") != self.decision:
            return False
        if self.since is None and self.until is None:
            return True
        moment = _entry_time(entry)
        low, high = _moment(self.since, end=False), _moment(self.until, end=True)
        return moment is not None and (low is None or moment >= low) and (high is None or moment <= high)


def _moment(value: dt.datetime | dt.date | None, *, end: bool) -> dt.datetime | None:
    """A filter bound as an aware datetime (a date: its first or last second, UTC)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time.max if end else dt.time.min)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _entry_time(entry: dict[str, Any]) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(entry.get("time")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def search_entries(
    caller: Caller, ledger: Path, which: EntryFilter, start: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The page ``start`` to ``start + limit`` of the entries passing ``which``, in its order, and how many pass.

    Checked first (``audit.read``: admins and DPOs). Without filters in index order the page is read directly;
    otherwise every entry is read once and filtered here (the log is append-only and read-only here).
    """
    if not which.filters and which.sort == "index" and not which.descending:
        return read_entries(caller, ledger, start, limit)
    caller.authorize("audit.read")
    start, limit = max(start, 0), max(limit, 0)
    with _read_log(ledger) as log:
        if not which.filters and which.sort == "index":  # newest first, no filter: still a direct read
            size = log.size
            indexes = range(size - 1 - start, max(size - 1 - start - limit, -1), -1)
            return [{"index": i, "entry": log.get(i).entry} for i in indexes], size
        found = [(i, entry) for i in range(log.size) if which.matches(entry := log.get(i).entry)]
    if which.sort != "index":
        found.sort(key=lambda item: (str(item[1].get(which.sort) or ""), item[0]), reverse=which.descending)
    elif which.descending:
        found.reverse()
    return [{"index": i, "entry": entry} for i, entry in found[start : start + limit]], len(found)


def inclusion_proof(caller: Caller, ledger: Path, index: int, tree_size: int | None = None) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries (default: the latest head)."""
    caller.authorize("audit.verify")
    with _read_log(ledger) as log:
        head = log.latest_tree_head()
        size = tree_size or (head.tree_size if head else log.size)
        if not 0 <= index < size <= log.size:
            raise NotFound(f"No entry {index} in a tree of {size} entries.")
        return {"proof": log.inclusion_proof(index, size).to_json(), "leaf_hash": log.get(index).leaf_hash.hex()}


def consistency_proof(caller: Caller, ledger: Path, old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """The proof that the tree of ``old_size`` entries is a prefix of the one of ``new_size`` (``audit.verify``)."""
    caller.authorize("audit.verify")
    with _read_log(ledger) as log:
        new = new_size or log.size
        if not old_size <= new <= log.size:
            raise NotFound(f"No consistency proof from {old_size} to {new} (log size {log.size}).")
        return {"proof": log.consistency_proof(old_size, new).to_json()}
