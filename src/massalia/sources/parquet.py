"""Parquet connector: row groups streamed as batches; the "line" is the 1-based row number."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from massalia.sources.base import Connector, SourceError, SourceOptions, with_provenance


class ParquetConnector(Connector):
    """Read a Parquet file, keeping its column types.

    Examples
    --------
    >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pq.write_table(pa.table({"x": [1, 2]}), p)
    >>> next(ParquetConnector().read(p, SourceOptions(format="parquet"))).column("_source_line").to_pylist()
    [1, 2]
    """

    name = "parquet"

    def read(
        self, path: Path, options: SourceOptions, *, digest: hashlib._Hash | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``path``; see :meth:`Connector.read`."""
        if digest is not None:
            with path.open("rb") as handle:
                while chunk := handle.read(options.block_bytes):
                    digest.update(chunk)
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(path, None, f"not a readable Parquet file: {error}") from None
        missing = [c for c in options.columns if c not in parquet.schema_arrow.names]
        if missing:
            raise SourceError(path, None, f"missing column(s) {', '.join(missing)}")
        row = 1
        if parquet.metadata.num_rows == 0:
            schema = parquet.schema_arrow
            yield with_provenance(pa.RecordBatch.from_pylist([], schema=schema), path, np.zeros(0, dtype=np.int64))
            return
        try:
            for batch in parquet.iter_batches(batch_size=256 * 1024):
                lines = np.arange(row, row + batch.num_rows, dtype=np.int64)
                row += batch.num_rows
                yield with_provenance(batch, path, lines)
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(path, row, f"corrupt Parquet data: {error}") from None
