from __future__ import annotations

import pyarrow.parquet as pq
from synth_helpers import read_site_file

from massalia.health.synth.dirty import DEFECT_KINDS


def _value(table, field, row):
    return table.column(field)[row - 1].as_py()


def test_every_recorded_defect_is_in_the_file_and_nothing_else_changed(small_run, dirty_run):
    clean_dir, _ = small_run
    dirty_dir, summary = dirty_run
    defects = pq.read_table(dirty_dir / "truth" / "defects_part0000.parquet").to_pylist()
    assert defects and summary.defects >= len(defects)
    assert {d["kind"] for d in defects} == set(DEFECT_KINDS)
    by_file: dict[str, list[dict]] = {}
    for d in defects:
        by_file.setdefault(d["file"], []).append(d)
    for name, found in by_file.items():
        site = name.split("/")[0]
        dirty = read_site_file(dirty_dir / name, site)
        clean = read_site_file(clean_dir / name, site)
        assert dirty.num_rows == clean.num_rows
        damaged = {(d["row"], d["field"]) for d in found}
        for d in found:
            written = _value(dirty, d["field"], d["row"])
            original = _value(clean, d["field"], d["row"])
            assert (None if written is None else str(written)) == d["written"], d
            assert (None if original is None else str(original)) == d["original"], d
        for col in dirty.column_names:
            a, b = dirty.column(col).to_pylist(), clean.column(col).to_pylist()
            diff = {(i + 1, col) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y}
            assert diff <= damaged, (name, col, sorted(diff - damaged)[:3])


def test_defect_rate_is_close_to_the_requested_rate(dirty_run):
    out, summary = dirty_run
    defects = pq.read_table(out / "truth" / "defects_part0000.parquet")
    part_rows = sum(v for k, v in summary.rows.items()) / len(summary.parts)
    rate = defects.num_rows / part_rows
    assert 0.012 < rate < 0.028


def test_bad_dates_are_impossible_dates(dirty_run):
    out, _ = dirty_run
    defects = pq.read_table(out / "truth" / "defects_part0001.parquet").to_pylist()
    for d in defects:
        if d["kind"] == "bad_date":
            assert "31/02/" in d["written"] or "-02-30" in d["written"] or d["written"].endswith("0231"), d
        if d["kind"] == "missing_required":
            assert d["written"] is None
