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


def prefixed(values: np.ndarray, prefix: str, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded integers as strings (null where ``valid`` is false).

    Examples
    --------
    >>> prefixed(np.array([7, 42]), "S", 4).to_pylist()
    ['S0007', 'S0042']
    """
    s = pc.utf8_lpad(pa.array(values, type=pa.int64()).cast(pa.string()), width, "0")
    out = pc.binary_join_element_wise(pa.scalar(prefix), s, "") if prefix else s
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def date_strings(days: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    """Days since 1970-01-01 formatted with ``fmt`` (strftime), null where not ``valid``.

    Examples
    --------
    >>> date_strings(np.array([19000]), "%d/%m/%Y").to_pylist()
    ['08/01/2022']
    """
    ts = pa.array(np.asarray(days, dtype=np.int64) * DAY, type=pa.timestamp("s"))
    out = pc.strftime(ts, format=fmt)
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def datetime_strings(seconds: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds formatted with ``fmt`` (strftime), null where not ``valid``."""
    out = pc.strftime(pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s")), format=fmt)
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


def number_strings(values: np.ndarray, decimals: np.ndarray | int, comma: bool,
                   valid: np.ndarray | None = None) -> pa.Array:
    """Numbers as text with a fixed number of decimals (per row), ``,`` or ``.`` as separator.

    Examples
    --------
    >>> number_strings(np.array([12.5, 3.0]), np.array([1, 0]), comma=True).to_pylist()
    ['12,5', '3']
    """
    values = np.asarray(values, dtype=float)
    dec = np.broadcast_to(np.asarray(decimals), values.shape)
    scaled = np.round(np.abs(np.nan_to_num(values)) * 10.0 ** dec).astype(np.int64)
    ip = scaled // (10 ** dec).astype(np.int64)
    fp = scaled % (10 ** dec).astype(np.int64)
    sign = np.where(values < 0, "-", "")
    int_s = pc.binary_join_element_wise(pa.array(sign), pa.array(ip).cast(pa.string()), "")
    frac = pa.array(fp).cast(pa.string())
    out = int_s
    for d in np.unique(dec):
        if d > 0:
            joined = pc.binary_join_element_wise(int_s, pc.utf8_lpad(frac, int(d), "0"), "," if comma else ".")
            out = pc.if_else(pa.array(dec == d), joined, out)
    mask = ~np.isnan(values) if valid is None else (valid & ~np.isnan(values))
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
