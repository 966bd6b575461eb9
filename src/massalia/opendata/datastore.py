"""The datastore: a resource's rows as a typed table in the warehouse engine, searchable by filters or SQL.

**Loading** (:func:`load_file`, :func:`create_from_records`): a CSV (any delimiter, encoding detected with
charset-normalizer), NDJSON/JSON or Excel file becomes one table, streamed in Arrow record batches (no row
cap) through the engine's atomic table creation: a failed load leaves the previous table, or nothing, and the
error names the file, the row and the field. Types are inferred (integers, decimals, dates, timestamps,
booleans, text); a producer overrides them per field (``{"code_insee": "text"}``); a column that looked
numeric in the first block and holds text further down is widened to text rather than refused, unless its
type was given. The table is named after the resource (``ods_<resource id hex>``) and registered in the
metadata database (:class:`~massalia.opendata.tables.DatastoreRow`).

**Reading** (:func:`search`, :func:`search_sql`): CKAN's ``datastore_search`` (filters, ``q``, fields,
sort, limit/offset, ``records_format`` objects, lists or CSV) and ``datastore_search_sql`` through
:mod:`massalia.opendata.sqlguard`, both bounded in rows and time. Rights: ``opendata.datastore.read``
(everyone) and ``opendata.datastore.write`` (editors of the resource's organization, platform admins).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
from charset_normalizer import from_bytes
from openpyxl import load_workbook
from sqlalchemy import select
from sqlglot import exp

from massalia.engine import Engine
from massalia.engine.base import EngineError
from massalia.governance import Caller, NotFound
from massalia.opendata.catalog import Catalog, Upload
from massalia.opendata.models import ValidationFailed
from massalia.opendata.sqlguard import guarded_query
from massalia.opendata.tables import DatastoreRow, ResourceRow

READ, WRITE = "opendata.datastore.read", "opendata.datastore.write"
MAX_SEARCH_ROWS = 32_000
"""A ``datastore_search`` page holds at most this many records (CKAN's ``rows_max``)."""
MAX_SQL_ROWS = 32_000
SQL_TIME_LIMIT_S = 10.0
SEARCH_TIME_LIMIT_S = 30.0
MAX_FIELDS = 1000
MAX_UPSERT = 100_000
"""Records one ``datastore_upsert`` call may carry."""
BLOCK_BYTES = 1024 * 1024
"""Parse blocks of this size (small blocks keep both cores busy: about 4x faster than 16 MiB ones here)."""
SAMPLE_BYTES = 8 * 1024 * 1024
"""Types are inferred on the file's first 8 MiB (tens of thousands of rows), then enforced on the rest."""
TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int64(),
    "int8": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "float": pa.float64(),
    "float8": pa.float64(),
    "numeric": pa.float64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
"""The field types a producer may declare (CKAN's names), and the Arrow type each loads as."""
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+)")


@dataclass(frozen=True)
class LoadReport:
    """What a load did: the table, its fields (``{"id", "type"}``), rows, seconds, and the detected format."""

    resource_id: str
    table: str
    fields: list[dict[str, str]]
    rows: int
    seconds: float
    encoding: str | None = None
    delimiter: str | None = None


class LoadError(ValidationFailed):
    """A file that cannot be loaded; the message names the file, and the row and field when they are known."""

    def __init__(self, file: str, message: str, *, row: int | None = None, field: str | None = None) -> None:
        where = file + (f", row {row}" if row is not None else "") + (f", field {field!r}" if field else "")
        super().__init__({"upload": [f"{where}: {message}"]})
        self.file, self.row, self.field = file, row, field


LoadProgress = Callable[[str, int, int], None]
"""Told ``(step, done, total)`` as a load goes: ``("reading", bytes, file bytes)`` as the file is parsed, then
``("writing", 0, rows)`` and ``("writing", rows, rows)`` around the atomic write (the CLI draws it as a bar)."""


def table_name(resource_id: str) -> str:
    """The warehouse table of a resource's datastore rows.

    Examples
    --------
    >>> table_name("0b7c5f7e-2d0a-4d47-9f43-3f1c2c2f1a9e")
    'ods_0b7c5f7e2d0a4d479f433f1c2c2f1a9e'
    """
    cleaned = re.sub(r"[^0-9a-f]", "", resource_id.lower())
    if len(cleaned) != 32:
        raise ValidationFailed({"resource_id": ["not a resource id"]})
    return f"ods_{cleaned}"


def _type_name(arrow: pa.DataType) -> str:
    if pa.types.is_integer(arrow):
        return "int"
    if pa.types.is_floating(arrow) or pa.types.is_decimal(arrow):
        return "float"
    if pa.types.is_boolean(arrow):
        return "bool"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    return "text"


