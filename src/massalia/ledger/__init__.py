"""Append-only Merkle transparency log (RFC 9162 style) for the audit trail and dataset certification.

Names are loaded lazily, so ``python -m massalia.ledger.verify`` (the standalone verifier) imports only
``massalia.ledger.merkle`` and ``cryptography``, never the storage layer.
"""

from __future__ import annotations

import importlib
from typing import Any

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
