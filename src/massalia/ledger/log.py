"""The append-only transparency log: entries, signed tree heads and proofs, persisted crash-safely."""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from massalia.ledger import merkle
from massalia.ledger.integrity import VerificationReport, check_tails, verify_ledger
from massalia.ledger.keys import load_public_key_file, public_key_pem, signing_key_for
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
    LedgerCorruptError,
    LedgerError,
    LedgerFiles,
    TornRecordError,
    decode_record,
    decode_sth,
    encode_record,
    encode_sth,
    read_exact,
    sync,
    write_all,
)
from massalia.ledger.verify import (
    ConsistencyProof,
    InclusionProof,
    SignedTreeHead,
    canonical_entry,
    log_id,
    sth_signed_bytes,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogEntry:
    """One entry of the log.

    Attributes
    ----------
    index
        Position in the log, from 0.
    leaf_hash
        ``SHA-256(0x00 || data)``, the entry's leaf in the Merkle tree.
    data
        The canonical JSON bytes of the entry (see :func:`massalia.ledger.verify.canonical_entry`).
    """

    index: int
    leaf_hash: bytes
    data: bytes

    @property
    def entry(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass(frozen=True)
class _State:
    # Replaced as a whole under the write lock, so a reader's snapshot is always consistent.
    size: int
    entries_end: int
    frontier: tuple[bytes, ...]
    sth_count: int
    last_sth: SignedTreeHead | None

    @property
    def nodes_end(self) -> int:
        return HEADER_SIZE + merkle.HASH_SIZE * merkle.nodes_for_size(self.size)

    @property
    def offsets_end(self) -> int:
        return HEADER_SIZE + OFFSET_SIZE * self.size

    @property
    def sths_end(self) -> int:
        return HEADER_SIZE + STH_RECORD_SIZE * self.sth_count


@dataclass
class _Pending:
    # One caller's batch waiting in the group-commit queue.
    payloads: list[bytes]
    result: list[LogEntry] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TransparencyLog:
    """An append-only Merkle transparency log (RFC 9162 hashing) stored in one directory.

    Entries are JSON objects, stored as canonical JSON; each append is durable (fsync) before it
    returns. Signed tree heads (Ed25519) are issued on demand and all kept. Proofs are built from the
    stored subtree hashes in O(log n) reads. One writer process at a time (a file lock); within it,
    appends are serialized by a thread lock and readers never block.

    Parameters
    ----------
    directory
        The ledger directory (in production ``MASSALIA_HOME/ledger``); created on first use.
    signing_key
        The Ed25519 key to sign tree heads with. By default the one stored in the directory,
        created (mode 0600) the first time.
    readonly
        Open without the writer lock, without recovery and without the private key: reads, proofs
        and :meth:`verify` of the entries committed when the log was opened.
    clock
        Milliseconds since the epoch, for tree-head timestamps (tests pass a fixed clock).

    Examples
    --------
    >>> with TransparencyLog(tmp_path / "ledger") as log:  # doctest: +SKIP
    ...     entry = log.append({"actor": "dr.martin", "action": "view", "resource": "person/42"})
    ...     sth = log.tree_head()
    ...     proof = log.inclusion_proof(entry.index, sth.tree_size)
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        readonly: bool = False,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        self._clock = clock or _now_ms
        self._write_lock = threading.Lock()  # serializes writes to the files
        self._queue_lock = threading.Condition()  # guards the group-commit queue below
        self._queue: list[_Pending] = []
        self._leader_busy = False
        self._failed: str | None = None
        notes: list[str] = []
        for attempt in range(3 if readonly else 1):
            try:
                self._open(signing_key, notes)
                break
            except LedgerCorruptError:
                # A reader can catch a concurrent writer mid-write (a half-written offset or tree
                # head): look again shortly; damage that persists is reported.
                if attempt == 2 or not readonly:
                    raise
                time.sleep(0.05)
        self.recovery: tuple[str, ...] = tuple(notes)
        """What opening repaired after a crash (uncommitted tails dropped or rolled forward)."""
        for note in notes:
            logger.warning("ledger %s: %s", self.directory, note)

    def _open(self, signing_key: Ed25519PrivateKey | None, notes: list[str]) -> None:
        self._files = LedgerFiles.open(self.directory, readonly=self.readonly)
        try:
            self._signing_key: Ed25519PrivateKey | None = None
            if self.readonly:
                if not (self.directory / PUBLIC_KEY).exists():
                    raise LedgerCorruptError("file is missing", PUBLIC_KEY)
                self._public_key: Ed25519PublicKey = load_public_key_file(self.directory / PUBLIC_KEY)
            else:
                self._signing_key = signing_key_for(self.directory, signing_key, SIGNING_KEY, PUBLIC_KEY)
                self._public_key = self._signing_key.public_key()
            self._log_id = log_id(self._public_key)
            self._state = self._open_entries(notes)
            self._state = self._open_tree_heads(self._state, notes)
        except BaseException:
            self._files.close()
            raise

    # -- opening and crash recovery -------------------------------------------------------------

    def _open_entries(self, notes: list[str]) -> _State:
        files = self._files
        indexed, partial = divmod(files.size(OFFSETS) - HEADER_SIZE, OFFSET_SIZE)
        if partial and not self.readonly:
            files.truncate(OFFSETS, HEADER_SIZE + indexed * OFFSET_SIZE)
            notes.append(f"dropped {partial} bytes of an offset being written when the log stopped")
        stored_nodes = (files.size(NODES) - HEADER_SIZE) // merkle.HASH_SIZE
        needed = merkle.nodes_for_size(indexed)
        if stored_nodes < needed:
            raise LedgerCorruptError(f"{stored_nodes} hashes stored, {indexed} entries need {needed}", NODES)
        entries_end = HEADER_SIZE
        if indexed:
            offset = self._offset(indexed - 1)
            payload, entries_end = self._record(indexed - 1, offset)
            if merkle.leaf_hash(payload) != self._node(0, indexed - 1):
                raise LedgerCorruptError(
                    "the last entry's leaf hash differs from the stored one", f"{ENTRIES} entry {indexed - 1}"
                )
        frontier = tuple(self._node(level, i) for level, i in merkle.frontier_positions(indexed))
        state = _State(indexed, entries_end, frontier, 0, None)
        if self.readonly:
            return state
        if files.size(NODES) > state.nodes_end:
            files.truncate(NODES, state.nodes_end)
        tail_size = files.size(ENTRIES) - entries_end
        if tail_size <= 0:
            return state
        tail = read_exact(files.fds[ENTRIES], entries_end, tail_size, ENTRIES)
        payloads: list[bytes] = []
        position = 0
        while position < tail_size:
            try:
                payload, after = decode_record(tail, position)
                if canonical_entry(payload) != payload:
                    raise TornRecordError("record is not a canonical JSON entry")
            except (TornRecordError, ValueError) as exc:
                files.truncate(ENTRIES, entries_end + position)
                notes.append(
                    f"discarded {tail_size - position} bytes at byte {entries_end + position} of {ENTRIES}: "
                    f"a write that never completed ({exc}); that append never returned"
                )
                break
            payloads.append(payload)
            position = after
        if payloads:
            state = self._commit(state, payloads, entries_written=True)
            notes.append(f"rolled forward {len(payloads)} entries written durably before a crash but not yet indexed")
        return state

    def _open_tree_heads(self, state: _State, notes: list[str]) -> _State:
        files = self._files
        count, partial = divmod(files.size(STHS) - HEADER_SIZE, STH_RECORD_SIZE)
        if partial and not self.readonly:
            files.truncate(STHS, HEADER_SIZE + count * STH_RECORD_SIZE)
            notes.append(f"dropped {partial} bytes of a tree head being written when the log stopped")
        last = None
        while count and last is None:
            raw = read_exact(files.fds[STHS], HEADER_SIZE + (count - 1) * STH_RECORD_SIZE, STH_RECORD_SIZE, STHS)
            try:
                last = self._tree_head_from(raw)
            except TornRecordError as exc:
                # A crash can leave a fully sized record of zeros; anything else is damage.
                if any(raw):
                    raise LedgerCorruptError(str(exc), f"{STHS} tree head #{count - 1}") from exc
                count -= 1
                if not self.readonly:
                    files.truncate(STHS, HEADER_SIZE + count * STH_RECORD_SIZE)
                notes.append("dropped a zero-filled tree head left by a crash")
        if last is not None and last.tree_size > state.size:
            raise LedgerCorruptError(
                f"tree head #{count - 1} was signed for {last.tree_size} entries but only {state.size} "
                "are stored: entries were removed",
                ENTRIES,
            )
        return _State(state.size, state.entries_end, state.frontier, count, last)

    # -- low-level reads --------------------------------------------------------------------------

    def _offset(self, index: int) -> int:
        raw = read_exact(
            self._files.fds[OFFSETS], HEADER_SIZE + index * OFFSET_SIZE, OFFSET_SIZE, f"{OFFSETS} entry {index}"
        )
        (offset,) = struct.unpack(">Q", raw)
        return int(offset)

    def _record(self, index: int, offset: int) -> tuple[bytes, int]:
        where = f"{ENTRIES} entry {index} (byte {offset})"
        fd = self._files.fds[ENTRIES]
        if offset < HEADER_SIZE:
            raise LedgerCorruptError(f"recorded offset {offset} points into the file header", where)
        (length,) = struct.unpack(">I", read_exact(fd, offset, 4, where))
        if length > MAX_ENTRY_SIZE:
            raise LedgerCorruptError(f"record length {length} exceeds the limit", where)
        try:
            payload, end = decode_record(read_exact(fd, offset, 8 + length, where), 0)
        except TornRecordError as exc:
            raise LedgerCorruptError(str(exc), where) from exc
        return payload, offset + end

    def _node(self, level: int, index: int) -> bytes:
        position = merkle.postorder_position(level, index)
        where = f"{NODES} hash #{position} (level {level}, index {index})"
        return read_exact(self._files.fds[NODES], HEADER_SIZE + position * merkle.HASH_SIZE, merkle.HASH_SIZE, where)

    def _tree_head_from(self, raw: bytes) -> SignedTreeHead:
        tree_size, timestamp, root_hash, signature = decode_sth(raw)
        return SignedTreeHead(tree_size, timestamp, root_hash, self._log_id, signature)

    # -- writing ---------------------------------------------------------------------------------

    def _commit(self, state: _State, payloads: list[bytes], *, entries_written: bool = False) -> _State:
        records = [encode_record(payload) for payload in payloads]
        offsets = bytearray()
        position = state.entries_end
        for record in records:
            offsets += struct.pack(">Q", position)
            position += len(record)
        frontier = list(state.frontier)
        nodes = bytearray()
        for i, payload in enumerate(payloads):
            for digest in merkle.append_to_frontier(frontier, merkle.leaf_hash(payload), state.size + i):
                nodes += digest
        fds = self._files.fds
        try:
            # Order matters for recovery: entries, then their hashes, then the offsets that commit them.
            if not entries_written:
                write_all(fds[ENTRIES], b"".join(records), state.entries_end)
                sync(fds[ENTRIES])
            write_all(fds[NODES], bytes(nodes), state.nodes_end)
            sync(fds[NODES])
            write_all(fds[OFFSETS], bytes(offsets), state.offsets_end)
            sync(fds[OFFSETS])
        except BaseException as exc:
            self._failed = f"an append failed ({exc!r}); reopen the ledger to recover"
            raise
        return _State(state.size + len(payloads), position, tuple(frontier), state.sth_count, state.last_sth)

    def _check_writable(self) -> None:
        if self.readonly or self._signing_key is None:
            raise LedgerError("this ledger was opened read-only")
        if self._failed:
            raise LedgerError(self._failed)

    def append(self, entry: Mapping[str, Any]) -> LogEntry:
        """Append one entry (a JSON object) durably; return its index and leaf hash.

        Raises
        ------
        ValueError
            If the entry is not a JSON object that can be written as canonical JSON.

        Examples
        --------
        >>> log.append({"actor": "dpo", "action": "approve", "resource": "request/7"}).index  # doctest: +SKIP
        0
        """
        return self.append_many([entry])[0]

    def append_many(self, entries: Iterable[Mapping[str, Any]]) -> list[LogEntry]:
        """Append several entries with one write and one fsync per file; all or none are committed.

        Safe to call from many threads: concurrent calls are committed together (group commit).

        Examples
        --------
        >>> [e.index for e in log.append_many([{"n": 1}, {"n": 2}])]  # doctest: +SKIP
        [0, 1]
        """
        payloads = [canonical_entry(entry) for entry in entries]
        if not payloads:
            return []
        too_large = [i for i, payload in enumerate(payloads) if len(payload) > MAX_ENTRY_SIZE]
        if too_large:  # refused here, so it cannot fail the other callers of a group commit
            raise ValueError(f"entry {too_large[0]} of the batch exceeds {MAX_ENTRY_SIZE} bytes of canonical JSON")
        # Group commit: concurrent callers queue their batches; one of them (the leader) writes every
        # queued batch with a single fsync per file while the others wait, so N threads pay for one
        # fsync round instead of N. Each batch is still all-or-nothing.
        pending = _Pending(payloads)
        with self._queue_lock:
            self._queue.append(pending)
            while not pending.finished:
                if self._leader_busy:
                    self._queue_lock.wait()
                    continue
                self._leader_busy = True
                batch, self._queue = self._queue, []
                self._queue_lock.release()
                try:
                    self._commit_group(batch)
                finally:
                    self._queue_lock.acquire()
                    self._leader_busy = False
                    self._queue_lock.notify_all()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _commit_group(self, batch: list[_Pending]) -> None:
        try:
            with self._write_lock:
                self._check_writable()
                state = self._state
                self._state = self._commit(state, [p for pending in batch for p in pending.payloads])
        except BaseException as exc:  # handed to every waiting caller, re-raised in its own thread
            for pending in batch:
                pending.error = exc
                pending.finished = True
            return
        index = state.size
        for pending in batch:
            pending.result = [
                LogEntry(index + i, merkle.leaf_hash(payload), payload) for i, payload in enumerate(pending.payloads)
            ]
            index += len(pending.payloads)
            pending.finished = True

    def tree_head(self) -> SignedTreeHead:
        """Sign, store durably and return a tree head for the current size.

        Examples
        --------
        >>> log.tree_head().tree_size  # doctest: +SKIP
        2
        """
        with self._write_lock:
            self._check_writable()
            if self._signing_key is None:  # for the type checker; _check_writable ensured it
                raise LedgerError("no signing key")
            state = self._state
            root = merkle.fold_frontier(state.frontier)
            timestamp = max(self._clock(), state.last_sth.timestamp if state.last_sth else 0)
            signature = self._signing_key.sign(sth_signed_bytes(state.size, timestamp, root, self._log_id))
            fd = self._files.fds[STHS]
            try:
                write_all(fd, encode_sth(state.size, timestamp, root, signature), state.sths_end)
                sync(fd)
            except BaseException as exc:
                self._failed = f"storing a tree head failed ({exc!r}); reopen the ledger to recover"
                raise
            head = SignedTreeHead(state.size, timestamp, root, self._log_id, signature)
            self._state = _State(state.size, state.entries_end, state.frontier, state.sth_count + 1, head)
        return head

    # -- reading ---------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._state.size

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 key that verifies this log's tree heads."""
        return self._public_key

    @property
    def public_key_pem(self) -> bytes:
        """The public key as PEM, to hand to third parties."""
        return public_key_pem(self._public_key)

    @property
    def log_id(self) -> bytes:
        """SHA-256 of the public key (DER), carried in every signed tree head."""
        return self._log_id

    def get(self, index: int) -> LogEntry:
        """Return entry ``index``, checking its stored checksum.

        Raises
        ------
        IndexError
            If there is no such committed entry.
        LedgerCorruptError
            If the stored record is damaged.

        Examples
        --------
        >>> log.get(0).entry["action"]  # doctest: +SKIP
        'approve'
        """
        if not 0 <= index < self._state.size:
            raise IndexError(f"entry {index} does not exist (the log has {self._state.size} entries)")
        payload, _ = self._record(index, self._offset(index))
        return LogEntry(index, merkle.leaf_hash(payload), payload)

    def _tree_size(self, tree_size: int | None) -> int:
        size = self._state.size
        if tree_size is None:
            return size
        if not 0 <= tree_size <= size:
            raise ValueError(f"tree size {tree_size} is outside 0..{size}")
        return tree_size

    def root(self, tree_size: int | None = None) -> bytes:
        """Merkle Tree Hash of the first ``tree_size`` entries (all committed entries by default).

        Examples
        --------
        >>> log.root() == log.tree_head().root_hash  # doctest: +SKIP
        True
        """
        state = self._state
        if tree_size is None or tree_size == state.size:
            return merkle.fold_frontier(state.frontier)
        return merkle.range_hash(0, self._tree_size(tree_size), self._node)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``index`` is in the tree of the first ``tree_size`` entries.

        Examples
        --------
        >>> log.inclusion_proof(0, 2).to_json()["audit_path"]  # doctest: +SKIP
        ['...']
        """
        size = self._tree_size(tree_size)
        return InclusionProof(index, size, tuple(merkle.inclusion_path(index, size, self._node)))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``new_size`` entries extends the tree of ``old_size`` entries.

        Examples
        --------
        >>> log.consistency_proof(1, 2).to_json()["consistency_path"]  # doctest: +SKIP
        ['...']
        """
        size = self._tree_size(new_size)
        old = self._tree_size(old_size)
        return ConsistencyProof(old, size, tuple(merkle.consistency_path(old, size, self._node)))

    def latest_tree_head(self) -> SignedTreeHead | None:
        """The last tree head issued, or ``None`` before the first."""
        return self._state.last_sth

    def tree_heads(self) -> list[SignedTreeHead]:
        """Every tree head issued, oldest first.

        Raises
        ------
        LedgerCorruptError
            If a stored tree head is damaged.
        """
        state = self._state
        heads = []
        for k in range(state.sth_count):
            where = f"{STHS} tree head #{k}"
            raw = read_exact(self._files.fds[STHS], HEADER_SIZE + k * STH_RECORD_SIZE, STH_RECORD_SIZE, where)
            try:
                heads.append(self._tree_head_from(raw))
            except TornRecordError as exc:
                raise LedgerCorruptError(str(exc), where) from exc
        return heads

    def verify(self) -> VerificationReport:
        """Recompute everything from the stored entries and check every stored hash and tree head.

        Checks each record's framing and checksum, that each entry is canonical JSON, each stored
        offset and subtree hash, every signed tree head's signature and root, and the key files.

        Returns
        -------
        VerificationReport
            ``ok`` and, when not, the problems found with the first bad entry index.

        Examples
        --------
        >>> report = log.verify()  # doctest: +SKIP
        >>> report.ok, report.first_bad_index  # doctest: +SKIP
        (True, None)
        """
        state = self._state
        report = verify_ledger(self._files, state.size, state.sth_count, self._public_key)
        if self.readonly:
            return report  # a writer elsewhere may be appending: bytes past the snapshot are expected
        with self._write_lock:  # the files' sizes must be exactly the committed data
            current = self._state
            tails = check_tails(self._files, current.size, current.entries_end, current.sth_count)
        if not tails:
            return report
        return dataclasses.replace(report, ok=False, problems=report.problems + tuple(tails))

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the files and release the writer lock."""
        with self._write_lock:
            self._files.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