def _overrides(types: dict[str, str] | None) -> dict[str, pa.DataType]:
    given = dict(types or {})
    if len(given) > MAX_FIELDS:
        raise ValidationFailed({"fields": [f"at most {MAX_FIELDS} field types"]})
    unknown = {field: kind for field, kind in given.items() if kind not in TYPES}
    if unknown:
        raise ValidationFailed({"fields": [f"unknown type(s) {unknown} (known: {', '.join(sorted(TYPES))})"]})
    return {field: TYPES[kind] for field, kind in given.items()}


def detect_encoding(sample: bytes) -> str:
    r"""The encoding of a file's first bytes (UTF-8 when it decodes as such; charset-normalizer's guess else).

    Examples
    --------
    >>> detect_encoding("commune;département\nAix;Bouches-du-Rhône\n".encode("cp1252"))
    'cp1252'
    """
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 3:  # a character cut by the end of the sample
            return "utf-8"
    matches = list(from_bytes(sample))
    # Western European files are cp1252 far more often than the code pages that decode the same bytes
    # (cp1250, cp775...): among equally plausible guesses, prefer it (and latin-1 next).
    for preferred in ("cp1252", "latin_1", "iso8859_15"):
        if any(preferred in match.could_be_from_charset for match in matches):
            return preferred
    return matches[0].encoding if matches else "latin_1"


def detect_delimiter(text: str) -> str:
    """The CSV delimiter of a sample (``,``, ``;``, tab or ``|``)."""
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        first = text.split("\n", 1)[0]
        return max(",;\t|", key=first.count)


def _arrow_encoding(encoding: str) -> str:
    # Arrow reads "utf8" natively; any other name (even "utf-8") goes through a slow Python transcoder.
    return "utf8" if encoding.replace("-", "").replace("_", "").lower() in ("utf8", "ascii") else encoding


def _csv_reader(
    path: Path, encoding: str, delimiter: str, column_types: dict[str, pa.DataType]
) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=_arrow_encoding(encoding), block_size=BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
        convert_options=_convert_options(column_types),
    )


def _locate_bad_value(path: Path, encoding: str, delimiter: str, column: int, kind: pa.DataType) -> int | None:
    """The first data row (1 = first after the header) whose ``column`` does not convert to ``kind``."""
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        for number, row in enumerate(reader, start=1):
            value = row[column] if column < len(row) else ""
            if value == "":
                continue
            try:
                pa.array([value]).cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return number
    return None


def _csv_batches(
    path: Path, types: dict[str, pa.DataType], name: str, progress: LoadProgress | None = None
) -> tuple[pa.Schema, Callable[[], Iterator[pa.RecordBatch]], str, str]:
    """Schema and a batch iterator over a CSV, with encoding and delimiter detected and inferred types widened."""
    with path.open("rb") as handle:
        sample = handle.read(1024 * 1024)
    if not sample.strip():
        raise LoadError(name, "the file is empty")
    encoding = detect_encoding(sample)
    delimiter = detect_delimiter(sample.decode(encoding, errors="replace"))
    column_types = {**_inferred_types(path, encoding, delimiter, types, name), **types}
    for _attempt in range(50):  # each retry widens one more inferred column to text
        try:
            reader = _csv_reader(path, encoding, delimiter, column_types)
            schema = reader.schema
            unknown = set(types) - set(schema.names)
            if unknown:
                raise LoadError(name, f"no such field(s) {sorted(unknown)} (the file has {schema.names[:50]})")
            batches = list(_drain_first_pass(reader, path.stat().st_size, progress))  # conversion errors surface here
        except pa.ArrowInvalid as error:
            message = str(error)
            match = _CONVERSION.search(message)
            if match is None:
                raise LoadError(name, message.splitlines()[0][:500]) from None
            column = int(match.group(1))
            field = _column_name(path, encoding, delimiter, column)
            if field in types:
                row = _locate_bad_value(path, encoding, delimiter, column, types[field])
                raise LoadError(name, f"value does not convert to {types[field]}", row=row, field=field) from None
            column_types[field] = pa.string()
            continue
        return schema, lambda batches=batches: iter(batches), encoding, delimiter
    raise LoadError(name, "too many columns change type along the file")


