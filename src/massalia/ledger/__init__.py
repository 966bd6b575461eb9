"""Append-only Merkle transparency log (RFC 9162 style) for the audit trail and dataset certification."""

from __future__ import annotations

from massalia.ledger.integrity import VerificationReport
from massalia.ledger.log import LogEntry, TransparencyLog
from massalia.ledger.storage import LedgerCorruptError, LedgerError, LedgerLockedError
from massalia.ledger.verify import (
    ConsistencyProof,
    InclusionProof,
    SignedTreeHead,
    VerificationError,
    canonical_entry,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerLockedError",
    "LogEntry",
    "SignedTreeHead",
    "TransparencyLog",
    "VerificationError",
    "VerificationReport",
    "canonical_entry",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]
