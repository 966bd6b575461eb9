"""Standalone verifier of ledger proofs: needs only a public key, signed tree heads, a proof and the entry.

This module is the reference for the exchange formats (see ``docs/ledger.md``). It imports nothing
from Massalia except the stdlib-only :mod:`massalia.ledger.merkle`, plus ``cryptography`` for Ed25519,
so a third party can run it without the platform's database or storage::

    python -m massalia.ledger.verify inclusion --entry e.json --proof p.json --sth sth.json --key pub.pem
    python -m massalia.ledger.verify consistency --old-sth a.json --new-sth b.json --proof c.json --key pub.pem
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from massalia.ledger import merkle

STH_FORMAT = "massalia-ledger-sth/1"
INCLUSION_FORMAT = "massalia-ledger-inclusion/1"
CONSISTENCY_FORMAT = "massalia-ledger-consistency/1"

STH_CONTEXT = b"MASSALIA-LEDGER-STH\x00"
"""Domain-separation prefix of the bytes an Ed25519 tree-head signature covers."""
STH_VERSION = 1
SIGNATURE_SIZE = 64
MAX_TREE_SIZE = 2**63 - 1

JsonInput = Mapping[str, Any] | str | bytes


class VerificationError(Exception):
    """A proof, tree head, signature or entry did not verify; the message says which and why."""


def canonical_entry(entry: Mapping[str, Any] | str | bytes) -> bytes:
    r"""The canonical bytes of a log entry, the bytes its leaf hash covers.

    A JSON object serialized with keys sorted by code point, no insignificant whitespace
    (``,`` and ``:`` separators), non-ASCII characters kept as UTF-8, and no NaN or infinities.
    A ``str`` or ``bytes`` argument is parsed as JSON first, so any equivalent serialization of an
    entry (indented, keys in another order) gives the same canonical bytes.

    Examples
    --------
    >>> canonical_entry({"b": 1, "a": "é"}).decode()
    '{"a":"é","b":1}'
    >>> canonical_entry(b'{ "b": 1, "a": "\\u00e9" }') == canonical_entry({"a": "é", "b": 1})
    True
    """
    value: Any = entry
    if isinstance(entry, str | bytes):
        try:
            value = json.loads(entry)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"entry is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ValueError(f"a log entry must be a JSON object, got {type(value).__name__}")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"entry cannot be written as canonical JSON: {exc}") from exc
    return text.encode("utf-8")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM (SubjectPublicKeyInfo).

    Examples
    --------
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> key = Ed25519PrivateKey.generate().public_key()
    >>> pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    >>> load_public_key(pem) == key
    True
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise VerificationError(f"the public key is not a valid PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError(f"the public key must be Ed25519, got {type(key).__name__}")
    return key


def log_id(public_key: Ed25519PublicKey) -> bytes:
    """Identify a log by its key: ``SHA-256`` of the DER SubjectPublicKeyInfo of its public key.

    Examples
    --------
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> len(log_id(Ed25519PrivateKey.generate().public_key()))
    32
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{what} is not valid base64: {exc}") from exc
    if len(raw) != size or _b64encode(raw) != value:
        raise VerificationError(f"{what} must be the canonical base64 of {size} bytes")
    return raw


def _size(value: object, what: str) -> int:
    # bool is an int in Python; a JSON true is not a size.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise VerificationError(f"{what} must be an integer between 0 and 2**63 - 1")
    return value


