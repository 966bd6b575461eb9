"""CSV connector: any separator, quote character and ASCII-compatible encoding, streamed in blocks."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from massalia.sources.base import Connector, SourceError, SourceOptions, with_provenance
from massalia.sources.blocks import (
    TextBlock,
    check_encoding,
    fast_lines,
    iter_blocks,
    record_start_lines,
)


def _split_header(path: Path, block: TextBlock, options: SourceOptions, encoding: str) -> tuple[list[str], TextBlock]:
    end = block.data.find(b"\n")
    raw = block.data if end < 0 else block.data[:end]
    try:
        text = raw.decode(encoding).rstrip("\r")
    except UnicodeDecodeError as error:
        raise SourceError(path, 1, f"header is not valid {encoding}: {error.reason}") from None
    names = next(csv.reader([text], delimiter=options.separator, quotechar=options.quote))
    names = [name.strip() for name in names]
    if not names or any(not name for name in names):
        raise SourceError(path, 1, f"header has an empty column name: {text!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SourceError(path, 1, f"header repeats column(s) {', '.join(duplicates)}")
    rest = b"" if end < 0 else block.data[end + 1 :]
    return names, TextBlock(rest, block.first_line + 1, block.final)


def _diagnose(path: Path, block: TextBlock, names: list[str], options: SourceOptions, encoding: str) -> SourceError:
    """Find the first bad line of a block that the fast parser refused, for a precise message."""
    try:
        text = block.data.decode(encoding)
    except UnicodeDecodeError as error:
        line = block.first_line + block.data.count(b"\n", 0, error.start)
        start = block.data.rfind(b"\n", 0, error.start) + 1
        prefix = block.data[start : error.start].decode(encoding, errors="replace")
        column = next(csv.reader([prefix], delimiter=options.separator, quotechar=options.quote), [""])
        field = names[len(column) - 1] if 0 < len(column) <= len(names) else None
        return SourceError(path, line, f"invalid {encoding} byte {block.data[error.start]:#04x}", field=field)
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=options.separator, quotechar=options.quote, strict=True
    )
    start_line = 1
    try:
        for row in reader:
            if row and len(row) != len(names):
                return SourceError(
                    path,
                    block.first_line + start_line - 1,
                    f"expected {len(names)} fields ({options.separator!r}-separated), found {len(row)}",
                )
            start_line = reader.line_num + 1
    except csv.Error as error:
        return SourceError(path, block.first_line + start_line - 1, f"malformed CSV: {error}")
    return SourceError(path, block.first_line, "malformed CSV block (the parser refused it)")


class CsvConnector(Connector):
    r"""Read delimited text. Every value arrives as a string; empty values arrive as null.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.csv"
    >>> _ = p.write_bytes("id;nom\n1;Hélène\n".encode("latin-1"))
    >>> batch = next(CsvConnector().read(p, SourceOptions(separator=";", encoding="latin-1")))
    >>> batch.column("nom").to_pylist(), batch.column("_source_line").to_pylist()
    (['Hélène'], [2])
    """

    name = "csv"

    @staticmethod
    def _parse(
        path: Path,
        block: TextBlock,
        names: list[str],
        schema: pa.Schema,
        options: SourceOptions,
        encoding: str,
        *,
        newlines_in_values: bool,
    ) -> pa.Table | None:
        """Parse one block with pyarrow; ``None`` when pyarrow refuses it (the caller diagnoses)."""
        last_error: pa.ArrowException | None = None
        for use_threads in (True, False):
            try:
                return pacsv.read_csv(
                    pa.BufferReader(pa.py_buffer(block.data)),
                    # pyarrow transcodes through Python for any name but its own spelling of UTF-8.
                    read_options=pacsv.ReadOptions(
                        column_names=names,
                        block_size=1 << 21,
                        use_threads=use_threads,
                        encoding="utf8" if encoding == "utf-8" else encoding,
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=options.separator,
                        quote_char=options.quote,
                        newlines_in_values=newlines_in_values,
                        double_quote=True,
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=schema, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True
                    ),
                )
            except (pa.ArrowInvalid, UnicodeDecodeError):
                return None
            except pa.ArrowException as error:
                # Seen once at 100k patients under memory pressure: pyarrow's threaded conversion
                # failed "for an unknown reason". Parse the block again on one thread.
                last_error = error
        raise SourceError(path, block.first_line, f"the CSV parser failed on the block starting here: {last_error}")

    def read(
        self, path: Path, options: SourceOptions, *, digest: hashlib._Hash | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``path``; see :meth:`Connector.read`."""
        if not options.header:
            raise SourceError(path, None, "CSV files without a header line are not supported; add one")
        encoding = check_encoding(path, options.encoding)
        names: list[str] | None = None
        schema: pa.Schema | None = None
        produced = False
        for block in iter_blocks(path, block_bytes=options.block_bytes, quote=options.quote, digest=digest):
            if names is None:
                names, block = _split_header(path, block, options, encoding)
                missing = [c for c in options.columns if c not in names]
                if missing:
                    raise SourceError(path, 1, f"missing column(s) {', '.join(missing)}; found {', '.join(names)}")
                schema = pa.schema([pa.field(n, pa.string()) for n in names])
            if not block.data or block.data.isspace():
                continue
            # Quote-aware chunking costs pyarrow nothing measurable here, and is always exact.
            table = self._parse(path, block, names, schema, options, encoding, newlines_in_values=True)
            if table is None:
                raise _diagnose(path, block, names, options, encoding)
            lines = fast_lines(block, table.num_rows)
            if lines is None:
                lines = record_start_lines(block, options.quote)
                if len(lines) != table.num_rows:
                    raise _diagnose(path, block, names, options, encoding)
            offset = 0
            for batch in table.to_batches():
                produced = True
                yield with_provenance(batch, path, lines[offset : offset + batch.num_rows])
                offset += batch.num_rows
        if names is None or schema is None:
            raise SourceError(path, None, "empty file (no header line)")
        if not produced:
            # A header-only file still tells its columns, so downstream SQL can refer to them.
            yield with_provenance(pa.RecordBatch.from_pylist([], schema=schema), path, np.zeros(0, dtype=np.int64))
