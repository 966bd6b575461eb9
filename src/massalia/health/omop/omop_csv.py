"""Load an OMOP CDM v5.4 export made of CSV files (a folder or a ``.zip``) into an engine.

Each file is matched to its CDM table by name (``PERSON.csv``, ``person.csv``...), streamed as
Arrow batches, cast to the types of the CDM specification and checked (required fields present,
numbers, dates, text lengths). All tables are then created or replaced in one
``Engine.create_tables`` call: a file with one bad value leaves every table as it was, and the
error names the file, the line and the field.

The typed-batch reader here is shared with the Athena loader (:mod:`massalia.health.omop.athena`),
which reads tab-separated files without quotes.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from massalia.engine import Engine
from massalia.health.omop.schema import FieldSpec, TableSpec, cdm_table, cdm_tables

DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d")
"""Date layouts accepted in OMOP exports: ISO (``2020-01-31``) and Athena's (``20200131``)."""

DATE_TIME_SUFFIXES = (" %H:%M:%S", "T%H:%M:%S")
"""A date column may carry a time of day (``2020-01-31 00:00:00``, as SQL exports write it);
the time is dropped."""

TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y%m%d", "%Y%m%d %H:%M:%S")
"""Datetime layouts accepted besides ISO 8601 with fractions of a second."""

BLOCK_SIZE = 8 << 20
"""Bytes parsed per CSV block: bounds memory whatever the file size."""

_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(nan|inf)\s*$")
_INT32 = (-(2**31), 2**31 - 1)

Progress = Callable[[str, int], None]
"""Called as ``progress(table, rows_read_so_far)`` after each batch."""


class OmopCsvError(ValueError):
    """Bad input in an OMOP/Athena CSV file: says which file, line and field, and why."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        where = file if line is None else f"{file}, line {line}"
        if field:
            where += f", field {field}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class CsvDialect:
    """How a family of files is written."""

    delimiter: str = ","
    quoted: bool = True
    date_formats: tuple[str, ...] = DATE_FORMATS
    newlines_in_values: bool = True


OMOP_EXPORT = CsvDialect()
"""Comma-separated, quoted where needed, dates ``YYYY-MM-DD`` or ``YYYYMMDD``."""


ByteStream: TypeAlias = IO[bytes] | io.BufferedIOBase
"""A file read as bytes: a zip member (``IO[bytes]`` in the stubs) or a plain or gzip file (buffered readers)."""


@dataclass(frozen=True)
class CsvFile:
    """One CSV file of an export: its display name and how to open it (plain or gzip)."""

    name: str
    opener: Callable[[], AbstractContextManager[ByteStream]]


class ErrorTrap:
    """Remembers the first input error raised inside a batch stream.

    Engines consume batch streams inside their own drivers and re-raise a driver error; the
    loader uses the trapped error instead so that the caller gets file, line and field.
    """

    def __init__(self) -> None:
        self.error: OmopCsvError | None = None

    def guard(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Yield ``batches``, recording an :class:`OmopCsvError` before it propagates."""
        try:
            yield from batches
        except OmopCsvError as error:
            if self.error is None:
                self.error = error
            raise


def _header(csv_file: CsvFile, dialect: CsvDialect) -> list[str]:
    with csv_file.opener() as handle:
        first = handle.readline().decode("utf-8-sig").rstrip("\r\n")
    if not first.strip():
        raise OmopCsvError(csv_file.name, 1, None, "empty file: a header row is required")
    names = next(csv.reader([first], delimiter=dialect.delimiter)) if dialect.quoted else first.split(dialect.delimiter)
    return [name.strip().strip('"').lower() for name in names]


def _plain(name: str) -> str:
    return name.strip('"')


def table_schema(spec: TableSpec) -> pa.Schema:
    """Arrow schema of a CDM table with plain column names (``offset``, not ``"offset"``)."""
    schema = spec.arrow_schema()
    return pa.schema([f.with_name(_plain(f.name)) for f in schema])


def _null_if_empty(column: pa.Array, *, trim: bool) -> pa.Array:
    """Empty cells are NULL; numbers and dates are trimmed, text is kept as written."""
    values = pc.utf8_trim_whitespace(column) if trim else column
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _first(mask: pa.Array) -> int:
    """Index of the first true value of a boolean mask (nulls count as false)."""
    return int(pc.index(pc.fill_null(mask, False), True).as_py())