def _as_object(data: JsonInput, kind: str, expected_format: str, keys: set[str]) -> Mapping[str, Any]:
    obj: Any = data
    if isinstance(data, str | bytes):
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VerificationError(f"the {kind} is not valid JSON: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise VerificationError(f"the {kind} must be a JSON object")
    if obj.get("format") != expected_format:
        raise VerificationError(f'the {kind} must have "format": "{expected_format}"')
    if set(obj) != keys | {"format"}:
        raise VerificationError(f"the {kind} must have exactly the keys {sorted(keys | {'format'})}")
    return obj


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree head signed by the log: the size and root hash of the log at one moment.

    Attributes
    ----------
    tree_size
        Number of entries covered.
    timestamp
        Milliseconds since the Unix epoch (UTC) when the head was issued.
    root_hash
        Merkle Tree Hash of the first ``tree_size`` entries.
    log_id
        SHA-256 of the log's public key (DER SubjectPublicKeyInfo), see :func:`log_id`.
    signature
        Ed25519 signature over :meth:`signed_bytes`.
    """

    tree_size: int
    timestamp: int
    root_hash: bytes
    log_id: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers (101 bytes).

        ``"MASSALIA-LEDGER-STH" 0x00 || version (1 byte, 1) || log_id (32) || tree_size (uint64 big-endian)
        || timestamp (uint64 big-endian) || root_hash (32)``.
        """
        return sth_signed_bytes(self.tree_size, self.timestamp, self.root_hash, self.log_id)

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (hashes and signature in base64)."""
        return {
            "format": STH_FORMAT,
            "log_id": _b64encode(self.log_id),
            "tree_size": self.tree_size,
            "timestamp": self.timestamp,
            "root_hash": _b64encode(self.root_hash),
            "signature": _b64encode(self.signature),
        }

    @classmethod
    def from_json(cls, data: SignedTreeHead | JsonInput) -> SignedTreeHead:
        """Parse the JSON form strictly; raise :class:`VerificationError` on any deviation."""
        if isinstance(data, SignedTreeHead):
            return data
        obj = _as_object(
            data, "signed tree head", STH_FORMAT, {"log_id", "tree_size", "timestamp", "root_hash", "signature"}
        )
        return cls(
            tree_size=_size(obj["tree_size"], "tree_size"),
            timestamp=_size(obj["timestamp"], "timestamp"),
            root_hash=_b64decode(obj["root_hash"], "root_hash", merkle.HASH_SIZE),
            log_id=_b64decode(obj["log_id"], "log_id", merkle.HASH_SIZE),
            signature=_b64decode(obj["signature"], "signature", SIGNATURE_SIZE),
        )


def sth_signed_bytes(tree_size: int, timestamp: int, root_hash: bytes, log_id: bytes) -> bytes:
    """Encode the fields a tree-head signature covers (see :meth:`SignedTreeHead.signed_bytes`).

    Examples
    --------
    >>> len(sth_signed_bytes(0, 0, merkle.EMPTY_ROOT, bytes(32)))
    101
    """
    if len(root_hash) != merkle.HASH_SIZE or len(log_id) != merkle.HASH_SIZE:
        raise ValueError("root_hash and log_id must be 32 bytes")
    return STH_CONTEXT + struct.pack(">B32sQQ32s", STH_VERSION, log_id, tree_size, timestamp, root_hash)


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry ``leaf_index`` is in the tree of ``tree_size`` entries (RFC 9162 §2.1.3)."""

    leaf_index: int
    tree_size: int
    audit_path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (hashes in base64, deepest sibling first)."""
        return {
            "format": INCLUSION_FORMAT,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "audit_path": [_b64encode(h) for h in self.audit_path],
        }

    @classmethod
    def from_json(cls, data: InclusionProof | JsonInput) -> InclusionProof:
        """Parse the JSON form strictly; raise :class:`VerificationError` on any deviation."""
        if isinstance(data, InclusionProof):
            return data
        obj = _as_object(data, "inclusion proof", INCLUSION_FORMAT, {"leaf_index", "tree_size", "audit_path"})
        return cls(
            leaf_index=_size(obj["leaf_index"], "leaf_index"),
            tree_size=_size(obj["tree_size"], "tree_size"),
            audit_path=_hash_list(obj["audit_path"], "audit_path"),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``new_size`` entries extends the tree of ``old_size`` (RFC 9162 §2.1.4)."""

    old_size: int
    new_size: int
    consistency_path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (hashes in base64, in RFC 9162 order)."""
        return {
            "format": CONSISTENCY_FORMAT,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "consistency_path": [_b64encode(h) for h in self.consistency_path],
        }

    @classmethod
    def from_json(cls, data: ConsistencyProof | JsonInput) -> ConsistencyProof:
        """Parse the JSON form strictly; raise :class:`VerificationError` on any deviation."""
        if isinstance(data, ConsistencyProof):
            return data
        obj = _as_object(data, "consistency proof", CONSISTENCY_FORMAT, {"old_size", "new_size", "consistency_path"})
        return cls(
            old_size=_size(obj["old_size"], "old_size"),
            new_size=_size(obj["new_size"], "new_size"),
            consistency_path=_hash_list(obj["consistency_path"], "consistency_path"),
        )


def _hash_list(value: object, what: str) -> tuple[bytes, ...]:
    # 64 levels cover any tree of up to 2**64 leaves; a longer path is never valid.
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) > 2 * 64:
        raise VerificationError(f"{what} must be a list of at most 128 base64 hashes")
    return tuple(_b64decode(item, f"{what}[{i}]", merkle.HASH_SIZE) for i, item in enumerate(value))


def _public_key(public_key: Ed25519PublicKey | str | bytes) -> Ed25519PublicKey:
    return public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)


def verify_tree_head(sth: SignedTreeHead | JsonInput, public_key_pem: Ed25519PublicKey | str | bytes) -> SignedTreeHead:
    """Check a signed tree head's log id and Ed25519 signature; return the parsed head.

    Raises
    ------
    VerificationError
        If the head is malformed, names another log, or its signature is not valid for the key.

    Examples
    --------
    >>> verify_tree_head(sth_json, public_pem)  # doctest: +SKIP
    """
    head = SignedTreeHead.from_json(sth)
    key = _public_key(public_key_pem)
    if head.log_id != log_id(key):
        raise VerificationError("the signed tree head was issued by another log (its log_id is not this key's)")
    try:
        key.verify(head.signature, head.signed_bytes())
    except InvalidSignature as exc:
        raise VerificationError(
            f"the signature of the tree head (size {head.tree_size}) is not valid for this public key"
        ) from exc
    return head


def verify_inclusion(
    entry_json: Mapping[str, Any] | str | bytes,
    proof: InclusionProof | JsonInput,
    sth: SignedTreeHead | JsonInput,
    public_key_pem: Ed25519PublicKey | str | bytes,
) -> SignedTreeHead:
    """Check that an entry is in the log at the proof's index, under a signed tree head.

    Parameters
    ----------
    entry_json
        The entry (JSON object, or its JSON text in any formatting; it is canonicalized).
    proof
        The inclusion proof (object or JSON); its ``tree_size`` must be the head's.
    sth
        The signed tree head (object or JSON).
    public_key_pem
        The log's Ed25519 public key (PEM, or a loaded key).

    Returns
    -------
    SignedTreeHead
        The verified tree head.

    Raises
    ------
    VerificationError
        With the reason, if anything does not verify.

    Examples
    --------
    >>> verify_inclusion(entry, proof_json, sth_json, public_pem)  # doctest: +SKIP
    """
    head = verify_tree_head(sth, public_key_pem)
    parsed = InclusionProof.from_json(proof)
    try:
        leaf = merkle.leaf_hash(canonical_entry(entry_json))
    except ValueError as exc:
        raise VerificationError(str(exc)) from exc
    if parsed.tree_size != head.tree_size:
        raise VerificationError(
            f"the proof is for a tree of size {parsed.tree_size}, the signed tree head has size {head.tree_size}"
        )
    if parsed.leaf_index >= head.tree_size:
        raise VerificationError(f"leaf index {parsed.leaf_index} is outside a tree of size {head.tree_size}")
    if not merkle.verify_inclusion(leaf, parsed.leaf_index, head.tree_size, parsed.audit_path, head.root_hash):
        raise VerificationError(
            f"the entry is not included at index {parsed.leaf_index} of the signed tree of size "
            f"{head.tree_size}: the proof does not lead to the signed root hash"
        )
    return head


def verify_consistency(
    old_sth: SignedTreeHead | JsonInput,
    new_sth: SignedTreeHead | JsonInput,
    proof: ConsistencyProof | JsonInput,
    public_key_pem: Ed25519PublicKey | str | bytes,
) -> tuple[SignedTreeHead, SignedTreeHead]:
    """Check that a newer signed tree head extends an older one (the log only appended).

    Returns
    -------
    tuple of SignedTreeHead
        The verified old and new heads.

    Raises
    ------
    VerificationError
        With the reason, if anything does not verify.

    Examples
    --------
    >>> verify_consistency(old_json, new_json, proof_json, public_pem)  # doctest: +SKIP
    """
    old = verify_tree_head(old_sth, public_key_pem)
    new = verify_tree_head(new_sth, public_key_pem)
    parsed = ConsistencyProof.from_json(proof)
    if (parsed.old_size, parsed.new_size) != (old.tree_size, new.tree_size):
        raise VerificationError(
            f"the proof is from size {parsed.old_size} to {parsed.new_size}, the signed tree heads "
            f"have sizes {old.tree_size} and {new.tree_size}"
        )
    if old.tree_size > new.tree_size:
        raise VerificationError(f"the old tree head (size {old.tree_size}) is larger than the new one")
    if not merkle.verify_consistency(
        old.tree_size, new.tree_size, old.root_hash, new.root_hash, parsed.consistency_path
    ):
        raise VerificationError(
            f"the tree of size {new.tree_size} is not an append-only extension of the tree of size "
            f"{old.tree_size}: the consistency proof does not match the signed root hashes"
        )
    return old, new


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _hex(raw: bytes) -> str:
    return raw.hex()[:16] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; return 0 when the proof verifies, 1 when it does not.

    Examples
    --------
    >>> main(["sth", "--sth", "sth.json", "--key", "public-key.pem"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m massalia.ledger.verify",
        description="Verify a Massalia ledger proof against a signed tree head and the log's public key.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inclusion = commands.add_parser("inclusion", help="an entry is in the log under a signed tree head")
    inclusion.add_argument("--entry", required=True, help="the entry, a JSON object")
    inclusion.add_argument("--proof", required=True, help="the inclusion proof (JSON)")
    inclusion.add_argument("--sth", required=True, help="the signed tree head (JSON)")
    inclusion.add_argument("--key", required=True, help="the log's public key (PEM)")
    consistency = commands.add_parser("consistency", help="a newer signed tree head extends an older one")
    consistency.add_argument("--old-sth", required=True, help="the older signed tree head (JSON)")
    consistency.add_argument("--new-sth", required=True, help="the newer signed tree head (JSON)")
    consistency.add_argument("--proof", required=True, help="the consistency proof (JSON)")
    consistency.add_argument("--key", required=True, help="the log's public key (PEM)")
    head = commands.add_parser("sth", help="a signed tree head is signed by the log")
    head.add_argument("--sth", required=True, help="the signed tree head (JSON)")
    head.add_argument("--key", required=True, help="the log's public key (PEM)")
    args = parser.parse_args(argv)
    try:
        key = load_public_key(_read(args.key))
        if args.command == "inclusion":
            proof = InclusionProof.from_json(_read(args.proof))
            sth = verify_inclusion(_read(args.entry), proof, _read(args.sth), key)
            message = (
                f"OK: the entry is included at index {proof.leaf_index} of the log of {sth.tree_size} entries "
                f"(root {_hex(sth.root_hash)}, signed by log {_hex(sth.log_id)})"
            )
        elif args.command == "consistency":
            old, new = verify_consistency(_read(args.old_sth), _read(args.new_sth), _read(args.proof), key)
            message = (
                f"OK: the log of {new.tree_size} entries (root {_hex(new.root_hash)}) extends the log of "
                f"{old.tree_size} entries (root {_hex(old.root_hash)}); nothing was removed or changed"
            )
        else:
            sth = verify_tree_head(_read(args.sth), key)
            message = f"OK: tree head of size {sth.tree_size} (root {_hex(sth.root_hash)}) is signed by this log"
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
