"""Connector protocol, provenance columns and the connector registry.

A connector turns one source file into a stream of Arrow record batches. Every batch carries two
provenance columns, :data:`SOURCE_FILE` and :data:`SOURCE_LINE`, so that any value found wrong
later (a bad date, an unknown code) can be traced back to the exact file and line it came from.
Connectors know nothing of the target model: they read, they never map.
"""

from __future__ import annotations

import hashlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa

SOURCE_FILE = "_source_file"
"""Provenance column: the path of the file a row was read from."""
SOURCE_LINE = "_source_line"
"""Provenance column: the 1-based line (row number for binary formats) where the row starts."""

DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024


class SourceError(ValueError):
    """A source file cannot be read; the message names the file, the line and, if known, the field.

    Attributes
    ----------
    path, line, field
        Where the problem is (``line``/``field`` are ``None`` when it concerns the whole file).
    """

    def __init__(self, path: Path | str, line: int | None, message: str, *, field: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        where = self.path if line is None else f"{self.path}, line {line}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class SourceOptions:
    """How to read one source file (what a site's mapping declares for it).

    Parameters
    ----------
    format
        Connector name: ``csv``, ``ndjson`` or ``parquet`` (or any registered connector).
    separator, quote, encoding
        Text formats only. ``encoding`` is any Python codec (``utf-8``, ``latin-1``...); a UTF-8
        byte-order mark is always skipped.
    header
        Whether the first line names the columns (CSV).
    columns
        Expected column names; a file missing one of them is refused naming the column.
    block_bytes
        Size of the blocks read at once (bounded memory whatever the file size).
    """

    format: str = "csv"
    separator: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    header: bool = True
    columns: tuple[str, ...] = ()
    block_bytes: int = DEFAULT_BLOCK_BYTES
    extra: dict[str, str] = field(default_factory=dict)


class Connector(ABC):
    """Read one kind of source file as Arrow batches with provenance columns."""

    name: ClassVar[str]

    @abstractmethod
    def read(
        self, path: Path, options: SourceOptions, *, digest: hashlib._Hash | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``path`` as record batches; each has :data:`SOURCE_FILE` and :data:`SOURCE_LINE` last.

        Raises
        ------
        SourceError
            The file is malformed; the message names the file and the line.
        """


def with_provenance(batch: pa.RecordBatch, path: Path, lines: np.ndarray) -> pa.RecordBatch:
    """Append the provenance columns to ``batch`` (``lines`` holds one line number per row)."""
    arrays = [*batch.columns]
    names = [*batch.schema.names]
    arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(lines), dtype=np.int32)), pa.array([str(path)])))
    arrays.append(pa.array(lines.astype(np.int64, copy=False), type=pa.int64()))
    names += [SOURCE_FILE, SOURCE_LINE]
    return pa.RecordBatch.from_arrays(arrays, names=names)


ConnectorFactory = Callable[[], Connector]

CONNECTORS: dict[str, str | ConnectorFactory] = {
    "csv": "massalia.sources.delimited:CsvConnector",
    "ndjson": "massalia.sources.ndjson:NdjsonConnector",
    "parquet": "massalia.sources.parquet:ParquetConnector",
}
"""Connector name → factory, or ``"module:attribute"`` imported on first use (built-ins)."""


def register_connector(name: str, factory: str | ConnectorFactory) -> None:
    """Register a connector under ``name`` (built-ins and extensions alike).

    Examples
    --------
    >>> register_connector("tsv-parquet", "massalia.sources.parquet:ParquetConnector")
    >>> type(get_connector("tsv-parquet")).__name__
    'ParquetConnector'
    """
    CONNECTORS[name] = factory


def get_connector(name: str) -> Connector:
    """The connector registered as ``name`` (an error lists the known ones)."""
    try:
        factory = CONNECTORS[name]
    except KeyError:
        raise ValueError(f"unknown source format {name!r}; known formats: {', '.join(sorted(CONNECTORS))}") from None
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        CONNECTORS[name] = factory
    return factory()


def read_source(path: Path, options: SourceOptions | None = None) -> Iterator[pa.RecordBatch]:
    r"""Stream ``path`` with the connector its ``options.format`` names.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text("id,name\n1,Ana\n2,Bo\n")
    >>> batch = next(read_source(p))
    >>> batch.column("_source_line").to_pylist()
    [2, 3]
    """
    options = options or SourceOptions()
    return get_connector(options.format).read(Path(path), options)
