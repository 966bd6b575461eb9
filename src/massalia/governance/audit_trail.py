"""Guarded reads of the audit trail: verify the log, read its entries, its tree heads and proofs.

The interfaces (``GET /api/v1/audit/...``) call these functions, which check ``audit.read`` (entries: admins
and DPOs) or ``audit.verify`` (hashes, signatures and proofs, which hold no personal data: anyone) before
the log is opened read-only. The routes never decide themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massalia.governance import Governance, NotFound, Principal
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


def verify_log(gov: Governance, principal: Principal, ledger: Path) -> Verification:
    """Recompute the log at ``ledger`` and check every stored hash and signed tree head (``audit.verify``)."""
    gov.authorize(principal, "audit.verify")
    with _read_log(ledger) as log:
        report = log.verify()
        return Verification(bool(report.ok), log.size, report.summary())


def latest_tree_head(gov: Governance, principal: Principal, ledger: Path) -> tuple[dict[str, Any], str]:
    """The latest signed tree head (JSON) and the log's public key (PEM) (``audit.verify``)."""
    gov.authorize(principal, "audit.verify")
    with _read_log(ledger) as log:
        head = log.latest_tree_head()
        if head is None:
            raise NotFound("The audit log has no signed tree head yet.")
        return head.to_json(), log.public_key_pem.decode()


def read_entries(
    gov: Governance, principal: Principal, ledger: Path, start: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Entries ``start`` to ``start + limit`` (exclusive) with their index, and the log's size (``audit.read``)."""
    gov.authorize(principal, "audit.read")
    with _read_log(ledger) as log:
        size = log.size
        stop = min(max(start, 0) + max(limit, 0), size)
        return [{"index": i, "entry": log.get(i).entry} for i in range(max(start, 0), stop)], size


def inclusion_proof(
    gov: Governance, principal: Principal, ledger: Path, index: int, tree_size: int | None = None
) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries (default: the latest head)."""
    gov.authorize(principal, "audit.verify")
    with _read_log(ledger) as log:
        head = log.latest_tree_head()
        size = tree_size or (head.tree_size if head else log.size)
        if not 0 <= index < size <= log.size:
            raise NotFound(f"No entry {index} in a tree of {size} entries.")
        return {"proof": log.inclusion_proof(index, size).to_json(), "leaf_hash": log.get(index).leaf_hash.hex()}


def consistency_proof(
    gov: Governance, principal: Principal, ledger: Path, old_size: int, new_size: int | None = None
) -> dict[str, Any]:
    """The proof that the tree of ``old_size`` entries is a prefix of the one of ``new_size`` (``audit.verify``)."""
    gov.authorize(principal, "audit.verify")
    with _read_log(ledger) as log:
        new = new_size or log.size
        if not old_size <= new <= log.size:
            raise NotFound(f"No consistency proof from {old_size} to {new} (log size {log.size}).")
        return {"proof": log.consistency_proof(old_size, new).to_json()}
