"""NDJSON connector: one JSON object per line, streamed in blocks; scalar values arrive as strings."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from massalia.sources.base import Connector, SourceError, SourceOptions, with_provenance
from massalia.sources.blocks import TextBlock, check_encoding, fast_lines, iter_blocks, record_start_lines


def _diagnose(path: Path, block: TextBlock, encoding: str) -> SourceError:
    for offset, raw in enumerate(block.data.split(b"\n")):
        line = block.first_line + offset
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode(encoding))
        except UnicodeDecodeError as error:
            return SourceError(path, line, f"invalid {encoding} byte at column {error.start + 1}")
        except json.JSONDecodeError as error:
            return SourceError(path, line, f"invalid JSON: {error.msg} at column {error.colno}")
        if not isinstance(value, dict):
            return SourceError(path, line, f"expected a JSON object, found {type(value).__name__}")
    return SourceError(path, block.first_line, "malformed NDJSON block (the parser refused it)")


def _as_text(column: pa.ChunkedArray, path: Path, name: str) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_nested(column.type):
        raise SourceError(path, None, "nested JSON values are not supported by the flat connector", field=name)
    return pc.cast(column, pa.string())


class NdjsonConnector(Connector):
    r"""Read newline-delimited JSON objects; keys become columns, values arrive as strings.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.ndjson"
    >>> _ = p.write_text('{"id": 1, "code": "C50"}\n\n{"id": 2}\n')
    >>> batch = next(NdjsonConnector().read(p, SourceOptions(format="ndjson")))
    >>> batch.column("id").to_pylist(), batch.column("_source_line").to_pylist()
    (['1', '2'], [1, 3])
    """

    name = "ndjson"

    def read(
        self, path: Path, options: SourceOptions, *, digest: hashlib._Hash | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``path``; see :meth:`Connector.read`."""
        encoding = check_encoding(path, options.encoding)
        names: list[str] = list(options.columns)
        for block in iter_blocks(path, block_bytes=options.block_bytes, quote=None, digest=digest):
            if not block.data.strip():
                continue
            data = block.data if encoding == "utf-8" else block.data.decode(encoding).encode("utf-8")
            try:
                table = pajson.read_json(
                    io.BytesIO(data), read_options=pajson.ReadOptions(block_size=max(len(data) + 1, 1 << 20))
                )
            except (pa.ArrowInvalid, UnicodeDecodeError):
                raise _diagnose(path, block, encoding) from None
            for name in table.column_names:
                if name not in names:
                    names.append(name)
            columns = [
                _as_text(table.column(n), path, n)
                if n in table.column_names
                else pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
                for n in names
            ]
            table = pa.Table.from_arrays(columns, names=names).combine_chunks()
            lines = fast_lines(block, table.num_rows)
            if lines is None:
                lines = record_start_lines(block, None)
            offset = 0
            for batch in table.to_batches():
                yield with_provenance(batch, path, lines[offset : offset + batch.num_rows])
                offset += batch.num_rows
