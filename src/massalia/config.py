"""Where Massalia keeps its data: everything lives under one ``MASSALIA_HOME`` folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "massalia-data"


@dataclass(frozen=True)
class Home:
    """The layout of a ``MASSALIA_HOME`` folder.

    Examples
    --------
    >>> home = Home(Path("/tmp/m"))
    >>> home.warehouse.name
    'warehouse.duckdb'
    """

    root: Path

    @property
    def warehouse(self) -> Path:
        """The embedded DuckDB warehouse file (OMOP tables, vocabulary, rejects)."""
        return self.root / "warehouse.duckdb"

    @property
    def metadata_url(self) -> str:
        """SQLAlchemy URL of the platform metadata database (runs, lineage, later users)."""
        return os.environ.get("MASSALIA_METADATA_URL") or f"sqlite:///{(self.root / 'metadata.sqlite').as_posix()}"

    @property
    def sources(self) -> Path:
        """Where generated or dropped source extracts land, one sub-folder per site."""
        return self.root / "sources"

    @property
    def reports(self) -> Path:
        """Quality reports (JSON and HTML)."""
        return self.root / "reports"

    @property
    def indexes(self) -> Path:
        """Search indexes."""
        return self.root / "indexes"

    @property
    def ledger(self) -> Path:
        """The transparency log (audit trail, dataset certification) and its signing key."""
        return self.root / "ledger"

    def ensure(self) -> Home:
        """Create the folders; return ``self``."""
        for path in (self.root, self.sources, self.reports, self.indexes):
            path.mkdir(parents=True, exist_ok=True)
        return self


def home(path: str | Path | None = None) -> Home:
    """The active home: ``path``, else ``$MASSALIA_HOME``, else ``./massalia-data``."""
    chosen = path or os.environ.get("MASSALIA_HOME") or DEFAULT_HOME
    return Home(Path(chosen).expanduser().resolve())
