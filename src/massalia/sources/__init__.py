"""Connectors: read source files as Arrow record batches carrying their provenance (file, line)."""

from __future__ import annotations

from massalia.sources.base import (
    CONNECTORS,
    SOURCE_FILE,
    SOURCE_LINE,
    Connector,
    SourceError,
    SourceOptions,
    get_connector,
    read_source,
    register_connector,
)

__all__ = [
    "CONNECTORS",
    "SOURCE_FILE",
    "SOURCE_LINE",
    "Connector",
    "SourceError",
    "SourceOptions",
    "get_connector",
    "read_source",
    "register_connector",
]
