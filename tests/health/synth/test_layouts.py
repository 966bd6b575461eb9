from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import read_site_file

from massalia.health.synth import SITES
from massalia.health.synth.sites.layout import layout_markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "synthetic-data.md"


def test_three_sites_declare_every_kind_of_data():
    assert len(SITES) >= 3
    for site in SITES.values():
        kinds = {f.kind for f in site.files}
        assert {
            "patients",
            "visits",
            "diagnoses",
            "tumours",
            "biomarkers",
            "drugs",
            "procedures",
            "labs",
            "documents",
        } <= kinds
        assert "deaths" in kinds or "death_date" in site.file("patients").column_names


def test_sites_differ_in_format_names_and_dates():
    layouts = list(SITES.values())
    assert len({(s.file_format, s.separator, s.date_format) for s in layouts}) == len(layouts)
    lab_names = [tuple(s.file("labs").column_names) for s in layouts]
    assert len(set(lab_names)) == len(lab_names)


@pytest.mark.parametrize("site", sorted(SITES))
def test_written_files_have_exactly_the_declared_columns(small_run, site):
    out, summary = small_run
    for f in SITES[site].files:
        for part in summary.parts:
            path = out / site / f.file_name(part)
            assert path.exists(), path
            table = read_site_file(path, site)
            assert table.column_names == f.column_names, path


@pytest.mark.parametrize("site", sorted(SITES))
def test_required_columns_are_never_empty_in_clean_data(small_run, site):
    out, summary = small_run
    for f in SITES[site].files:
        table = read_site_file(out / site / f.file_name(summary.parts[0]), site)
        for col in f.columns:
            if col.required and table.num_rows:
                assert table.column(col.name).null_count == 0, (site, f.kind, col.name)


def test_chu_nord_is_bom_semicolon_french(small_run):
    out, _ = small_run
    raw = (out / "chu_nord" / "biologie_part0000.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].split(b"\n", 1)[0].decode()
    assert header.split(";")[0].strip('"') == "ipp"
    table = read_site_file(out / "chu_nord" / "biologie_part0000.csv", "chu_nord")
    assert any("," in v for v in table.column("valeur").to_pylist()[:200])
    assert all(len(d) == 16 and d[2] == "/" for d in table.column("date_prelevement").to_pylist()[:200])


def test_layout_section_of_the_docs_matches_the_code():
    text = DOC.read_text(encoding="utf-8")
    for site in SITES.values():
        assert layout_markdown(site) in text, f"docs/synthetic-data.md is out of date for {site.name}"
