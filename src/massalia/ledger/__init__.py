"""Append-only Merkle transparency log (RFC 9162 style) for the audit trail and dataset certification.

Names are loaded lazily, so ``python -m massalia.ledger.verify`` (the standalone verifier) imports only
``massalia.ledger.merkle`` and ``cryptography``, never the storage layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # What the lazy ``__getattr__`` below returns, for type checkers only (nothing is imported at run time).
    from massalia.ledger.integrity import VerificationReport as VerificationReport
    from massalia.ledger.log import LogEntry as LogEntry
    from massalia.ledger.log import TransparencyLog as TransparencyLog
    from massalia.ledger.storage import LedgerCorruptError as LedgerCorruptError
    from massalia.ledger.storage import LedgerError as LedgerError
    from massalia.ledger.storage import LedgerLockedError as LedgerLockedError
    from massalia.ledger.verify import ConsistencyProof as ConsistencyProof
    from massalia.ledger.verify import InclusionProof as InclusionProof
    from massalia.ledger.verify import SignedTreeHead as SignedTreeHead
    from massalia.ledger.verify import VerificationError as VerificationError
    from massalia.ledger.verify import canonical_entry as canonical_entry
    from massalia.ledger.verify import verify_consistency as verify_consistency
    from massalia.ledger.verify import verify_inclusion as verify_inclusion
    from massalia.ledger.verify import verify_tree_head as verify_tree_head

_EXPORTS = {
    "TransparencyLog": "log",
    "LogEntry": "log",
    "VerificationReport": "integrity",
    "LedgerError": "storage",
    "LedgerCorruptError": "storage",
    "LedgerLockedError": "storage",
    "SignedTreeHead": "verify",
    "InclusionProof": "verify",
    "ConsistencyProof": "verify",
    "VerificationError": "verify",
    "canonical_entry": "verify",
    "verify_tree_head": "verify",
    "verify_inclusion": "verify",
    "verify_consistency": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'massalia.ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(f"massalia.ledger.{module}"), name)


def __dir__() -> list[str]:
    return __all__
