"""Keyed pseudonyms and per-person date shifts, computed over whole Arrow columns.

A project receives its own secret key (``Governance.project_key``). From it and the project id this
module derives, for every person id:

- a **pseudonym**: HMAC-SHA256 of the id, truncated to 80 bits and written as 16 Crockford base32
  characters behind a project prefix (``p12-7Q3M0K9XWJ4T2V1H``). The same person has unrelated
  pseudonyms in two projects, and without the key a pseudonym cannot be linked back to its id
  (an attacker who tries every id still needs the key for each try);
- a **date shift**: a whole number of days in ``[-N, -1] ∪ [1, N]`` drawn from another keyed hash of
  the id. Every date of a person moves by the same shift, so intervals (age at diagnosis, survival,
  time between treatments) are kept exactly, while calendar dates are hidden.

The two values come from separate sub-keys (domain separation), so a leaked shift tells nothing about
a pseudonym. The hash itself is the one per-row step; it runs in a tight loop over pre-keyed SHA-256
states (the RFC 2104 construction, about 0.6 µs an id); everything around it (reading the ids,
encoding, building the output column, shifting dates) is vectorised with Arrow and NumPy.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PSEUDONYM_BITS = 80
"""Bits of the keyed hash kept in a pseudonym: collisions are negligible below 10^10 persons."""

PSEUDONYM_CHARS = PSEUDONYM_BITS // 5
"""Length of the hash part of a pseudonym (Crockford base32, 5 bits a character)."""

MIN_KEY_BYTES = 16
"""Shortest project key accepted (128 bits)."""

MAX_SHIFT_DAYS = 3650
"""Largest date shift amplitude accepted (ten years)."""

SCHEME = "HMAC-SHA256/crockford-base32-80/v1"
"""Name of the pseudonym scheme, written in extract manifests so a reader knows how ids were made."""

_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
_PROJECT = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_DIGEST_BYTES = 32
_DAY_UNITS = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}

IdColumn: TypeAlias = pa.Array | pa.ChunkedArray | Sequence[int] | Sequence[str]


class KeyedHash:
    """HMAC-SHA256 under one key, with the padded key states computed once.

    ``digests`` gives exactly ``hmac.digest(key, message, "sha256")`` for each message, about twice as
    fast as calling ``hmac.digest`` per message because the two key blocks are hashed only once.

    Parameters
    ----------
    key
        The secret key (any length; keys longer than the SHA-256 block are hashed first, as RFC 2104 says).

    Examples
    --------
    >>> KeyedHash(b"k" * 32).digests([b"1"]) == hmac.digest(b"k" * 32, b"1", "sha256")
    True
    """

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def digests(self, messages: Sequence[bytes]) -> bytes:
        """The 32-byte MACs of ``messages``, concatenated in order."""
        inner, outer = self._inner, self._outer
        out = bytearray(_DIGEST_BYTES * len(messages))
        position = 0
        for message in messages:
            state = inner.copy()
            state.update(message)
            final = outer.copy()
            final.update(state.digest())
            out[position : position + _DIGEST_BYTES] = final.digest()
            position += _DIGEST_BYTES
        return bytes(out)


def check_project(project: int | str) -> str:
    """Return the project id as text, or raise ``ValueError`` if it cannot appear in a pseudonym prefix."""
    text = str(project)
    if isinstance(project, bool) or not _PROJECT.match(text):
        raise ValueError(f"invalid project id {project!r}: use 1-32 letters, digits or '_'")
    return text


def check_key(key: bytes) -> bytes:
    """Return ``key`` if it is bytes of at least ``MIN_KEY_BYTES``, else raise a clear error."""
    if not isinstance(key, bytes | bytearray):
        raise TypeError(f"the project key must be bytes, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the project key is {len(key)} bytes long; at least {MIN_KEY_BYTES} are required")
    return bytes(key)


def pseudonym_prefix(project: int | str) -> str:
    """The prefix every pseudonym of ``project`` starts with.

    Examples
    --------
    >>> pseudonym_prefix(12)
    'p12-'
    """
    return f"p{check_project(project)}-"


def _subkey(key: bytes, project: str, purpose: bytes) -> KeyedHash:
    """A keyed hash for one purpose of one project (domain separation of pseudonyms and shifts)."""
    label = b"massalia/v1/" + purpose + b"/" + project.encode("ascii")
    return KeyedHash(hmac.digest(check_key(key), label, "sha256"))


def _as_array(ids: IdColumn) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        return ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if isinstance(ids, pa.Array):
        return ids
    return pa.array(ids)


def _messages(ids: pa.Array) -> list[bytes]:
    """The canonical bytes of each non-null id: integers in decimal, text as UTF-8, binary as is."""
    kind = ids.type
    if pa.types.is_integer(kind):
        text = pc.cast(ids.drop_null(), pa.string())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = ids.drop_null()
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        binaries: list[bytes] = ids.drop_null().to_pylist()
        return binaries
    else:
        raise TypeError(f"person ids must be integers, text or binary, got Arrow type {kind}")
    return [value.encode("utf-8") for value in text.to_pylist()]


def _scatter(values: pa.Array, ids: pa.Array) -> pa.Array:
    """Put ``values`` (one per non-null id) back at the positions of the non-null ids; nulls stay null."""
    if ids.null_count == 0:
        return values
    positions = np.cumsum(np.asarray(ids.is_valid(), dtype=np.int64)) - 1
    return pc.if_else(ids.is_valid(), values.take(pa.array(np.maximum(positions, 0))), pa.nulls(len(ids), values.type))


def keyed_digests(ids: IdColumn, *, key: bytes, project: int | str, purpose: str) -> np.ndarray:
    """HMAC-SHA256 digests of the non-null ``ids`` under the project's sub-key for ``purpose``.

    Returns a ``(n, 32)`` ``uint8`` array, one row per non-null id, in order.
    """
    array = _as_array(ids)
    hasher = _subkey(key, check_project(project), purpose.encode("ascii"))
    raw = hasher.digests(_messages(array))
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, _DIGEST_BYTES)


def pseudonymize(ids: IdColumn, *, key: bytes, project: int | str) -> pa.Array:
    """Replace person ids by the project's keyed pseudonyms (a string column; null ids stay null).

    Parameters
    ----------
    ids
        Person ids: an Arrow integer/string column or a Python sequence.
    key
        The project's secret key (``Governance.project_key(project_id)``), at least 16 bytes.
    project
        The project id; it is both part of the derived key and the visible prefix.

    Returns
    -------
    pyarrow.Array
        ``p<project>-`` followed by 16 Crockford base32 characters, one per id.

    Examples
    --------
    >>> out = pseudonymize([1, 2, 1], key=b"0" * 32, project=7)
    >>> out[0] == out[2], out[0] == out[1], len(out[0].as_py())
    (True, False, 19)
    """
    array = _as_array(ids)
    digests = keyed_digests(array, key=key, project=project, purpose="pseudonym")
    prefix = np.frombuffer(pseudonym_prefix(project).encode("ascii"), dtype=np.uint8)
    count = digests.shape[0]
    # 80 bits = two groups of 40 bits, each read as an integer and cut into eight 5-bit characters.
    groups = digests[:, :10].reshape(count, 2, 5).astype(np.uint64)
    weights = np.array([1 << 32, 1 << 24, 1 << 16, 1 << 8, 1], dtype=np.uint64)
    numbers = (groups * weights).sum(axis=2, dtype=np.uint64)
    shifts = np.arange(35, -1, -5, dtype=np.uint64)
    indices = (numbers[:, :, None] >> shifts) & np.uint64(31)
    chars = _ALPHABET[indices.reshape(count, PSEUDONYM_CHARS)]
    width = len(prefix) + PSEUDONYM_CHARS
    matrix = np.empty((count, width), dtype=np.uint8)
    matrix[:, : len(prefix)] = prefix
    matrix[:, len(prefix) :] = chars
    offsets = np.arange(count + 1, dtype=np.int32) * width
    values = pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(matrix.tobytes())])
    return _scatter(values, array)


def date_shifts(ids: IdColumn, *, key: bytes, project: int | str, max_days: int) -> pa.Array:
    """The per-person date shift, in days, for each id (``int32``; null ids give null).

    The shift is never zero: it lies in ``[-max_days, -1] ∪ [1, max_days]``, uniformly (the modulo bias
    of a 64-bit draw is below 10^-15).

    Examples
    --------
    >>> shifts = date_shifts([5, 6, 5], key=b"0" * 32, project=7, max_days=30).to_pylist()
    >>> shifts[0] == shifts[2] and all(1 <= abs(s) <= 30 for s in shifts)
    True
    """
    if isinstance(max_days, bool) or not isinstance(max_days, int) or not 1 <= max_days <= MAX_SHIFT_DAYS:
        raise ValueError(f"max_days must be an integer from 1 to {MAX_SHIFT_DAYS}, got {max_days!r}")
    array = _as_array(ids)
    digests = keyed_digests(array, key=key, project=project, purpose="date-shift")
    draws = digests[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
    remainder = (draws % np.uint64(2 * max_days)).astype(np.int64)
    days = np.where(remainder < max_days, remainder - max_days, remainder - max_days + 1).astype(np.int32)
    return _scatter(pa.array(days, type=pa.int32()), array)


def shift_dates(column: pa.Array | pa.ChunkedArray, shifts: pa.Array) -> pa.Array:
    """Move every value of a date or timestamp column by its row's shift in days (nulls stay null).

    ``date32``, ``date64`` and ``timestamp`` (any unit, with or without time zone) are accepted; the
    time of day is kept, so durations between two shifted values of a person are exactly the original ones.

    Examples
    --------
    >>> import datetime as dt
    >>> shift_dates(pa.array([dt.date(2020, 3, 1)]), pa.array([-2], pa.int32())).to_pylist()
    [datetime.date(2020, 2, 28)]
    """
    values = _as_array(column)
    if len(values) != len(shifts):
        raise ValueError(f"{len(values)} values but {len(shifts)} shifts")
    kind = values.type
    days = pc.cast(shifts, pa.int64())
    if pa.types.is_date32(kind):
        raw, step = values.view(pa.int32()).cast(pa.int64()), 1
    elif pa.types.is_date64(kind):
        raw, step = values.view(pa.int64()), _DAY_UNITS["ms"]
    elif pa.types.is_timestamp(kind):
        raw, step = values.view(pa.int64()), _DAY_UNITS[kind.unit]
    else:
        raise TypeError(f"cannot shift a column of Arrow type {kind}: dates and timestamps only")
    moved = pc.add_checked(raw, pc.multiply_checked(days, step))
    if pa.types.is_date32(kind):
        moved = pc.cast(moved, pa.int32())
    return moved.view(kind)


def is_temporal(kind: pa.DataType) -> bool:
    """Whether ``shift_dates`` can move a column of this Arrow type."""
    return bool(pa.types.is_date(kind) or pa.types.is_timestamp(kind))