def _inferred_types(
    path: Path, encoding: str, delimiter: str, types: dict[str, pa.DataType], name: str
) -> dict[str, pa.DataType]:
    """Each column's type, inferred on the first :data:`SAMPLE_BYTES` (whole lines); all-empty columns are text."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
        if handle.read(1):
            sample = sample[: sample.rfind(b"\n") + 1]
    try:
        table = pacsv.read_csv(
            io.BytesIO(sample),
            read_options=pacsv.ReadOptions(encoding=_arrow_encoding(encoding)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=_convert_options(types),
        )
    except pa.ArrowInvalid as error:
        if _CONVERSION.search(str(error)):
            return {}  # a declared type fails in the sample: the full read below names the row
        raise LoadError(name, str(error).splitlines()[0][:500]) from None
    return {f.name: pa.string() if pa.types.is_null(f.type) else f.type for f in table.schema}


def _convert_options(column_types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=column_types, strings_can_be_null=True, timestamp_parsers=[pacsv.ISO8601, "%d/%m/%Y"]
    )


def _drain_first_pass(
    reader: pacsv.CSVStreamingReader, size: int, progress: LoadProgress | None
) -> Iterator[pa.RecordBatch]:
    # Reading every batch before the table is written lets a type change deep in the file be handled by
    # widening that column and reading again, instead of failing the engine's write half-way.
    for number, batch in enumerate(reader, start=1):
        if progress is not None:  # each batch is one block of the file (ReadOptions.block_size)
            progress("reading", min(size, number * BLOCK_BYTES), size)
        yield batch
    if progress is not None:
        progress("reading", size, size)


def _column_name(path: Path, encoding: str, delimiter: str, column: int) -> str:
    with path.open(encoding=encoding, newline="") as handle:
        header = next(csv.reader(handle, delimiter=delimiter), [])
    return header[column] if column < len(header) else f"column {column + 1}"


def _json_table(path: Path, name: str) -> pa.Table:
    with path.open("rb") as handle:
        head = handle.read(1).lstrip()
        handle.seek(0)
        if head == b"[":
            try:
                records = json.load(handle)
            except json.JSONDecodeError as error:
                raise LoadError(name, f"invalid JSON: {error.msg}", row=error.lineno) from None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise LoadError(name, "a JSON datastore file is an array of objects, or one object per line")
            return pa.Table.from_pylist(records)
    try:
        return pajson.read_json(path)
    except pa.ArrowInvalid as error:
        raise LoadError(name, str(error).splitlines()[0][:500]) from None


def _excel_table(path: Path, name: str) -> pa.Table:
    try:
        # A stream, not a path: the store names files by hash, without the suffix openpyxl looks at.
        with path.open("rb") as handle:
            workbook = load_workbook(io.BytesIO(handle.read()), read_only=True, data_only=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise LoadError(name, f"not a readable Excel (.xlsx) file: {error}") from None
    rows = workbook.worksheets[0].iter_rows(values_only=True)
    header = [str(cell) if cell is not None else f"column_{i + 1}" for i, cell in enumerate(next(rows, ()))]
    if not header:
        raise LoadError(name, "the first sheet is empty")
    records = [dict(zip(header, row, strict=False)) for row in rows if any(cell is not None for cell in row)]
    return pa.Table.from_pylist(records)


def _cast(table: pa.Table, types: dict[str, pa.DataType], name: str) -> pa.Table:
    for field, kind in types.items():
        if field not in table.column_names:
            raise LoadError(name, f"no such field {field!r}")
        index = table.column_names.index(field)
        try:
            table = table.set_column(index, field, table.column(index).cast(kind))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise LoadError(name, f"value does not convert to {kind}: {str(error)[:200]}", field=field) from None
    return table


def _clean_names(schema: pa.Schema, name: str) -> None:
    seen: set[str] = set()
    for index, field in enumerate(schema.names):
        if not field or not field.strip():
            raise LoadError(name, f"column {index + 1} has no name in the header", row=0)
        if field in seen:
            raise LoadError(name, "duplicate column name in the header", row=0, field=field)
        if field.startswith("_"):
            raise LoadError(name, "field names may not start with '_' (reserved, as in CKAN)", row=0, field=field)
        seen.add(field)


ROW_ID = "_id"
"""CKAN's row id: every table gets it at load (1, 2, … in file order), shown as its first field. It is the unique
tiebreaker of :func:`search`'s cursor paging (field names starting with ``_`` are refused, so it never clashes)."""


def _with_row_ids(schema: pa.Schema, data: Any, start: int = 1) -> tuple[pa.Schema, Any]:
    """``data`` (a table or an iterator of record batches) with ``_id`` numbered from ``start`` as first column."""
    typed = pa.schema([pa.field(ROW_ID, pa.int64(), nullable=False), *schema])
    if isinstance(data, pa.Table):
        ids = pa.array(range(start, start + data.num_rows), type=pa.int64())
        return typed, data.add_column(0, pa.field(ROW_ID, pa.int64(), nullable=False), ids)

    def numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        following = start
        for batch in batches:
            ids = pa.array(range(following, following + batch.num_rows), type=pa.int64())
            following += batch.num_rows
            yield pa.RecordBatch.from_arrays([ids, *batch.columns], schema=typed)

    return typed, numbered(iter(data))