def _fail(csv_file: CsvFile, first_line: int, index: int, field: FieldSpec, values: pa.Array, why: str) -> None:
    value = values[index].as_py()
    raise OmopCsvError(csv_file.name, first_line + index, field.name, f"{why} (value {value!r})")


def _fast_dates(values: pa.Array) -> pa.Array | None:
    """Dates all written ``YYYY-MM-DD`` or all ``YYYYMMDD``, parsed by Arrow's strict cast; else None."""
    try:
        return pc.cast(values, pa.date32())
    except pa.ArrowInvalid:
        pass
    lengths = pc.utf8_length(values)
    if pc.any(pc.not_equal(lengths, 8)).as_py():
        return None
    iso = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(values, 0, 4),
        pc.utf8_slice_codeunits(values, 4, 6),
        pc.utf8_slice_codeunits(values, 6, 8),
        "-",
    )
    try:
        return pc.cast(iso, pa.date32())
    except pa.ArrowInvalid:
        return None


def _temporal(values: pa.Array, target: pa.DataType, dialect: CsvDialect) -> pa.Array:
    """Parse dates or date-times; unparsable values become null (the caller reports them)."""
    if pa.types.is_date(target):
        parsed = _fast_dates(values)
        if parsed is None:
            layouts = [*dialect.date_formats, *(f + t for f in dialect.date_formats for t in DATE_TIME_SUFFIXES)]
            parsed = pc.cast(_parse_temporal(values, layouts, pa.timestamp("s")), pa.date32())
        return parsed
    try:
        return pc.cast(values, target)
    except pa.ArrowInvalid:
        return _parse_temporal(values, TIMESTAMP_FORMATS, target)


def _readable(layout: str) -> str:
    return layout.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")


def _parse_temporal(column: pa.Array, formats: Sequence[str], unit_type: pa.DataType) -> pa.Array:
    parsed = pa.nulls(len(column), pa.timestamp("s"))
    for layout in formats:
        attempt = pc.strptime(column, format=layout, unit="s", error_is_null=True)
        # strptime rolls impossible days over (2020-02-30 -> 2020-03-01): keep exact round trips only
        exact = pc.equal(pc.strftime(attempt, format=layout), column)
        attempt = pc.if_else(pc.fill_null(exact, False), attempt, pa.scalar(None, pa.timestamp("s")))
        parsed = pc.coalesce(parsed, attempt)
    return parsed.cast(unit_type) if unit_type != pa.timestamp("s") else parsed


def convert_column(
    csv_file: CsvFile, first_line: int, field: FieldSpec, raw: pa.Array, dialect: CsvDialect
) -> pa.Array:
    """Cast one column of text to the CDM type of ``field``; raise on the first bad value."""
    target = field.arrow_type
    values = _null_if_empty(raw, trim=not pa.types.is_string(target))
    if field.required and values.null_count:
        _fail(csv_file, first_line, _first(pc.is_null(values)), field, raw, "required value missing")
    if pa.types.is_integer(target):
        try:
            numbers = pc.cast(values, pa.int64())
        except pa.ArrowInvalid:  # slow path only to name the culprit
            bad = pc.invert(pc.match_substring_regex(values, _INTEGER.pattern))
            if pc.any(pc.fill_null(bad, False)).as_py():
                _fail(csv_file, first_line, _first(bad), field, raw, "not a whole number")
            raise
        if target == pa.int32():
            out_of_range = pc.or_(pc.less(numbers, _INT32[0]), pc.greater(numbers, _INT32[1]))
            if pc.any(pc.fill_null(out_of_range, False)).as_py():
                _fail(csv_file, first_line, _first(out_of_range), field, raw, "outside the INTEGER range")
        return numbers.cast(target)
    if pa.types.is_floating(target):
        try:
            return pc.cast(values, target)
        except pa.ArrowInvalid:
            # locate the culprit: cast each value alone is too slow, a regex is not
            bad = pc.invert(pc.match_substring_regex(values, _NUMBER.pattern))
            _fail(csv_file, first_line, _first(bad), field, raw, "not a number")
    if pa.types.is_date(target) or pa.types.is_timestamp(target):
        # dates repeat a lot (19700101, 20991231...): parse each distinct text once
        encoded = values.dictionary_encode()
        parsed = _temporal(encoded.dictionary, target, dialect).take(encoded.indices)
        bad = pc.and_(pc.is_valid(values), pc.is_null(parsed))
        if pc.any(bad).as_py():
            expected = (
                " or ".join(_readable(f) for f in dialect.date_formats) if pa.types.is_date(target) else "date time"
            )
            _fail(csv_file, first_line, _first(bad), field, raw, f"not a valid date ({expected})")
        return parsed
    if field.max_length is not None:
        too_long = pc.greater(pc.utf8_length(values), field.max_length)
        if pc.any(pc.fill_null(too_long, False)).as_py():
            _fail(csv_file, first_line, _first(too_long), field, raw, f"longer than {field.max_length} characters")
    return values


