from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.sources import SOURCE_FILE, SOURCE_LINE, SourceError, SourceOptions, get_connector, read_source


def read_all(path: Path, options: SourceOptions) -> pa.Table:
    batches = list(read_source(path, options))
    return pa.Table.from_batches(batches)


def test_csv_semicolon_latin1_with_provenance(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    path.write_bytes("ipp;nom;ddn\n1;Hélène;01/02/1960\n2;Noël;\n".encode("latin-1"))
    table = read_all(path, SourceOptions(separator=";", encoding="latin-1"))
    assert table.column("nom").to_pylist() == ["Hélène", "Noël"]
    assert table.column("ddn").to_pylist() == ["01/02/1960", None]
    assert table.column(SOURCE_LINE).to_pylist() == [2, 3]
    assert set(table.column(SOURCE_FILE).to_pylist()) == {str(path)}


def test_csv_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,code\r\n1,C50.9\r\n\r\n2,C61\r\n")
    table = read_all(path, SourceOptions())
    assert table.column_names[:2] == ["id", "code"]
    assert table.column("code").to_pylist() == ["C50.9", "C61"]
    assert table.column(SOURCE_LINE).to_pylist() == [2, 4]


def test_csv_quoted_newlines_keep_exact_lines_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    rows = [["id", "text"]] + [[str(i), f'ligne 1\nligne "{i}"\n;fin'] for i in range(200)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    table = read_all(path, SourceOptions(block_bytes=97))  # tiny blocks: many cuts inside quotes
    assert table.num_rows == 200
    assert table.column("text")[5].as_py() == 'ligne 1\nligne "5"\n;fin'
    assert table.column(SOURCE_LINE).to_pylist() == [2 + 3 * i for i in range(200)]


def test_csv_ragged_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(SourceError, match=r"ragged\.csv, line 3: expected 3 fields") as info:
        read_all(path, SourceOptions())
    assert info.value.line == 3


def test_csv_truncated_quote_names_line(tmp_path: Path) -> None:
    path = tmp_path / "trunc.csv"
    path.write_text('a,b\n1,x\n2,"never closed\nmore\n')
    with pytest.raises(SourceError, match=r"trunc\.csv, line 3: quoted value never closed"):
        read_all(path, SourceOptions())


def test_csv_bad_utf8_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "enc.csv"
    path.write_bytes(b"id,nom\n1,ok\n2,H\xe9l\xe8ne\n")
    with pytest.raises(SourceError, match=r"enc\.csv, line 3, field 'nom': invalid utf-8 byte 0xe9"):
        read_all(path, SourceOptions())


def test_csv_missing_column_and_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="line 1: missing column"):
        read_all(path, SourceOptions(columns=("a", "z")))
    with pytest.raises(ValueError, match="unknown source format 'xml'"):
        get_connector("xml")


def test_ndjson_lines_blank_lines_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text('{"id": 1, "v": 2.5}\n\n{"id": 2, "extra": "x"}\n')
    table = read_all(path, SourceOptions(format="ndjson"))
    assert table.column("id").to_pylist() == ["1", "2"]
    assert table.column("extra").to_pylist() == [None, "x"]
    assert table.column(SOURCE_LINE).to_pylist() == [1, 3]
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"id": 1}\n{"id": 2,\n')
    with pytest.raises(SourceError, match=r"bad\.ndjson, line 2: invalid JSON"):
        read_all(bad, SourceOptions(format="ndjson"))


def test_parquet_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(5))}), path, row_group_size=2)
    table = read_all(path, SourceOptions(format="parquet"))
    assert table.column("x").to_pylist() == list(range(5))
    assert table.column(SOURCE_LINE).to_pylist() == [1, 2, 3, 4, 5]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read_all(broken, SourceOptions(format="parquet"))


cell = st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\x00"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=30),
    separator=st.sampled_from([",", ";", "|", "\t"]),
    encoding=st.sampled_from(["utf-8", "latin-1"]),
    block=st.integers(min_value=16, max_value=4096),
)
def test_csv_round_trip_any_quoting(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], separator: str, encoding: str, block: int
) -> None:
    path = tmp_path_factory.mktemp("rt") / "rt.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    # A row of empty cells serialises as a line of separators, which is a row; a row whose only
    # cell text is empty is written as `""`, which is also a row. Nothing is skipped.
    table = read_all(path, SourceOptions(separator=separator, encoding=encoding, block_bytes=block))
    expected = [[value or None for value in row] for row in rows]
    assert [list(r.values())[:3] for r in table.to_pylist()] == expected
    # Exact line numbers: count newlines the writer emitted before each row.
    lines, line = [], 2
    for row in rows:
        lines.append(line)
        one = io.StringIO()
        csv.writer(one, delimiter=separator, lineterminator="\n").writerow(row)
        line += one.getvalue().count("\n")
    assert table.column(SOURCE_LINE).to_pylist() == lines


def test_ndjson_values_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    records = [{"id": i, "text": f'é"{i}\n'} for i in range(50)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    table = read_all(path, SourceOptions(format="ndjson", block_bytes=64))
    assert table.column("text").to_pylist() == [r["text"] for r in records]