def load_file(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    resource_id: str,
    path: Path | None = None,
    *,
    types: dict[str, str] | None = None,
    file_format: str | None = None,
    progress: LoadProgress | None = None,
) -> LoadReport:
    """Load a resource's file (its uploaded file by default) into its datastore table, atomically.

    Parameters
    ----------
    path
        Another copy of the file (the benchmark, a local file); default: the resource's uploaded file.
    types
        Field → type (``text``, ``int``, ``float``, ``bool``, ``date``, ``timestamp``) overriding inference.
    file_format
        ``csv``, ``json`` or ``xlsx``; default: from the resource's format or the file's suffix.
    progress
        Told how the load goes (:data:`LoadProgress`).
    """
    caller.authorize(
        WRITE,
        detail={
            "resource": {"operation": "datastore_load", "resource_id": str(resource_id)[:36]},
            **({"channel": caller.channel} if caller.channel else {}),
        },
    )
    resource, _dataset = catalog.resource_for_datastore(caller, resource_id, WRITE)
    overrides = _overrides(types)
    if path is None:
        if resource.url_type != "upload" or not resource.sha256:
            raise ValidationFailed({"resource_id": ["the resource has no uploaded file to load"]})
        path, name = catalog.file_path(resource.sha256), resource.filename or resource.id
    else:
        name = path.name
    fields = json.loads(resource.fields)
    kind = (file_format or fields.get("format") or Path(name).suffix.lstrip(".") or "csv").lower()
    started = time.perf_counter()
    encoding = delimiter = None
    if kind in ("csv", "tsv", "txt"):
        schema, batches, encoding, delimiter = _csv_batches(path, overrides, name, progress)
        _clean_names(schema, name)
        data: Any = batches()
        expected = sum(batch.num_rows for batch in batches())
    elif kind in ("json", "ndjson", "jsonl", "geojson"):
        table = _cast(_json_table(path, name), overrides, name)
        schema, data, expected = table.schema, table, table.num_rows
        _clean_names(schema, name)
    elif kind in ("xlsx", "xlsm", "excel"):
        table = _cast(_excel_table(path, name), overrides, name)
        schema, data, expected = table.schema, table, table.num_rows
        _clean_names(schema, name)
    else:
        raise LoadError(name, f"format {kind!r} cannot go into the datastore (csv, json, xlsx)")
    target = table_name(resource.id)
    schema, data = _with_row_ids(schema, data)
    if progress is not None:
        progress("writing", 0, expected)
    rows = _write(engine, target, data, schema, name)
    if progress is not None:
        progress("writing", rows, rows)
    report_fields = [{"id": f.name, "type": _type_name(f.type)} for f in schema]
    _register(catalog, resource.id, target, report_fields, rows, [])
    return LoadReport(resource.id, target, report_fields, rows, time.perf_counter() - started, encoding, delimiter)


def _write(engine: Engine, target: str, data: Any, schema: pa.Schema, name: str) -> int:
    try:
        return engine.create_table(target, data, schema=schema)
    except (EngineError, pa.ArrowException) as error:
        raise LoadError(name, f"the warehouse refused the rows: {str(error).splitlines()[0][:300]}") from None


def _register(
    catalog: Catalog, resource_id: str, target: str, fields: list[dict[str, str]], rows: int, primary_key: list[str]
) -> None:
    with catalog.session() as session:
        row = session.get(DatastoreRow, resource_id)
        now = dt.datetime.now(dt.UTC)
        if row is None:
            session.add(
                DatastoreRow(
                    resource_id=resource_id,
                    table_name=target,
                    fields=json.dumps(fields),
                    primary_key=json.dumps(primary_key),
                    rows=rows,
                    loaded_at=now,
                )
            )
        else:
            row.fields, row.rows, row.loaded_at = json.dumps(fields), rows, now
            row.primary_key = json.dumps(primary_key)
        resource = session.get(ResourceRow, resource_id)
        if resource is not None:
            resource.datastore_active = True


def create_from_records(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    resource_id: str,
    *,
    fields: Sequence[dict[str, Any]] | None = None,
    records: Sequence[dict[str, Any]] | None = None,
    primary_key: Sequence[str] = (),
) -> LoadReport:
    """CKAN's ``datastore_create``: a table from declared fields and records (replacing any earlier one)."""
    caller.authorize(
        WRITE,
        detail={
            "resource": {"operation": "datastore_create", "resource_id": str(resource_id)[:36]},
            **({"channel": caller.channel} if caller.channel else {}),
        },
    )
    resource, _dataset = catalog.resource_for_datastore(caller, resource_id, WRITE)
    declared = list(fields or [])
    if len(declared) > MAX_FIELDS or not all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in declared):
        raise ValidationFailed({"fields": ["a list of {id, type} objects"]})
    types = {f["id"]: str(f.get("type", "text")) for f in declared}
    overrides = _overrides(types)
    started = time.perf_counter()
    rows_in = list(records or [])
    if declared:
        schema = pa.schema([(f["id"], overrides[f["id"]]) for f in declared])
    elif rows_in:
        schema = pa.Table.from_pylist(rows_in[:1000]).schema
    else:
        raise ValidationFailed({"fields": ["give fields or records"]})
    _clean_names(schema, "records")
    table = _records_table(rows_in, schema)
    missing = [key for key in primary_key if key not in schema.names]
    if missing:
        raise ValidationFailed({"primary_key": [f"not fields: {missing}"]})
    target = table_name(resource.id)
    schema, table = _with_row_ids(schema, table)
    rows = _write(engine, target, table, schema, "records")
    report_fields = [{"id": f.name, "type": _type_name(f.type)} for f in schema]
    _register(catalog, resource.id, target, report_fields, rows, list(primary_key))
    return LoadReport(resource.id, target, report_fields, rows, time.perf_counter() - started)


