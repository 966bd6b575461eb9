"""Certification of published open data: each new file of a resource is appended to a transparency log.

A publication of a file (a resource's content first published under its id) becomes one entry of a Merkle
transparency log (the core's :class:`massalia.ledger.TransparencyLog`, RFC 9162 hashing, Ed25519 signed tree
heads): the file's SHA-256 and size, the resource id and its *resource version* (1 for its first file, 2 for
the next different file...), the dataset id and the dataset version that published it, the producing
organization's id and the publication time. Anyone can then check, offline, that a downloaded file is exactly
what was published and when: ``massalia verify FILE`` or the few lines of ``docs/opendata-verify.md``.

What the public log holds, and what it does not (decided here, tested in ``tests/opendata/test_certify.py``):

- Its own log, ``<home>/opendata/ledger``, not the audit log. The audit log records who read which patient
  data; publishing its tree heads and proofs to anonymous callers would disclose the health warehouse's
  activity, and a sibling hash of a low-entropy audit entry could be confirmed by guessing it.
- Only ids and hashes: no dataset name, no title, no user name. An entry cannot be erased, so it holds no
  personal data (a producer's account name would stay forever) and nothing a later unpublication should hide.
  Ids are random UUIDs, so a sibling hash in a proof cannot be guessed back to an entry.
- Only public publications: a dataset that is not active (deleted) or is marked private is not certified;
  its files are certified when (if) it becomes public. Proofs are served only for resources the caller may
  read in the catalog, with the same "not found" as for an id that never existed.

Certification runs after the publishing transaction commits (the catalog calls :meth:`Certifier.certify_datasets`
for the datasets it published), so a failed publication certifies nothing. Were the log unavailable at that
moment, the publication stays valid and is certified by the next publication of that dataset, the next proof
asked for it, or ``massalia opendata certify`` (which catches up on every dataset).

Examples
--------
>>> certifier = Certifier.for_home(home)  # doctest: +SKIP
>>> certifier.proof(caller, resource_id)["entry"]["resource_version"]  # doctest: +SKIP
1
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from massalia.governance import Caller, NotFound
from massalia.ledger import merkle
from massalia.ledger.log import TransparencyLog
from massalia.ledger.storage import PUBLIC_KEY, LedgerLockedError
from massalia.ledger.verify import (
    ConsistencyProof,
    InclusionProof,
    SignedTreeHead,
    VerificationError,
    canonical_entry,
    load_public_key,
    log_id,
)
from massalia.opendata.catalog import CREATE_ORGANIZATION, Catalog
from massalia.opendata.models import ValidationFailed
from massalia.opendata.tables import VersionRow

logger = logging.getLogger(__name__)

READ_CERTIFICATES = "opendata.certificate.read"
"""The action of the public certification endpoints (checkpoint, proofs, public key)."""
CERTIFICATE_TYPE = "massalia.opendata.certificate/1"
PROOF_FORMAT = "massalia-opendata-proof/1"
CHECKPOINT_FORMAT = "massalia-opendata-checkpoint/1"
CHECKPOINT_FIELDS = ("log_id", "tree_size", "timestamp", "root_hash", "signature")
ENTRY_KEYS = frozenset(
    {
        "type",
        "resource_sha256",
        "resource_size",
        "resource_id",
        "resource_version",
        "dataset_id",
        "dataset_version",
        "organization_id",
        "published_at",
    }
)
PROOF_KEYS = frozenset({"format", "entry", "inclusion", "checkpoint", "consistency", "public_key"})
LOCK_WAIT_S = 30.0
MAX_PROOF_BYTES = 64 * 1024
"""A proof file is a few kilobytes (a path of at most 64 hashes); a larger one is refused unread."""


def ledger_directory(home: Any) -> Path:
    """Where a home's certification log lives (``<home>/opendata/ledger``)."""
    return Path(home.root) / "opendata" / "ledger"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def certificate_entry(
    document: Mapping[str, Any], resource: Mapping[str, Any], resource_version: int
) -> dict[str, Any]:
    """The log entry certifying one file of a published dataset version (ids and hashes only, no names).

    Examples
    --------
    >>> doc = {"id": "d", "massalia_version": 3, "owner_org": "o", "massalia_published_at": "2026-12-07T20:00:00"}
    >>> sorted(certificate_entry(doc, {"id": "r", "hash": "sha256:ab", "size": 2}, 1))[:3]
    ['dataset_id', 'dataset_version', 'organization_id']
    """
    return {
        "type": CERTIFICATE_TYPE,
        "resource_sha256": str(resource["hash"]).removeprefix("sha256:"),
        "resource_size": resource.get("size"),
        "resource_id": resource["id"],
        "resource_version": resource_version,
        "dataset_id": document["id"],
        "dataset_version": document["massalia_version"],
        "organization_id": document["owner_org"],
        "published_at": document["massalia_published_at"],
    }