def typed_batches(
    csv_file: CsvFile,
    spec: TableSpec,
    dialect: CsvDialect,
    *,
    progress: Progress | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream ``csv_file`` as record batches typed like the CDM table ``spec``.

    Columns are matched by name, in any order and case; a column missing from the file is null
    (an error if the field is required); a column the table does not have is an error. Lines
    are numbered from 1 (the header), exact unless a quoted value spans several lines.
    """
    header = _header(csv_file, dialect)
    # the specification quotes reserved words ('"offset"' in NOTE_NLP); files do not
    known = {_plain(f.name) for f in spec.fields}
    for position, name in enumerate(header):
        if name not in known:
            raise OmopCsvError(csv_file.name, 1, name or f"#{position + 1}", f"not a column of {spec.name}")
        if header.count(name) > 1:
            raise OmopCsvError(csv_file.name, 1, name, "column appears twice in the header")
    for spec_field in spec.fields:
        if spec_field.required and _plain(spec_field.name) not in header:
            raise OmopCsvError(csv_file.name, 1, spec_field.name, f"required column missing from {spec.name}")
    schema = table_schema(spec)
    read_options = pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=BLOCK_SIZE)
    parse_options = pacsv.ParseOptions(
        delimiter=dialect.delimiter,
        quote_char='"' if dialect.quoted else False,
        newlines_in_values=dialect.newlines_in_values and dialect.quoted,
    )
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    line = 2
    emitted = False
    with csv_file.opener() as handle:
        try:
            reader = pacsv.open_csv(
                handle, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
        except pa.ArrowInvalid as error:
            raise OmopCsvError(csv_file.name, line, None, f"malformed CSV at or after this line: {error}") from error
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as error:
                raise OmopCsvError(
                    csv_file.name, line, None, f"malformed CSV at or after this line: {error}"
                ) from error
            columns = []
            for spec_field in spec.fields:
                if _plain(spec_field.name) in header:
                    raw = batch.column(header.index(_plain(spec_field.name)))
                    columns.append(convert_column(csv_file, line, spec_field, raw, dialect))
                else:
                    columns.append(pa.nulls(batch.num_rows, spec_field.arrow_type))
            line += batch.num_rows
            emitted = True
            if progress is not None:
                progress(spec.name, line - 2)
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
    if not emitted:
        # engines need a schema-carrying batch even for an empty table
        yield pa.RecordBatch.from_pylist([], schema=schema)


# -- the export as a whole ------------------------------------------------------------------------
@contextmanager
def _zip_member(archive: Path, member: str) -> Iterator[ByteStream]:
    with zipfile.ZipFile(archive) as zipped, zipped.open(member) as handle:
        if member.lower().endswith(".gz"):
            with gzip.open(handle) as unzipped:
                yield unzipped
        else:
            yield handle


def _zip_files(archive: Path) -> list[CsvFile]:
    with zipfile.ZipFile(archive) as zipped:
        names = [info.filename for info in zipped.infolist() if not info.is_dir()]
    return [CsvFile(f"{archive.name}:{name}", partial(_zip_member, archive, name)) for name in names]


def _folder_files(folder: Path) -> list[CsvFile]:
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()

        def opener(target: Path = path) -> AbstractContextManager[ByteStream]:
            if target.name.lower().endswith(".gz"):
                return gzip.open(target, "rb")
            return target.open("rb")

        files.append(CsvFile(relative, opener))
    return files


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name.split(":", 1)[-1]).parts
    return any(part == "__MACOSX" or part.startswith(".") for part in parts)


def table_name_of(file_name: str) -> str | None:
    """The CDM table a file name stands for (``PERSON.csv`` → ``person``), or ``None``."""
    base = PurePosixPath(file_name.split(":", 1)[-1]).name.lower()
    for suffix in (".csv.gz", ".csv"):
        if base.endswith(suffix):
            stem = base[: -len(suffix)]
            return stem if stem in cdm_tables() else None
    return None


def export_files(source: str | Path) -> dict[str, CsvFile]:
    """Map each CDM table to its file in ``source`` (a folder or a ``.zip``).

    Operating-system junk (``__MACOSX/``, dot files) is ignored; any other file that is not a
    CSV named after a CDM table is an error, as is a table given twice.
    """
    path = Path(source)
    if path.is_dir():
        files = _folder_files(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        files = _zip_files(path)
    else:
        raise OmopCsvError(str(path), None, None, "not a folder nor a .zip archive")
    found: dict[str, CsvFile] = {}
    for csv_file in files:
        if _is_junk(csv_file.name):
            continue
        table = table_name_of(csv_file.name)
        if table is None:
            raise OmopCsvError(
                csv_file.name, None, None, "not an OMOP CDM v5.4 table file (expected <TABLE>.csv, e.g. PERSON.csv)"
            )
        if table in found:
            raise OmopCsvError(csv_file.name, None, None, f"second file for table {table} (first: {found[table].name})")
        found[table] = csv_file
    return found


def load_csv_tables(
    engine: Engine,
    files: Mapping[str, CsvFile],
    dialect: CsvDialect,
    *,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Create or replace each table from its file, all together; return the row counts.

    On bad input the :class:`OmopCsvError` of the first bad value is raised and no table is
    changed (staging tables are dropped by the engine).
    """
    trap = ErrorTrap()
    data = {
        table: trap.guard(typed_batches(csv_file, cdm_table(table), dialect, progress=progress))
        for table, csv_file in files.items()
    }
    schemas = {table: table_schema(cdm_table(table)) for table in files}
    try:
        return engine.create_tables(data, schemas=schemas)
    except OmopCsvError:
        raise
    except Exception as error:
        if trap.error is not None:
            raise trap.error from error
        raise


def load_omop_csv(
    engine: Engine,
    source: str | Path,
    *,
    tables: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Load an OMOP CDM CSV export (folder or ``.zip``) into ``engine``; return rows per table.

    Parameters
    ----------
    engine
        Target engine; every table found is created or replaced, all or nothing.
    source
        Folder or ``.zip`` of comma-separated files with a header row, named after the CDM
        tables in any case (``PERSON.csv``, ``person.csv``; ``.csv.gz`` accepted).
    tables
        Load only these tables (each must be in ``source``); default: every file.
    progress
        Optional callback ``progress(table, rows_so_far)``.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:  # doctest: +SKIP
    ...     load_omop_csv(engine, "Synthea27Nj_5.4.zip")["person"]
    28
    """
    files = export_files(source)
    if tables is not None:
        wanted = [cdm_table(name).name for name in tables]
        missing = [name for name in wanted if name not in files]
        if missing:
            raise OmopCsvError(str(source), None, None, f"no file for requested table(s): {', '.join(missing)}")
        files = {name: files[name] for name in wanted}
    return load_csv_tables(engine, files, OMOP_EXPORT, progress=progress)


def read_csv_table(csv_file: CsvFile, table: str, dialect: CsvDialect = OMOP_EXPORT) -> pa.Table:
    """Read one file fully as an Arrow table typed like CDM ``table`` (small files only)."""
    spec = cdm_table(table)
    return pa.Table.from_batches(list(typed_batches(csv_file, spec, dialect)), schema=table_schema(spec))


def text_file(name: str, text: str) -> CsvFile:
    """A :class:`CsvFile` over text in memory (tests, generated extracts)."""
    payload = text.encode("utf-8")
    return CsvFile(name, lambda: io.BytesIO(payload))
