"""Cut a text file into blocks of whole records, and number the lines where records start.

Text files are read in blocks of bounded size so memory stays flat whatever the file size. A block
always ends at a record boundary: a newline outside quotes (quote parity is tracked with fast byte
counts, never a Python loop per character). Each block knows the line number of its first byte, so
the line where every record starts can be computed exactly, even when quoted values hold newlines.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from massalia.sources.base import SourceError

_BOM = codecs.BOM_UTF8
_ASCII_COMPATIBLE_PROBE = b'\n\r,;|\t"'


@dataclass(frozen=True)
class TextBlock:
    """Whole records of a text file: ``data`` starts on line ``first_line`` (1-based)."""

    data: bytes
    first_line: int
    final: bool


def check_encoding(path: Path, encoding: str) -> str:
    """Return the codec name if it keeps ASCII bytes as they are (needed to find newlines and quotes)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise SourceError(path, None, f"unknown encoding {encoding!r}") from None
    if info.name == "utf-8-sig":
        # The byte-order mark is dropped while reading blocks, so the rest is plain UTF-8.
        return "utf-8"
    try:
        if _ASCII_COMPATIBLE_PROBE.decode(info.name).encode(info.name) != _ASCII_COMPATIBLE_PROBE:
            raise UnicodeError
    except UnicodeError:
        raise SourceError(path, None, f"encoding {encoding!r} is not ASCII-compatible; convert the file") from None
    return info.name


def _cut_point(buffer: bytes, quote: bytes | None, total_quotes: int) -> int:
    """Index just after the last newline outside quotes, or -1 when there is none."""
    position = buffer.rfind(b"\n")
    if quote is None:
        return position + 1 if position >= 0 else -1
    quotes_after = 0
    end = len(buffer)
    while position >= 0:
        quotes_after += buffer.count(quote, position + 1, end)
        if (total_quotes - quotes_after) % 2 == 0:
            return position + 1
        end = position + 1
        position = buffer.rfind(b"\n", 0, position)
    return -1


def iter_blocks(
    path: Path,
    *,
    block_bytes: int,
    quote: str | None,
    digest: hashlib._Hash | None = None,
) -> Iterator[TextBlock]:
    """Yield ``path`` as blocks of whole records (a UTF-8 BOM is dropped).

    Parameters
    ----------
    path
        The file.
    block_bytes
        Bytes read at a time; a record longer than this grows the block as needed.
    quote
        Quote character of the format (``None`` when quotes cannot hide newlines, e.g. NDJSON).
    digest
        Optional hash object updated with every byte read (content hash for free).

    Raises
    ------
    SourceError
        A quoted value is never closed (the line of its opening quote is named).
    """
    quote_bytes = quote.encode("ascii") if quote else None
    line = 1
    carry = b""
    carry_quotes = 0
    first = True
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(block_bytes)
            if digest is not None and chunk:
                digest.update(chunk)
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
            if not chunk:
                if carry:
                    if carry_quotes % 2 and quote_bytes is not None:  # quotes are only counted when there is one
                        opening = carry.rfind(quote_bytes)
                        raise SourceError(
                            path, line + carry.count(b"\n", 0, opening), "quoted value never closed (truncated file?)"
                        )
                    yield TextBlock(carry, line, True)
                return
            total_quotes = carry_quotes + (chunk.count(quote_bytes) if quote_bytes else 0)
            # The cut is sought in the new chunk only: the carried bytes hold no cut point (they are
            # what followed the previous one), and the quotes after a newline of the chunk are in
            # the chunk. Cutting before joining copies each byte once (joined) instead of twice.
            cut = _cut_point(chunk, quote_bytes, total_quotes)
            if cut <= 0:
                carry, carry_quotes = carry + chunk, total_quotes
                continue
            block = b"".join((carry, memoryview(chunk)[:cut])) if carry else chunk[:cut]
            carry = chunk[cut:]
            carry_quotes = carry.count(quote_bytes) if quote_bytes else 0
            yield TextBlock(block, line, False)
            line += block.count(b"\n")


def record_start_lines(block: TextBlock, quote: str | None) -> np.ndarray:
    """Line number where each non-blank record of ``block`` starts (exact, quote-aware).

    Used only when the fast rule (one record per line) does not hold, e.g. notes whose text holds
    newlines, or files with blank lines.
    """
    array = np.frombuffer(block.data, dtype=np.uint8)
    newlines = np.flatnonzero(array == 10)
    if quote is not None:
        quotes = np.flatnonzero(array == ord(quote))
        quotes_before = np.searchsorted(quotes, newlines)
        ends = newlines[quotes_before % 2 == 0]
    else:
        ends = newlines
    if len(block.data) and (len(ends) == 0 or ends[-1] != len(block.data) - 1):
        ends = np.append(ends, len(block.data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    # A blank record is empty or a lone carriage return: parsers skip it, so must we.
    carriage = np.zeros(len(starts), dtype=bool)
    inside = starts < len(array)
    carriage[inside] = array[np.minimum(starts[inside], len(array) - 1)] == 13
    blank = (lengths == 0) | ((lengths == 1) & carriage)
    lines = block.first_line + np.searchsorted(newlines, starts)
    record_lines: np.ndarray = lines[~blank].astype(np.int64)
    return record_lines


def fast_lines(block: TextBlock, rows: int) -> np.ndarray | None:
    """Line numbers when every record is exactly one line, else ``None`` (use the exact scan)."""
    records = block.data.count(b"\n")
    if block.data and not block.data.endswith(b"\n"):
        records += 1
    if records != rows:
        return None
    return np.arange(block.first_line, block.first_line + rows, dtype=np.int64)