def _records_table(records: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise LoadError("records", "each record is an object", row=number)
        extra = set(record) - set(schema.names)
        if extra:
            raise LoadError("records", f"unknown field(s) {sorted(extra)}", row=number)
    try:
        return pa.Table.from_pylist(list(records), schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for number, record in enumerate(records, start=1):  # find the row and field that do not convert
            for field in schema:
                try:
                    pa.array([record.get(field.name)], type=field.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise LoadError(
                        "records", f"value does not convert to {field.type}", row=number, field=field.name
                    ) from None
        raise


def _entry(catalog: Catalog, resource_id: str) -> DatastoreRow:
    with catalog.session() as session:
        row = (
            session.get(DatastoreRow, resource_id) if isinstance(resource_id, str) and len(resource_id) <= 36 else None
        )
        if row is None:
            raise NotFound(f'Resource "{resource_id}" was not found in the datastore.')
        return row


def upsert(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    resource_id: str,
    records: Sequence[dict[str, Any]],
    *,
    method: str = "upsert",
) -> int:
    """CKAN's ``datastore_upsert``: ``insert`` appends; ``upsert``/``update`` replace rows with the same key."""
    caller.authorize(
        WRITE,
        detail={
            "resource": {"operation": "datastore_upsert", "resource_id": str(resource_id)[:36]},
            **({"channel": caller.channel} if caller.channel else {}),
        },
    )
    catalog.resource_for_datastore(caller, resource_id, WRITE)
    entry = _entry(catalog, resource_id)
    if not isinstance(records, list) or len(records) > MAX_UPSERT:
        raise ValidationFailed({"records": [f"a list of at most {MAX_UPSERT} objects"]})
    if method not in ("insert", "upsert", "update"):
        raise ValidationFailed({"method": ["must be insert, upsert or update"]})
    key = json.loads(entry.primary_key)
    if method != "insert" and not key:
        raise ValidationFailed({"method": [f"{method} needs the table's primary_key (datastore_create)"]})
    schema = pa.schema(
        [(f.name, f.type) for f in engine.query(exp.select("*").from_(entry.table_name).limit(0)).schema]
    )
    numbered = ROW_ID in schema.names  # tables loaded before row ids have none
    given = pa.schema([f for f in schema if f.name != ROW_ID])
    incoming = _records_table(list(records), given)
    current = engine.query(exp.select("*").from_(entry.table_name))
    replaced: dict[tuple[Any, ...], int] = {}
    if key:
        keys = {tuple(row[k] for k in key) for row in incoming.select(key).to_pylist()}
        kept = []
        for row in current.to_pylist():
            if tuple(row[k] for k in key) in keys:
                if numbered:
                    replaced[tuple(row[k] for k in key)] = row[ROW_ID]
            else:
                kept.append(row)
        current = pa.Table.from_pylist(kept, schema=schema)
    if numbered:
        # A replaced row keeps its _id (as in CKAN); a new row gets the next one, so ids stay unique.
        following = max(int(pc.max(current.column(ROW_ID)).as_py() or 0), *replaced.values(), 0) + 1
        ids = []
        for row in incoming.select(key).to_pylist() if key else [{}] * incoming.num_rows:
            found = replaced.get(tuple(row[k] for k in key)) if key else None
            if found is None:
                found, following = following, following + 1
            ids.append(found)
        incoming = incoming.add_column(0, pa.field(ROW_ID, pa.int64(), nullable=False), pa.array(ids, pa.int64()))
    merged = pa.concat_tables([current.cast(schema), incoming.cast(schema)])
    rows = _write(engine, entry.table_name, merged, schema, "records")
    with catalog.session() as session:
        stored = session.get(DatastoreRow, resource_id)
        if stored is not None:
            stored.rows = rows
    return len(incoming)


def delete(
    caller: Caller, catalog: Catalog, engine: Engine, resource_id: str, filters: dict[str, Any] | None = None
) -> None:
    """CKAN's ``datastore_delete``: the rows matching ``filters``, or (none given) the whole table."""
    caller.authorize(
        WRITE,
        detail={
            "resource": {"operation": "datastore_delete", "resource_id": str(resource_id)[:36]},
            **({"channel": caller.channel} if caller.channel else {}),
        },
    )
    catalog.resource_for_datastore(caller, resource_id, WRITE)
    entry = _entry(catalog, resource_id)
    fields = [f["id"] for f in json.loads(entry.fields)]
    if not filters:
        engine.drop_table(entry.table_name)
        with catalog.session() as session:
            stored = session.get(DatastoreRow, resource_id)
            if stored is not None:
                session.delete(stored)
            resource = session.get(ResourceRow, resource_id)
            if resource is not None:
                resource.datastore_active = False
        return
    condition = _filters(filters, fields)
    remaining = engine.query(exp.select("*").from_(entry.table_name).where(exp.not_(condition)))
    rows = _write(engine, entry.table_name, remaining, remaining.schema, "records")
    with catalog.session() as session:
        stored = session.get(DatastoreRow, resource_id)
        if stored is not None:
            stored.rows = rows


def _column(name: str, fields: list[str], where: str) -> exp.Column:
    if name not in fields:
        raise ValidationFailed({where: [f"field {name!r} not in the table (fields: {', '.join(fields[:50])})"]})
    return exp.column(exp.to_identifier(name, quoted=True))


def _filters(filters: Any, fields: list[str]) -> exp.Expr:
    if not isinstance(filters, dict) or len(filters) > 100:
        raise ValidationFailed({"filters": ["an object of at most 100 field: value(s)"]})
    parts: list[exp.Expr] = []
    for field, value in filters.items():
        column = _column(field, fields, "filters")
        values = value if isinstance(value, list) else [value]
        if len(values) > 1000 or not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            raise ValidationFailed({"filters": [f"{field}: a value or a list of at most 1000 values"]})
        # Compared as text, as CKAN does for filters given in a URL: "5" matches an integer 5.
        text = exp.cast(column, exp.DataType.build("text"))
        parts.append(
            exp.or_(*[text.eq(exp.Literal.string(str(v))) if v is not None else column.is_(exp.null()) for v in values])
            if values
            else exp.false()
        )
    return exp.and_(*parts) if parts else exp.true()


MAX_CURSOR_CHARS = 8192
"""A ``datastore_search`` cursor is at most this long (it holds the last row's sort keys)."""
_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP"}


def _cursor_digest(resource_id: str, loaded_at: Any, filters: Any, q: Any, keys: list[tuple[str, bool]]) -> str:
    """What a cursor is bound to: the resource, its table's load, and the query (filters, q, sort)."""
    bound = json.dumps([resource_id, str(loaded_at), filters, q, keys], sort_keys=True, default=str)
    return hashlib.sha256(bound.encode("utf-8")).hexdigest()[:32]


def _cursor_value(value: Any) -> str | None:
    """A sort key's value as exact text (a float by its repr, which reads back to the same float)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _make_cursor(digest: str, values: list[Any]) -> str:
    text = json.dumps({"v": 1, "h": digest, "k": [_cursor_value(v) for v in values]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _read_cursor(cursor: Any, digest: str, width: int) -> list[str | None]:
    """The last row's key values of a cursor made for this very query; a clear refusal otherwise."""
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise ValidationFailed({"cursor": [f"text of 1 to {MAX_CURSOR_CHARS} characters from _links.next"]})
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed({"cursor": ["not a cursor of this datastore (take it from _links.next)"]}) from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("k"), list):
        raise ValidationFailed({"cursor": ["not a cursor of this datastore (take it from _links.next)"]})
    if data.get("h") != digest:
        raise ValidationFailed(
            {"cursor": ["made for another resource, query (filters, q, sort) or load of the table: start again"]}
        )
    values = data["k"]
    if len(values) != width or not all(v is None or isinstance(v, str) for v in values):
        raise ValidationFailed({"cursor": ["its keys do not match the query's sort"]})
    return values


def _after(keys: list[tuple[str, bool]], kinds: dict[str, str], values: list[str | None]) -> exp.Expr:
    """Rows strictly after the cursor's row in the order ``keys`` (nulls last in either direction).

    The order is total because the last key is the unique ``_id``: (k1, …, kn) after (v1, …, vn) is
    k1 after v1, or k1 = v1 and k2 after v2, and so on.
    """
    branches: list[exp.Expr] = []
    equal: list[exp.Expr] = []
    for (name, descending), value in zip(keys, values, strict=True):
        column = exp.column(exp.to_identifier(name, quoted=True))
        if value is None:  # nulls come last: nothing but other nulls follows, and they are "equal" here
            equal.append(column.is_(exp.null()))
            continue
        kind = kinds.get(name, "text")
        _check_key(kind, value)
        literal = (
            exp.cast(exp.Literal.string(value), exp.DataType.build(_SQL_TYPES[kind]))
            if kind in _SQL_TYPES
            else exp.Literal.string(value)
        )
        beyond = exp.LT(this=column, expression=literal) if descending else exp.GT(this=column, expression=literal)
        branches.append(exp.and_(*equal, exp.or_(beyond, column.is_(exp.null()))))
        equal.append(column.eq(literal))
    return exp.or_(*branches) if branches else exp.false()


_KEY_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "date": dt.date.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "bool": lambda text: {"true": True, "false": False}[text],
}


def _check_key(kind: str, value: str) -> None:
    """A cursor's key must read as its column's type (a forged one is refused here, not by the warehouse)."""
    parse = _KEY_PARSERS.get(kind)
    if parse is None:
        return
    try:
        parse(value)
    except (ValueError, KeyError):
        raise ValidationFailed({"cursor": [f"a key is not a {kind} value: not a cursor of this query"]}) from None


def _link(resource_id: str, params: dict[str, Any]) -> str:
    given = {"resource_id": resource_id}
    for key, value in params.items():
        if value is None or value == "" or value == []:
            continue
        given[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return "/api/3/action/datastore_search?" + urlencode(given)


def search(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    resource_id: str,
    *,
    filters: dict[str, Any] | None = None,
    q: str | dict[str, str] | None = None,
    fields: list[str] | None = None,
    sort: str | None = None,
    limit: int = 100,
    offset: int = 0,
    include_total: bool = True,
    records_format: str = "objects",
    cursor: str | None = None,
) -> dict[str, Any]:
    """CKAN's ``datastore_search`` over one resource's table, in CKAN's result shape.

    Paging: ``offset`` as in CKAN, or ``cursor``, the opaque value of ``_links.next``. The rows are in a total
    order (the ``sort`` keys, nulls last, then the unique ``_id``); a cursor holds the last row's keys and the next
    page starts strictly after it (keyset paging), so paging never skips nor repeats a row, at any depth, even
    while rows are added. A cursor is bound to its resource, the table's load and the query (filters, q, sort):
    any other is refused.
    """
    caller.authorize(READ)
    catalog.readable_resource(caller, resource_id)
    entry = _entry(catalog, resource_id)
    declared = json.loads(entry.fields)
    names = [f["id"] for f in declared]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_SEARCH_ROWS:
        raise ValidationFailed({"limit": [f"must be an integer from 0 to {MAX_SEARCH_ROWS}"]})
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**9:
        raise ValidationFailed({"offset": ["must be a non-negative integer"]})
    if records_format not in ("objects", "lists", "csv"):
        raise ValidationFailed({"records_format": ["must be objects, lists or csv"]})
    if cursor is not None and offset:
        raise ValidationFailed({"cursor": ["give a cursor or an offset, not both"]})
    chosen = list(fields) if fields else names
    columns = [_column(name, names, "fields") for name in chosen]
    condition = _filters(filters or {}, names)
    condition = exp.and_(condition, _text_query(q, declared))
    kinds = {f["id"]: f["type"] for f in declared}
    sort_keys = _sort(sort, names)
    # The total order: the sort keys, then _id (unique) unless already sorted on; tables loaded before row ids
    # have none, and page by offset only.
    keys = [*sort_keys, *([(ROW_ID, False)] if ROW_ID in names and ROW_ID not in dict(sort_keys) else [])]
    keyed = ROW_ID in dict(keys)
    digest = _cursor_digest(resource_id, entry.loaded_at, filters, q, keys)
    selected = condition
    if cursor is not None:
        if not keyed:
            raise ValidationFailed(
                {"cursor": ["this table was loaded before row ids: load it again to page by cursor"]}
            )
        selected = exp.and_(condition, _after(keys, kinds, _read_cursor(cursor, digest, len(keys))))
    hidden = [
        exp.alias_(exp.column(exp.to_identifier(name, quoted=True)), f"__key{i}") for i, (name, _) in enumerate(keys)
    ]
    query = exp.select(*columns, *hidden).from_(entry.table_name).where(selected)
    for name, descending in keys:
        column = exp.column(exp.to_identifier(name, quoted=True))
        query = query.order_by(exp.Ordered(this=column, desc=descending, nulls_first=False))
    with engine.time_limit(SEARCH_TIME_LIMIT_S):
        page = engine.query(query.limit(limit).offset(offset))
        total = (
            engine.scalar_int(exp.select(exp.func("count", exp.Star())).from_(entry.table_name).where(condition))
            if include_total
            else None
        )
    last = [page.column(f"__key{i}")[-1].as_py() for i in range(len(keys))] if page.num_rows else None
    page = page.select(list(range(len(columns))))
    query_params = {"filters": filters, "q": q, "sort": sort, "fields": fields, "limit": str(limit),
                    "records_format": None if records_format == "objects" else records_format}  # fmt: skip
    if keyed and last is not None:
        following = _link(resource_id, {**query_params, "cursor": _make_cursor(digest, last)})
    elif keyed and cursor is not None:
        following = _link(resource_id, {**query_params, "cursor": cursor})  # the end: the same (empty) page again
    else:
        following = _link(resource_id, {**query_params, "offset": str(offset + limit)})
    result: dict[str, Any] = {
        "resource_id": resource_id,
        "fields": [{"id": name, "type": kinds[name]} for name in chosen],
        "limit": limit,
        "offset": offset,
        "records_format": records_format,
        "_links": {"start": f"/api/3/action/datastore_search?resource_id={resource_id}", "next": following},
    }
    if total is not None:
        result["total"] = total
    result["records"] = _records(page, records_format)
    return result


def _text_query(q: Any, declared: list[dict[str, str]]) -> exp.Expr:
    if q in (None, ""):
        return exp.true()
    text_fields = [f["id"] for f in declared if f["type"] == "text"]
    if isinstance(q, str):
        targets = dict.fromkeys(text_fields, q)
        if not targets:
            return exp.false()
        joined = exp.or_(*[_contains(name, value) for name, value in targets.items()])
        return joined
    if isinstance(q, dict) and len(q) <= 100 and all(isinstance(v, str) for v in q.values()):
        names = [f["id"] for f in declared]
        for name in q:
            _column(name, names, "q")  # an unknown field is refused, naming the known ones
        return exp.and_(*[_contains(name, value) for name, value in q.items()])
    raise ValidationFailed({"q": ["text, or an object of field: text"]})


def _contains(name: str, value: str) -> exp.Expr:
    if len(value) > 1000:
        raise ValidationFailed({"q": ["at most 1000 characters"]})
    pattern = "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    column = exp.cast(exp.column(exp.to_identifier(name, quoted=True)), exp.DataType.build("text"))
    return exp.ILike(this=column, expression=exp.Literal.string(pattern))


def _sort(sort: str | None, names: list[str]) -> list[tuple[str, bool]]:
    if not sort:
        return []
    if not isinstance(sort, str) or len(sort) > 2000:
        raise ValidationFailed({"sort": ["text of at most 2000 characters"]})
    keys = []
    for part in sort.split(","):
        words = part.strip().rsplit(" ", 1)
        name, direction = (
            (words[0], words[1].lower())
            if len(words) == 2 and words[1].lower() in ("asc", "desc")
            else (part.strip(), "asc")
        )
        name = name.strip('"')
        _column(name, names, "sort")
        keys.append((name, direction == "desc"))
    return keys


def _records(table: pa.Table, records_format: str) -> Any:
    rows = table.to_pylist()
    if records_format == "lists":
        return [[_jsonable(row[name]) for name in table.column_names] for row in rows]
    if records_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        for row in rows:
            writer.writerow([row[name] for name in table.column_names])
        return out.getvalue()
    return [{name: _jsonable(value) for name, value in row.items()} for row in rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, Decimal):  # sums of integers come back as wide decimals
        return int(value) if value == value.to_integral_value() else float(value)
    if value is not None and not isinstance(value, str | int | float | bool):
        return str(value)
    return value


def search_sql(caller: Caller, catalog: Catalog, engine: Engine, sql: str) -> dict[str, Any]:
    """CKAN's ``datastore_search_sql``: one read-only SELECT over datastore tables, bounded in rows and time."""
    caller.authorize(READ)
    with catalog.session() as session:
        entries = session.scalars(select(DatastoreRow)).all()
    readable = {}
    for entry in entries:
        try:
            catalog.readable_resource(caller, entry.resource_id)
        except NotFound:
            continue  # a resource of a deleted dataset is no longer public
        readable[entry.resource_id] = entry.table_name
    query = guarded_query(sql, readable, max_rows=MAX_SQL_ROWS)
    try:
        with engine.time_limit(SQL_TIME_LIMIT_S):
            table = engine.query(query)
    except EngineError as error:
        raise ValidationFailed({"sql": [str(error).splitlines()[0][:300]]}) from None
    truncated = table.num_rows > MAX_SQL_ROWS
    table = table.slice(0, MAX_SQL_ROWS)
    fields = [{"id": f.name, "type": _type_name(f.type)} for f in table.schema]
    return {"sql": sql, "fields": fields, "records": _records(table, "objects"), "records_truncated": truncated}


def store_and_load(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    dataset: str,
    path: Path,
    *,
    types: dict[str, str] | None = None,
    progress: LoadProgress | None = None,
) -> tuple[dict[str, Any], LoadReport]:
    """Upload a local file as a new resource of ``dataset`` and load it into the datastore (the CLI's path)."""
    with path.open("rb") as stream:
        resource = catalog.resource_create(
            caller, {"package_id": dataset, "name": path.name}, Upload(path.name, stream)
        )
    return resource, load_file(caller, catalog, engine, resource["id"], types=types, progress=progress)
