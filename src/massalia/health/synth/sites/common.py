"""What every site writer shares: the site's slice of a chunk, vectorized formatting, file writing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from massalia.health.synth.cohort import Cohort
from massalia.health.synth.sites.layout import SiteLayout
from massalia.health.synth.timeline import Table, Timeline

DAY = 86_400


@dataclass
class SiteData:
    """One site's patients of one chunk and their events (``pid`` = row in ``cohort``).

    ``documents`` holds ``pid, visit, day, kind, text, note_id`` when documents are generated.
    """

    cohort: Cohort
    timeline: Timeline
    documents: Table | None = None
    extra: dict[str, Table] = field(default_factory=dict)

    def visit_ids(self, table: Table, digits: int = 4) -> np.ndarray:
        """Site-stable visit number of each row (patient index · 10^digits + rank), -1 when none."""
        idx = self.cohort.index[table["pid"]].astype(np.int64)
        seq = table["visit"] if "visit" in table else table["seq"]
        if seq.size and int(seq.max()) >= 10**digits:
            raise ValueError(f"a patient has more than {10**digits} visits; raise the id width")
        return np.where(seq >= 0, idx * 10**digits + seq, -1)


def row_ids(pid: np.ndarray, index: np.ndarray, digits: int) -> np.ndarray:
    """Stable per-patient event ids: patient index · 10^digits + rank of the row within its patient.

    Rows must be grouped by ``pid`` in any order; rank follows the row order.
    """
    order = np.argsort(pid, kind="stable")
    p = pid[order]
    first = np.r_[0, np.flatnonzero(np.diff(p)) + 1] if p.size else np.zeros(0, np.int64)
    counts = np.diff(np.r_[first, p.size])
    rank = np.empty(p.size, dtype=np.int64)
    rank[order] = np.arange(p.size) - np.repeat(first, counts)
    if rank.size and int(rank.max()) >= 10**digits:
        raise ValueError(f"a patient has more than {10**digits} rows in one file; raise the id width")
    return index[pid].astype(np.int64) * 10**digits + rank


def _digit_columns(value: np.ndarray, width: int) -> list[np.ndarray]:
    """The ``width`` ASCII digit columns of non-negative integers, most significant first."""
    return [((value // 10**k) % 10 + 48).astype(np.uint8) for k in range(width - 1, -1, -1)]


def _bytes_to_strings(cols: list[np.ndarray], n: int) -> pa.Array:
    if not cols or n == 0:
        return pa.array([""] * n, type=pa.string())
    width = len(cols)
    matrix = np.empty((n, width), dtype=np.uint8)
    for j, col in enumerate(cols):
        matrix[:, j] = col
    # Fixed-width ASCII rows: build the string array straight from its buffers (no copy, no re-validation).
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(matrix)]).cast(
        pa.string()
    )


def prefixed(values: np.ndarray, prefix: str, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded integers as strings (null where ``valid`` is false).

    Examples
    --------
    >>> prefixed(np.array([7, 42]), "S", 4).to_pylist()
    ['S0007', 'S0042']
    """
    values = np.asarray(values, dtype=np.int64)
    ok = np.ones(values.shape[0], bool) if valid is None else np.asarray(valid, bool)
    v = np.where(ok, values, 0)
    if v.size and (int(v.min()) < 0 or int(v.max()) >= 10**width):
        raise ValueError(f"identifier out of range for {width} digits")
    cols = [np.full(v.shape[0], ord(ch), np.uint8) for ch in prefix] + _digit_columns(v, width)
    out = _bytes_to_strings(cols, v.shape[0])
    if valid is not None:
        out = pc.if_else(pa.array(ok), out, pa.scalar(None, pa.string()))
    return out


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of days since 1970-01-01 (proleptic Gregorian, integer arithmetic only)."""
    z = days.astype(np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


def _format(seconds: np.ndarray, fmt: str) -> pa.Array:
    """Format epoch seconds with a strftime subset (%Y %m %d %H %M %S, literals) as byte-matrix gathers."""
    seconds = np.asarray(seconds, dtype=np.int64)
    days = np.floor_divide(seconds, DAY)
    rest = seconds - days * DAY
    y, m, d = _civil(days)
    fields = {
        "%Y": (y, 4),
        "%m": (m, 2),
        "%d": (d, 2),
        "%H": (rest // 3600, 2),
        "%M": (rest // 60 % 60, 2),
        "%S": (rest % 60, 2),
    }
    cols: list[np.ndarray] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            value, width = fields[fmt[i : i + 2]]
            cols.extend(_digit_columns(value, width))
            i += 2
        else:
            cols.append(np.full(seconds.shape[0], ord(fmt[i]), dtype=np.uint8))
            i += 1
    return _bytes_to_strings(cols, seconds.shape[0])


def date_strings(days: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    """Days since 1970-01-01 formatted with ``fmt`` (strftime subset), null where not ``valid``.

    Examples
    --------
    >>> date_strings(np.array([19000]), "%d/%m/%Y").to_pylist()
    ['08/01/2022']
    """
    out = _format(np.asarray(days, dtype=np.int64) * DAY, fmt)
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def datetime_strings(seconds: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds formatted with ``fmt`` (strftime subset), null where not ``valid``.

    Examples
    --------
    >>> datetime_strings(np.array([1700000000]), "%d/%m/%Y %H:%M").to_pylist()
    ['14/11/2023 22:13']
    """
    out = _format(seconds, fmt)
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def yyyymmdd(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 as int32 ``YYYYMMDD``.

    Examples
    --------
    >>> yyyymmdd(np.array([19000])).tolist()
    [20220108]
    """
    d = np.asarray(days, dtype="datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return (y * 10000 + m * 100 + dd).astype(np.int32)


def number_strings(
    values: np.ndarray, decimals: np.ndarray | int, comma: bool, valid: np.ndarray | None = None
) -> pa.Array:
    """Numbers as text with a fixed number of decimals (0-3, per row), ``,`` or ``.`` as separator.

    Built as a fixed-width byte matrix (space padded) then trimmed, so it is a few numpy operations.

    Examples
    --------
    >>> number_strings(np.array([12.5, 3.0, -0.25]), np.array([1, 0, 2]), comma=True).to_pylist()
    ['12,5', '3', '-0,25']
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    dec = np.broadcast_to(np.asarray(decimals, dtype=np.int64), values.shape)
    finite = np.isfinite(values)
    scaled = np.round(np.abs(np.where(finite, values, 0.0)) * 10.0**dec).astype(np.int64)
    ip = scaled // 10**dec
    fp = scaled % 10**dec
    width = max(1, len(str(int(ip.max())))) if n else 1
    length = np.maximum(1, np.floor(np.log10(np.maximum(ip, 1))).astype(np.int64) + 1)
    space = np.uint8(32)
    cols = [np.full(n, space, np.uint8)]  # room for a sign
    for pos, col in enumerate(_digit_columns(ip, width)):
        k = width - 1 - pos  # power of ten of this column
        cols.append(np.where(k < length, col, space))
    neg = (values < 0) & (scaled > 0)
    for pos in range(width + 1):
        k = width - pos  # the column just left of the leading digit holds the sign
        cols[pos] = np.where(neg & (k == length), np.uint8(45), cols[pos])
    cols.append(np.where(dec > 0, np.uint8(44 if comma else 46), space))
    for j in range(3):
        digit = ((fp // 10 ** np.maximum(dec - 1 - j, 0)) % 10 + 48).astype(np.uint8)
        cols.append(np.where(j < dec, digit, space))
    out = pc.utf8_trim_whitespace(_bytes_to_strings(cols, n))
    mask = finite if valid is None else (np.asarray(valid, bool) & finite)
    return pc.if_else(pa.array(mask), out, pa.scalar(None, pa.string()))


def string_array(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Object/str array to Arrow strings, null where not ``valid``."""
    arr = pa.array(values, type=pa.string())
    if valid is not None:
        arr = pc.if_else(pa.array(valid), arr, pa.scalar(None, pa.string()))
    return arr


def lookup(labels: list[str] | tuple[str, ...], idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """``labels[idx]`` as an Arrow string array (null where ``idx < 0`` or not ``valid``)."""
    ok = idx >= 0 if valid is None else (valid & (idx >= 0))
    out = pa.array(list(labels), type=pa.string()).take(pa.array(np.where(ok, idx, 0)))
    return pc.if_else(pa.array(ok), out, pa.scalar(None, pa.string()))


def write_table(table: pa.Table, path: Path, site: SiteLayout) -> None:
    """Write ``table`` as the site writes files: CSV with its separator/encoding, or Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path, compression="zstd")
        return
    with path.open("wb") as fh:
        if site.encoding == "utf-8-sig":
            fh.write(b"\xef\xbb\xbf")
        options = pacsv.WriteOptions(include_header=True, delimiter=site.separator, quoting_style="needed")
        pacsv.write_csv(table, fh, write_options=options)
