"""Full check of a stored ledger: recompute every hash from the entries and check every tree head."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from massalia.ledger import merkle
from massalia.ledger.keys import load_public_key_file, load_signing_key, public_key_pem
from massalia.ledger.storage import (
    ENTRIES,
    HEADER_SIZE,
    MAX_ENTRY_SIZE,
    NODES,
    OFFSET_SIZE,
    OFFSETS,
    PUBLIC_KEY,
    SIGNING_KEY,
    STH_RECORD_SIZE,
    STHS,
    LedgerError,
    LedgerFiles,
    TornRecordError,
    decode_record,
    decode_sth,
)
from massalia.ledger.verify import canonical_entry, log_id, sth_signed_bytes


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :meth:`massalia.ledger.log.TransparencyLog.verify`.

    Attributes
    ----------
    ok
        True when no problem was found.
    tree_size
        Number of committed entries checked against.
    tree_heads
        Number of stored signed tree heads.
    first_bad_index
        Smallest entry index involved in a problem, if any.
    problems
        One line per problem, each naming the file and the entry, hash or tree head.
    """

    ok: bool
    tree_size: int
    tree_heads: int
    first_bad_index: int | None
    problems: tuple[str, ...]

    def summary(self) -> str:
        """One human-readable paragraph.

        Examples
        --------
        >>> VerificationReport(True, 3, 1, None, ()).summary()
        'ledger OK: 3 entries and 1 signed tree heads verified'
        """
        if self.ok:
            return f"ledger OK: {self.tree_size} entries and {self.tree_heads} signed tree heads verified"
        lines = [f"ledger FAILED ({len(self.problems)} problems; first bad entry: {self.first_bad_index})"]
        return "\n".join(lines + [f"  - {p}" for p in self.problems])


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    first_bad_index: int | None = None

    def add(self, message: str, index: int | None = None) -> None:
        self.problems.append(message)
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index


def _check_keys(directory: Path, public_key: Ed25519PublicKey, findings: _Findings) -> None:
    expected = public_key_pem(public_key)
    try:
        if load_public_key_file(directory / PUBLIC_KEY) != public_key:
            findings.add(f"{PUBLIC_KEY}: not the key this log signs with")
    except (LedgerError, OSError) as exc:
        findings.add(f"{PUBLIC_KEY}: {exc}")
    private = directory / SIGNING_KEY
    try:
        if private.exists() and public_key_pem(load_signing_key(private).public_key()) != expected:
            findings.add(f"{SIGNING_KEY}: its public half is not the log's public key")
    except PermissionError:
        pass  # a read-only checker may not be allowed to read the private key; nothing to check then
    except (LedgerError, OSError) as exc:
        findings.add(f"{SIGNING_KEY}: {exc}")


def _read_tree_heads(
    files: LedgerFiles, count: int, findings: _Findings
) -> list[tuple[int, int, int, bytes, bytes] | None]:
    heads: list[tuple[int, int, int, bytes, bytes] | None] = []
    with (files.directory / STHS).open("rb") as stream:
        stream.seek(HEADER_SIZE)
        for k in range(count):
            try:
                heads.append((k, *decode_sth(stream.read(STH_RECORD_SIZE))))
            except TornRecordError as exc:
                findings.add(f"{STHS} tree head #{k}: {exc}")
                heads.append(None)
    return heads


