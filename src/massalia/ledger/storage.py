"""On-disk files of a ledger directory: fixed headers, checksummed append-only records, fsync discipline.

A ledger directory holds (all integers big-endian):

``entries.log``
    Header, then one record per entry: ``length (uint32) || canonical JSON || CRC-32 (uint32)`` where
    the CRC covers the length and the JSON. The source of truth.
``nodes.bin``
    Header, then the 32-byte hashes of every complete subtree in post-order (leaf, then the parents
    it completes). Derived from the entries; lets proofs be built in O(log n) reads.
``offsets.idx``
    Header, then the byte offset (uint64) of each committed record in ``entries.log``. The commit
    marker: an entry exists once its offset is here.
``sths.bin``
    Header, then fixed 116-byte signed tree heads: ``tree_size (uint64) || timestamp (uint64) ||
    root (32) || signature (64) || CRC-32 (uint32)``.
``signing-key.pem`` / ``public-key.pem``
    The Ed25519 key (PKCS#8, mode 0600) and its public half (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

HEADER_SIZE = 16
FORMAT_VERSION = 1
ENTRIES, NODES, OFFSETS, STHS = "entries.log", "nodes.bin", "offsets.idx", "sths.bin"
SIGNING_KEY, PUBLIC_KEY, LOCK = "signing-key.pem", "public-key.pem", "lock"
MAGIC = {ENTRIES: b"MSLEDGER-ENT", NODES: b"MSLEDGER-NOD", OFFSETS: b"MSLEDGER-OFF", STHS: b"MSLEDGER-STH"}

RECORD_OVERHEAD = 8
MAX_ENTRY_SIZE = 16 * 1024 * 1024
"""Largest accepted entry (16 MiB); a larger length prefix can only be damage."""
OFFSET_SIZE = 8
STH_RECORD = struct.Struct(">QQ32s64s")
STH_RECORD_SIZE = STH_RECORD.size + 4


class LedgerError(Exception):
    """A ledger cannot do what was asked (bad arguments, locked, missing key...)."""


class LedgerCorruptError(LedgerError):
    """The stored ledger is damaged or was altered; ``location`` names where.

    Parameters
    ----------
    message
        What is wrong.
    location
        File and position (entry index, byte offset, node...) of the damage.
    """

    def __init__(self, message: str, location: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location


class LedgerLockedError(LedgerError):
    """Another process has this ledger open for writing."""


class TornRecordError(LedgerError):
    """A record is incomplete or fails its checksum (a write that never completed, or damage)."""


def header(name: str) -> bytes:
    r"""The 16-byte header of a ledger file: a 12-byte magic and the format version (uint32).

    Examples
    --------
    >>> header(ENTRIES)
    b'MSLEDGER-ENT\x00\x00\x00\x01'
    """
    return MAGIC[name] + struct.pack(">I", FORMAT_VERSION)


def encode_record(payload: bytes) -> bytes:
    """Frame an entry: ``length || payload || CRC-32(length || payload)``.

    Examples
    --------
    >>> decode_record(encode_record(b"{}"), 0)
    (b'{}', 10)
    """
    if len(payload) > MAX_ENTRY_SIZE:
        raise LedgerError(f"entry of {len(payload)} bytes exceeds the {MAX_ENTRY_SIZE}-byte limit")
    framed = struct.pack(">I", len(payload)) + payload
    return framed + struct.pack(">I", zlib.crc32(framed))


def decode_record(buffer: bytes, offset: int) -> tuple[bytes, int]:
    """Read the record at ``offset`` of ``buffer``; return its payload and the offset after it.

    Raises
    ------
    TornRecordError
        If the record runs past the buffer or its checksum does not match.

    Examples
    --------
    >>> try:
    ...     decode_record(encode_record(b"ab")[:-1], 0)
    ... except TornRecordError as exc:
    ...     print(exc)
    record is incomplete: 9 of 4+2+4 bytes present
    """
    if len(buffer) - offset < 4:
        raise TornRecordError(f"record is incomplete: {len(buffer) - offset} bytes of its length present")
    (length,) = struct.unpack_from(">I", buffer, offset)
    if length > MAX_ENTRY_SIZE:
        raise TornRecordError(f"record length {length} exceeds the {MAX_ENTRY_SIZE}-byte limit")
    end = offset + 4 + length + 4
    if end > len(buffer):
        raise TornRecordError(f"record is incomplete: {len(buffer) - offset} of 4+{length}+4 bytes present")
    framed = buffer[offset : end - 4]
    (crc,) = struct.unpack_from(">I", buffer, end - 4)
    if zlib.crc32(framed) != crc:
        raise TornRecordError("record checksum mismatch")
    return bytes(framed[4:]), end


def encode_sth(tree_size: int, timestamp: int, root_hash: bytes, signature: bytes) -> bytes:
    """Frame a signed tree head as a fixed 116-byte record with its CRC-32.

    Examples
    --------
    >>> len(encode_sth(1, 2, bytes(32), bytes(64)))
    116
    """
    body = STH_RECORD.pack(tree_size, timestamp, root_hash, signature)
    return body + struct.pack(">I", zlib.crc32(body))


def decode_sth(record: bytes) -> tuple[int, int, bytes, bytes]:
    """Unframe a 116-byte tree-head record: ``(tree_size, timestamp, root_hash, signature)``.

    Raises
    ------
    TornRecordError
        If the record is short or fails its checksum.

    Examples
    --------
    >>> decode_sth(encode_sth(1, 2, bytes(32), bytes(64)))[:2]
    (1, 2)
    """
    if len(record) != STH_RECORD_SIZE:
        raise TornRecordError(f"tree-head record has {len(record)} of {STH_RECORD_SIZE} bytes")
    body = record[: STH_RECORD.size]
    (crc,) = struct.unpack_from(">I", record, STH_RECORD.size)
    if zlib.crc32(body) != crc:
        raise TornRecordError("tree-head record checksum mismatch")
    tree_size, timestamp, root_hash, signature = STH_RECORD.unpack(body)
    return tree_size, timestamp, root_hash, signature


def sync(fd: int) -> None:
    """Flush a file's data to stable storage (``fdatasync`` where the OS has it)."""
    getattr(os, "fdatasync", os.fsync)(fd)