def checkpoint_text(head: SignedTreeHead) -> str:
    """The signed tree head in the documented text format (``docs/opendata-verify.md``).

    One ``name: value`` line per field after the format line; hashes and the signature in base64. The
    signature is the ledger's Ed25519 signature over ``"MASSALIA-LEDGER-STH" 0x00 || 0x01 || log_id ||
    tree_size (uint64 BE) || timestamp (uint64 BE, ms) || root_hash``; ``log_id`` (the key id) is the SHA-256
    of the public key's DER SubjectPublicKeyInfo.
    """
    data = head.to_json()
    return "\n".join([CHECKPOINT_FORMAT, *(f"{name}: {data[name]}" for name in CHECKPOINT_FIELDS)]) + "\n"


def parse_checkpoint(text: str | bytes) -> SignedTreeHead:
    """A checkpoint from its text format or from the ledger's JSON form; :class:`VerificationError` if malformed."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if raw.lstrip().startswith("{"):
        return SignedTreeHead.from_json(raw)
    lines = raw.strip("\n").split("\n")
    if not lines or lines[0].strip() != CHECKPOINT_FORMAT:
        raise VerificationError(f"a checkpoint starts with the line {CHECKPOINT_FORMAT!r}")
    values: dict[str, Any] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(": ")
        if not sep or name not in CHECKPOINT_FIELDS or name in values:
            raise VerificationError(f"unexpected checkpoint line {line[:80]!r}")
        values[name] = int(value) if name in ("tree_size", "timestamp") and value.isdigit() else value
    if set(values) != set(CHECKPOINT_FIELDS):
        raise VerificationError(f"a checkpoint has exactly the lines {', '.join(CHECKPOINT_FIELDS)}")
    return SignedTreeHead.from_json({"format": "massalia-ledger-sth/1", **values})


@dataclass
class _Index:
    # What the log certifies, read once per process and extended as the log grows: per resource id, the
    # (sha256, entry index) of each of its versions in order.
    log_id: bytes = b""
    size: int = 0
    versions: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


_INDEXES: dict[str, _Index] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def _lock_for(directory: Path) -> threading.Lock:
    with _GUARD:
        return _LOCKS.setdefault(str(directory), threading.Lock())


class Certifier:
    """The certification log of one catalog: appends publications, serves checkpoints and proofs.

    Parameters
    ----------
    catalog
        The catalog whose published versions are certified (its metadata database).
    directory
        The log's directory (``<home>/opendata/ledger``); created with its signing key on first use.
    """

    def __init__(self, catalog: Catalog, directory: Path) -> None:
        self.catalog = catalog
        self.directory = Path(directory)
        self._lock = _lock_for(self.directory)

    @classmethod
    def for_home(cls, home: Any) -> Certifier:
        """The certifier of a ``MASSALIA_HOME``."""
        return cls(Catalog.for_home(home), ledger_directory(home))

    # -- the log ------------------------------------------------------------------------------------------
    def _open_writer(self) -> TransparencyLog:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return TransparencyLog(self.directory)
            except LedgerLockedError:
                # Another process (the API server, a CLI run) is certifying: its append is short.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _refresh(self, log: TransparencyLog) -> _Index:
        """The index of this log, extended with the entries appended since it was last read (by any process)."""
        index = _INDEXES.get(str(self.directory))
        if index is None or index.log_id != log.log_id:
            index = _Index(log.log_id)  # first read, or another log now in this directory: from the start
        if index.size >= log.size:
            return index  # a reader opened before another thread's append sees fewer entries: keep the newer
        for position in range(index.size, log.size):
            entry = log.get(position).entry
            index.versions.setdefault(str(entry["resource_id"]), []).append((str(entry["resource_sha256"]), position))
        index.size = log.size
        _INDEXES[str(self.directory)] = index
        return index

    def certify_datasets(self, dataset_ids: Iterable[str] | None = None) -> int:
        """Append every not yet certified file of the given datasets' public versions (all datasets: ``None``).

        Returns the number of entries appended; a tree head covering them is signed before this returns.
        """
        ids = None if dataset_ids is None else sorted(set(dataset_ids))
        with self.catalog.session() as session:
            query = select(VersionRow).order_by(VersionRow.published_at, VersionRow.version)
            if ids is not None:
                query = query.where(VersionRow.dataset_id.in_(ids))
            documents = [json.loads(row.document) for row in session.scalars(query)]
        with self._lock, self._open_writer() as log:
            index = self._refresh(log)
            entries: list[dict[str, Any]] = []
            seen = {rid: {sha for sha, _ in versions} for rid, versions in index.versions.items()}
            for document in documents:
                if document.get("state") != "active" or document.get("private"):
                    continue  # never public in this version: nothing of it goes to the public log
                for resource in document.get("resources", []):
                    sha = str(resource.get("hash") or "").removeprefix("sha256:")
                    if resource.get("url_type") != "upload" or not sha:
                        continue  # a link: no bytes of ours to certify
                    known = seen.setdefault(resource["id"], set())
                    if sha in known:
                        continue
                    known.add(sha)
                    version = len(index.versions.get(resource["id"], [])) + sum(
                        1 for e in entries if e["resource_id"] == resource["id"]
                    )
                    entries.append(certificate_entry(document, resource, version + 1))
            if entries:
                log.append_many(entries)
            head = log.latest_tree_head()
            if head is None or head.tree_size != log.size:
                log.tree_head()
            self._refresh(log)
        return len(entries)

    def catch_up(self, caller: Caller) -> int:
        """Certify every public file not yet in the log, of every dataset (platform admins: it reads them all).

        Returns the number of entries appended.
        """
        caller.authorize(CREATE_ORGANIZATION, detail={"resource": {"operation": "certify"}})
        return self.certify_datasets()

    def _versions(self, resource_id: str) -> list[tuple[str, int]]:
        with self._reader() as log, self._lock:
            return list(self._refresh(log).versions.get(resource_id, []))

    def _reader(self) -> TransparencyLog:
        if not (self.directory / PUBLIC_KEY).exists():
            self.certify_datasets([])  # creates the log, its key and the first (empty) signed tree head
        return TransparencyLog(self.directory, readonly=True)

    # -- the public, guarded reads ---------------------------------------------------------------------------
    def checkpoint(self, caller: Caller) -> SignedTreeHead:
        """The latest signed tree head (``opendata.certificate.read``, anonymous allowed)."""
        caller.authorize(READ_CERTIFICATES)
        with self._reader() as log:
            head = log.latest_tree_head()
        if head is None:  # a log whose first head was never signed (a crash right after creating it)
            self.certify_datasets([])
            with TransparencyLog(self.directory, readonly=True) as log:
                head = log.latest_tree_head()
        if head is None:
            raise NotFound("the certification log has no signed tree head yet")
        return head

    def public_key_pem(self, caller: Caller) -> bytes:
        """The log's Ed25519 public key, PEM (``opendata.certificate.read``)."""
        caller.authorize(READ_CERTIFICATES)
        with self._reader() as log:
            return log.public_key_pem

    def proof(
        self, caller: Caller, resource_id: str, resource_version: int | None = None, since: int | None = None
    ) -> dict[str, Any]:
        """The proof bundle of one resource version: entry, inclusion proof, signed tree head, public key.

        Parameters
        ----------
        resource_id
            The resource's id (a UUID: names and paths are refused, never looked up).
        resource_version
            Which of its files (1 for the first); the latest by default.
        since
            The size of a checkpoint the caller already holds: the bundle then carries the consistency proof
            from it to the bundle's tree head, so ``massalia verify --checkpoint`` can check the log only grew.

        Raises
        ------
        NotFound
            The resource does not exist, is not readable by the caller (a deleted or private dataset), or has no
            certified file; the three answers are the same.
        """
        caller.authorize(READ_CERTIFICATES)
        if not isinstance(resource_id, str) or not _is_uuid(resource_id):
            raise ValidationFailed({"resource_id": ["must be a resource id (a UUID)"]})
        if resource_version is not None and (isinstance(resource_version, bool) or not 1 <= resource_version <= 10**6):
            raise ValidationFailed({"version": ["must be a resource version from 1"]})
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= 2**62):
            raise ValidationFailed({"since": ["must be a tree size from 0"]})
        missing = NotFound(f"no certified file for resource {resource_id}")
        try:
            row = self.catalog.readable_resource(caller, resource_id)
        except NotFound:
            raise missing from None
        versions = self._versions(resource_id)
        behind = not versions or (resource_version is not None and resource_version > len(versions))
        if behind and row.url_type == "upload" and row.sha256:
            # A file published while the log was unavailable: certify it now. Only for a resource that has a file,
            # so that asking again and again for a link's proof costs a lookup, not a write.
            self.certify_datasets([row.dataset_id])
            versions = self._versions(resource_id)
        if not versions or (resource_version is not None and resource_version > len(versions)):
            raise missing
        _, position = versions[(resource_version or len(versions)) - 1]
        with TransparencyLog(self.directory, readonly=True) as log:
            head = log.latest_tree_head()
            if head is None or head.tree_size <= position:
                raise missing
            if since is not None and since > head.tree_size:
                raise ValidationFailed(
                    {"since": [f"your checkpoint (size {since}) is larger than this log ({head.tree_size})"]}
                )
            return {
                "format": PROOF_FORMAT,
                "entry": log.get(position).entry,
                "inclusion": log.inclusion_proof(position, head.tree_size).to_json(),
                "checkpoint": head.to_json(),
                "consistency": None if since is None else log.consistency_proof(since, head.tree_size).to_json(),
                "public_key": log.public_key_pem.decode("ascii"),
            }

    def consistency(self, caller: Caller, first: int, second: int | None = None) -> dict[str, Any]:
        """The consistency proof between two tree sizes (the second defaults to the latest signed head)."""
        caller.authorize(READ_CERTIFICATES)
        with self._reader() as log:
            head = log.latest_tree_head()
            latest = head.tree_size if head is not None else 0
            second = latest if second is None else second
            for name, value in (("first", first), ("second", second)):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= latest:
                    raise ValidationFailed({name: [f"must be a tree size from 0 to {latest}"]})
            if first > second:
                raise ValidationFailed({"first": ["must not be larger than second"]})
            return log.consistency_proof(first, second).to_json()