class _NodeStream:
    """Sequential reader of the stored post-order node hashes."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0
        stream.seek(HEADER_SIZE)

    def next(self) -> bytes:
        self.position += 1
        return self.stream.read(merkle.HASH_SIZE)


def _check_entries(
    files: LedgerFiles, size: int, wanted_roots: set[int], findings: _Findings
) -> tuple[int, dict[int, bytes]]:
    """Scan entries, offsets and nodes; return how many entries were readable and the wanted roots."""
    raw_offsets = files.directory / OFFSETS
    with raw_offsets.open("rb") as stream:
        stream.seek(HEADER_SIZE)
        offsets = stream.read(size * OFFSET_SIZE)
    if len(offsets) < size * OFFSET_SIZE:
        findings.add(f"{OFFSETS}: holds {len(offsets) // OFFSET_SIZE} offsets for {size} entries")
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    frontier: list[bytes] = []  # recomputed from the entries
    stored_frontier: list[bytes] = []  # as read from nodes.bin
    position = HEADER_SIZE
    readable = 0
    with (files.directory / ENTRIES).open("rb") as entries, (files.directory / NODES).open("rb") as node_file:
        entries.seek(HEADER_SIZE)
        nodes = _NodeStream(node_file)
        for index in range(size):
            where = f"{ENTRIES} entry {index} (byte {position})"
            if (index + 1) * OFFSET_SIZE <= len(offsets):
                (recorded,) = struct.unpack_from(">Q", offsets, index * OFFSET_SIZE)
                if recorded != position:
                    findings.add(f"{OFFSETS} entry {index}: records byte {recorded}, the entry is at {position}", index)
            head = entries.read(4)
            length = struct.unpack(">I", head)[0] if len(head) == 4 else 0
            if len(head) < 4 or length > MAX_ENTRY_SIZE:
                findings.add(f"{where}: record header is damaged or missing", index)
                break
            record = head + entries.read(length + 4)
            try:
                payload, _ = decode_record(record, 0)
            except TornRecordError as exc:
                findings.add(f"{where}: {exc}", index)
                break
            try:
                canonical = canonical_entry(payload) == payload
            except ValueError:
                canonical = False
            if not canonical:
                findings.add(f"{where}: not a canonical JSON object", index)
            leaf = merkle.leaf_hash(payload)
            created = merkle.append_to_frontier(frontier, leaf, index)
            # Each stored hash is checked locally (a leaf against its entry, a parent against its
            # stored children), so a finding names the damaged hash, not all its ancestors.
            stored = nodes.next()
            if stored != leaf:
                where_leaf = f"{NODES} hash #{nodes.position - 1}"
                findings.add(f"{ENTRIES} entry {index}: leaf hash differs from {where_leaf}", index)
            for level in range(1, len(created)):
                parent = nodes.next()
                if parent != merkle.node_hash(stored_frontier.pop(), stored):
                    first = ((index + 1 >> level) - 1) << level
                    findings.add(
                        f"{NODES} hash #{nodes.position - 1}: stored hash of the subtree of entries "
                        f"{first}..{index} is not the hash of its stored children",
                        first,
                    )
                stored = parent
            stored_frontier.append(stored)
            position += len(record)
            readable = index + 1
            if readable in wanted_roots:
                roots[readable] = merkle.fold_frontier(frontier)
    return readable, roots


def verify_ledger(files: LedgerFiles, size: int, tree_heads: int, public_key: Ed25519PublicKey) -> VerificationReport:
    """Check a ledger's files in full against the ``size`` committed entries.

    Parameters
    ----------
    files
        The open ledger files.
    size
        Number of committed entries.
    public_key
        The key every tree head must be signed with.
    tree_heads
        Number of stored tree heads to check (those issued when ``size`` was read: a concurrent
        writer may append more while the check runs).

    Examples
    --------
    >>> verify_ledger(files, 10, 2, key).ok  # doctest: +SKIP
    True
    """
    findings = _Findings()
    _check_keys(files.directory, public_key, findings)
    heads = _read_tree_heads(files, tree_heads, findings)
    wanted = {head[1] for head in heads if head is not None and head[1] <= size}
    readable, roots = _check_entries(files, size, wanted, findings)
    identity = log_id(public_key)
    previous: tuple[int, int] = (0, 0)
    for head in heads:
        if head is None:
            continue
        k, tree_size, timestamp, root_hash, signature = head
        where = f"{STHS} tree head #{k} (size {tree_size})"
        try:
            public_key.verify(signature, sth_signed_bytes(tree_size, timestamp, root_hash, identity))
        except InvalidSignature:
            findings.add(f"{where}: signature is not valid for the log's key")
        if tree_size > size:
            findings.add(f"{where}: covers more entries than the {size} stored", size)
        elif tree_size in roots and roots[tree_size] != root_hash:
            findings.add(f"{where}: signed root differs from the root of the stored entries 0..{tree_size - 1}")
        elif tree_size not in roots:
            findings.add(f"{where}: not checked, entry {readable} is unreadable", readable)
        if tree_size < previous[0] or timestamp < previous[1]:
            findings.add(f"{where}: smaller size or older timestamp than the tree head before it")
        previous = (tree_size, timestamp)
    return VerificationReport(
        ok=not findings.problems,
        tree_size=size,
        tree_heads=len(heads),
        first_bad_index=findings.first_bad_index,
        problems=tuple(findings.problems),
    )


def check_tails(files: LedgerFiles, size: int, entries_end: int, tree_heads: int) -> list[str]:
    """Bytes past the committed data of each file, which a writer's own files must not have.

    Examples
    --------
    >>> check_tails(files, 10, 2_376, 2)  # doctest: +SKIP
    []
    """
    expected = {
        ENTRIES: entries_end,
        NODES: HEADER_SIZE + merkle.HASH_SIZE * merkle.nodes_for_size(size),
        OFFSETS: HEADER_SIZE + OFFSET_SIZE * size,
        STHS: HEADER_SIZE + STH_RECORD_SIZE * tree_heads,
    }
    return [
        f"{name}: {files.size(name)} bytes where the committed data takes {length}"
        for name, length in expected.items()
        if files.size(name) != length
    ]