def sync_directory(path: Path) -> None:
    """Make file creations and renames in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_exact(fd: int, offset: int, length: int, where: str) -> bytes:
    """Read exactly ``length`` bytes at ``offset``, or raise :class:`LedgerCorruptError` naming ``where``."""
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise LedgerCorruptError(f"incomplete: expected {length} bytes at byte {offset}, found {len(data)}", where)
    return data


def write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


@dataclass
class LedgerFiles:
    """Open file descriptors of a ledger directory, with the writer lock when opened for writing.

    Use :meth:`open`; the files are created (with headers, durably) the first time a writer opens
    an empty directory.
    """

    directory: Path
    readonly: bool
    fds: dict[str, int]
    lock_fd: int | None

    @classmethod
    def open(cls, directory: Path, *, readonly: bool) -> LedgerFiles:
        """Open (and for a writer, lock and create) the ledger files in ``directory``.

        Raises
        ------
        LedgerLockedError
            If another process holds the writer lock.
        LedgerCorruptError
            If a file is missing or has a wrong header.
        """
        lock_fd = None
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(lock_fd)
                raise LedgerLockedError(f"another process has the ledger {directory} open for writing") from exc
        if readonly and not (directory / ENTRIES).exists():
            raise LedgerError(f"no ledger in {directory}")
        files = cls(directory, readonly, {}, lock_fd)
        try:
            if not readonly and not (directory / ENTRIES).exists():
                files._create()
            flags = os.O_RDONLY if readonly else os.O_RDWR
            for name in (ENTRIES, NODES, OFFSETS, STHS):
                path = directory / name
                if not path.exists():
                    raise LedgerCorruptError("file is missing", name)
                files.fds[name] = os.open(path, flags)
                if os.pread(files.fds[name], HEADER_SIZE, 0) != header(name):
                    raise LedgerCorruptError("wrong header (not a ledger file of format 1, or damaged)", name)
        except BaseException:
            files.close()
            raise
        return files

    def _create(self) -> None:
        # entries.log last: its presence marks a fully created ledger, so a crash here is redone.
        for name in (NODES, OFFSETS, STHS, ENTRIES):
            fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, header(name), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            if name == STHS:
                sync_directory(self.directory)
        sync_directory(self.directory)

    def size(self, name: str) -> int:
        """Current byte size of one ledger file."""
        return os.fstat(self.fds[name]).st_size

    def truncate(self, name: str, size: int) -> None:
        """Cut a file back to ``size`` bytes, durably (used to drop uncommitted tails)."""
        os.ftruncate(self.fds[name], size)
        os.fsync(self.fds[name])

    def close(self) -> None:
        """Close every descriptor and release the writer lock."""
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = {}
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)  # closing releases the flock
            self.lock_fd = None
