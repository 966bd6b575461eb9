"""Where Massalia keeps its data: everything lives under one ``MASSALIA_HOME`` folder."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "massalia-data"
HOME_MARKER = "massalia-home.json"
"""File written by ``massalia init`` (and the demo): its presence makes a folder a Massalia home."""


class HomeNotInitializedError(RuntimeError):
    """A command that reads data was pointed at a folder that was never initialized as a home."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"{root} is not an initialized Massalia home (no {HOME_MARKER}): check --home / MASSALIA_HOME, "
            f"or create it with `massalia init --home {root}`"
        )
        self.root = root


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

    @property
    def marker(self) -> Path:
        """The file that says this folder was initialized, and with which engine."""
        return self.root / HOME_MARKER

    @property
    def initialized(self) -> bool:
        """Whether ``massalia init`` (or the demo) made this folder a home.

        A DuckDB warehouse file counts too: homes made before the marker existed keep working.
        """
        return self.marker.is_file() or self.warehouse.is_file()

    @property
    def engine(self) -> str | None:
        """The warehouse engine recorded when the home was initialized (``None`` when not recorded)."""
        try:
            settings = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        engine = settings.get("engine") if isinstance(settings, dict) else None
        return engine if isinstance(engine, str) and engine else None

    def mark_initialized(self, engine: str) -> None:
        """Record that this folder is a home whose warehouse lives on ``engine``."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(json.dumps({"engine": engine}) + "\n", encoding="utf-8")

    def require_initialized(self) -> Home:
        """Return ``self`` if initialized, else raise :class:`HomeNotInitializedError` (nothing is created)."""
        if not self.initialized:
            raise HomeNotInitializedError(self.root)
        return self

    def ensure(self) -> Home:
        """Create the folders, private to the OS account running Massalia; return ``self``.

        The home holds personal data (source extracts, the warehouse with notes) and secrets (token
        hashes, the master key), so it is ``0700`` and what is in it ``0700``/``0600`` whatever the
        caller's umask: the process umask is narrowed to ``077`` (DuckDB, SQLite, the ledger and the
        generators create their files through their own ``open`` calls, which take no mode), and an
        existing home, folder or known file that others could read is made private again.
        """
        os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
        for path in (self.root, self.sources, self.reports, self.indexes):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(self.root)
        for child in self.root.iterdir():
            _make_private(child)
        return self


PRIVATE_UMASK = 0o077


def _make_private(path: Path) -> None:
    """Remove the group and other permission bits of ``path`` (not following a symbolic link)."""
    try:
        info = path.lstat()
    except FileNotFoundError:  # removed meanwhile (a temporary file of a concurrent run)
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        return  # a link's target, or a file someone else owns, is not ours to change
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        path.chmod(mode & 0o700)


def home(path: str | Path | None = None) -> Home:
    """The active home: ``path``, else ``$MASSALIA_HOME``, else ``./massalia-data``."""
    chosen = path or os.environ.get("MASSALIA_HOME") or DEFAULT_HOME
    return Home(Path(chosen).expanduser().resolve())