def _is_uuid(value: str) -> bool:
    try:
        return len(value) == 36 and str(uuid.UUID(value)) == value
    except ValueError:
        return False


# -- offline verification -------------------------------------------------------------------------------------
class CertificateError(Exception):
    """A publication did not verify; ``step`` says which check failed (hash, leaf, inclusion proof...)."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"step '{step}': {message}")


@dataclass(frozen=True)
class Verified:
    """What a successful verification proved, and with which key."""

    entry: dict[str, Any]
    leaf_index: int
    tree_head: SignedTreeHead
    key_fingerprint: str
    key_pinned: bool
    checkpoint: SignedTreeHead | None

    def summary(self, name: str) -> str:
        """A few lines for a person: which publication the file is, and under which signed head."""
        entry, head = self.entry, self.tree_head
        signed = dt.datetime.fromtimestamp(head.timestamp / 1000, dt.UTC).isoformat(timespec="seconds")
        lines = [
            f"OK: {name} is exactly the file published as resource {entry['resource_id']} version "
            f"{entry['resource_version']} (dataset {entry['dataset_id']} version {entry['dataset_version']}, "
            f"organization {entry['organization_id']}), published at {entry['published_at']} UTC",
            f"  SHA-256 {entry['resource_sha256']}; log entry {self.leaf_index} of a tree of {head.tree_size}, "
            f"signed at {signed}",
            f"  key {self.key_fingerprint}"
            + ("" if self.key_pinned else " (taken from the proof file: pass --key to pin the publisher's key)"),
        ]
        if self.checkpoint is not None:
            lines.append(f"  consistent with your checkpoint of size {self.checkpoint.tree_size}")
        return "\n".join(lines)


def _check(step: str, condition: bool, message: str) -> None:
    if not condition:
        raise CertificateError(step, message)


def verify_publication(
    data: bytes,
    proof: bytes | str | Mapping[str, Any],
    *,
    key_pem: bytes | None = None,
    checkpoint: bytes | None = None,
) -> Verified:
    """Prove offline that ``data`` is the file a proof certifies: hash, leaf, inclusion, signed head, key.

    Parameters
    ----------
    data
        The file's bytes.
    proof
        The proof bundle (``GET /api/v1/opendata/certification/proof/{resource_id}``).
    key_pem
        The publisher's public key, obtained independently (pinned); without it the bundle's key is used and the
        result says so.
    checkpoint
        A checkpoint the verifier already holds (text or JSON): it must be signed by the key, and the proof's tree
        must be it or extend it (the bundle's consistency proof), else the log was rolled back or forked.

    Raises
    ------
    CertificateError
        Naming the step that failed.
    """
    try:
        bundle = json.loads(proof) if isinstance(proof, bytes | str) else dict(proof)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError("proof file", f"not valid JSON: {exc}") from exc
    _check(
        "proof file",
        isinstance(bundle, dict) and bundle.get("format") == PROOF_FORMAT,
        f'the proof must be a JSON object with "format": "{PROOF_FORMAT}"',
    )
    _check("proof file", set(bundle) == PROOF_KEYS, f"the proof must have exactly the keys {sorted(PROOF_KEYS)}")
    entry = bundle["entry"]
    _check(
        "proof file",
        isinstance(entry, dict) and set(entry) == ENTRY_KEYS and entry.get("type") == CERTIFICATE_TYPE,
        f"the certified entry must be a {CERTIFICATE_TYPE} object",
    )
    try:
        inclusion = InclusionProof.from_json(bundle["inclusion"])
        head = SignedTreeHead.from_json(bundle["checkpoint"])
    except VerificationError as exc:
        raise CertificateError("proof file", str(exc)) from exc

    digest = hashlib.sha256(data).hexdigest()
    _check(
        "hash",
        digest == entry["resource_sha256"],
        f"the file's SHA-256 is {digest}, the publication certifies {entry['resource_sha256']}: "
        "this is not the published file (modified, or the proof of another file)",
    )
    _check(
        "hash",
        entry["resource_size"] in (None, len(data)),
        f"the file has {len(data)} bytes, the publication certifies {entry['resource_size']}",
    )

    leaf = merkle.leaf_hash(canonical_entry(entry))
    _check(
        "leaf",
        inclusion.tree_size == head.tree_size and inclusion.leaf_index < head.tree_size,
        f"the inclusion proof is for entry {inclusion.leaf_index} of a tree of {inclusion.tree_size}, "
        f"the signed tree head has {head.tree_size} entries",
    )

    root = merkle.root_from_inclusion_path(leaf, inclusion.leaf_index, inclusion.tree_size, inclusion.audit_path)
    _check(
        "inclusion proof",
        root == head.root_hash,
        f"the audit path from entry {inclusion.leaf_index} does not lead to the signed root hash: the entry "
        "or the proof was changed",
    )

    pinned = key_pem is not None
    try:
        key = load_public_key(key_pem if key_pem is not None else str(bundle["public_key"]).encode("ascii"))
    except (VerificationError, UnicodeEncodeError) as exc:
        raise CertificateError("key", f"the public key is unusable: {exc}") from exc
    fingerprint = log_id(key).hex()
    _check(
        "signed tree head",
        head.log_id == log_id(key),
        f"the tree head names log {head.log_id.hex()[:16]}…, the key is {fingerprint[:16]}…: "
        "it was not signed by this key (a forged checkpoint, or another log)",
    )
    try:
        key.verify(head.signature, head.signed_bytes())
    except InvalidSignature as exc:
        raise CertificateError(
            "signed tree head",
            f"the signature of the tree head is not valid for key {fingerprint[:16]}… (a forged or altered checkpoint)",
        ) from exc
    if pinned:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        _check(
            "key",
            str(bundle["public_key"]).strip() == pem.decode("ascii").strip(),
            "the proof file names another key than the one you pinned",
        )

    held: SignedTreeHead | None = None
    if checkpoint is not None:
        try:
            held = parse_checkpoint(checkpoint)
        except VerificationError as exc:
            raise CertificateError("checkpoint", str(exc)) from exc
        _check("checkpoint", held.log_id == log_id(key), "your checkpoint was issued by another log or key")
        try:
            key.verify(held.signature, held.signed_bytes())
        except InvalidSignature as exc:
            raise CertificateError("checkpoint", "your checkpoint's signature is not valid for the key") from exc
        _check(
            "checkpoint",
            held.tree_size <= head.tree_size,
            f"the proof's tree ({head.tree_size} entries) is smaller than your checkpoint ({held.tree_size}): "
            "the log was rolled back, or the proof is stale (fetch it again with since="
            f"{held.tree_size})",
        )
        if held.tree_size == head.tree_size:
            _check(
                "checkpoint",
                held.root_hash == head.root_hash,
                f"your checkpoint and the proof's tree head have the same size {head.tree_size} but different "
                "roots: the log forked",
            )
        else:
            raw = bundle["consistency"]
            _check(
                "checkpoint",
                raw is not None,
                f"the proof carries no consistency proof from your checkpoint (size {held.tree_size}): fetch it "
                f"with since={held.tree_size}",
            )
            try:
                consistency = ConsistencyProof.from_json(raw)
            except VerificationError as exc:
                raise CertificateError("checkpoint", str(exc)) from exc
            _check(
                "checkpoint",
                (consistency.old_size, consistency.new_size) == (held.tree_size, head.tree_size)
                and merkle.verify_consistency(
                    held.tree_size, head.tree_size, held.root_hash, head.root_hash, consistency.consistency_path
                ),
                f"the tree of {head.tree_size} entries does not extend your checkpoint of {held.tree_size}: "
                "the log rewrote its history",
            )
    return Verified(dict(entry), inclusion.leaf_index, head, fingerprint, pinned, held)
