"""The portal's static files: an index of every file it may serve, built once when the app starts.

Only files found under the portal's own ``static/`` folder and the domains' asset folders, with a known
type, are served: a request names an index key, never a path on disk, so no ``..`` or symlink can reach
another file. Each file is read once, kept with its SHA-256 validator (``ETag``) and, for text types, its
gzip form.

The index has a **build hash** (:attr:`AssetIndex.version`), derived from every key and every file's digest: any
asset added, removed or changed gives a new one. The shell links the assets under ``/static/v/<hash>/...``, which
browsers keep for good (``immutable``): a page's modules then load from the cache, with no round trip per import
level. The unversioned ``/static/...`` still answers (old links), revalidated (``Cache-Control: no-cache``,
``304 Not Modified`` while unchanged).

Examples
--------
>>> index = AssetIndex.build(STATIC_DIR, {})
>>> index.get("js/app.js").content_type
'text/javascript; charset=utf-8'
>>> index.get("../pyproject.toml") is None
True
>>> len(index.version)
16
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
"""The core's assets: shell script and pages, styles, message catalogues, vendored libraries."""

CONTENT_TYPES: dict[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
"""The types served; any other file in an asset folder (a README, a licence without extension) is not."""

COMPRESSED = frozenset({".js", ".mjs", ".css", ".json", ".svg", ".txt"})
MAX_ASSET_BYTES = 8 * 1024 * 1024
"""A bound on one asset (the vendored ECharts is about 1 MiB)."""
STATIC_IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^;'"`()]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']""", re.M
)
"""A module's static ``import ... from "x"`` / ``export ... from "x"`` / ``import "x"`` at the start of a line."""
MAX_PRELOADS = 48
"""A bound on the modules one shell preloads (the largest page's graph has about 10)."""
VERSIONED = "v/"
"""The folder name under ``/static/`` that versioned addresses use (``/static/v/<hash>/js/app.js``): no asset's."""
VERSION_CHARS = 16
"""Hex digits of the build hash in versioned addresses (64 bits: no two builds of one server collide)."""


@dataclass(frozen=True)
class Asset:
    """One servable file: its bytes (and gzip form), type and validator."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def _version(files: Mapping[str, Asset]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        # The NUL separators keep ("a", "bc") and ("ab", "c") apart; the ETag is the file's own SHA-256.
        digest.update(name.encode("utf-8") + b"\0" + files[name].etag.encode("ascii") + b"\0")
    return digest.hexdigest()[:VERSION_CHARS]


def _asset(path: Path) -> Asset | None:
    suffix = path.suffix.lower()
    kind = CONTENT_TYPES.get(suffix)
    if kind is None or not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_ASSET_BYTES:
        return None
    body = path.read_bytes()
    packed = gzip.compress(body, compresslevel=6, mtime=0) if suffix in COMPRESSED and len(body) > 1024 else None
    return Asset(body, packed, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(frozen=True)
class AssetIndex:
    """Every servable file by its address under ``/static/`` (``js/app.js``, ``domains/health/x.js``)."""

    files: Mapping[str, Asset]

    @cached_property
    def version(self) -> str:
        """The build hash: SHA-256 over every key and its file's digest, in key order (``VERSION_CHARS`` hex)."""
        return _version(self.files)

    @classmethod
    def build(cls, core: Path, domains: Mapping[str, Path]) -> AssetIndex:
        """Index ``core`` at the root and each domain's folder under ``domains/<domain>/``."""
        files: dict[str, Asset] = {}
        roots = [("", core), *((f"domains/{name}/", folder) for name, folder in domains.items())]
        for prefix, root in roots:
            for path in sorted(root.rglob("*")):
                if "__pycache__" in path.parts:
                    continue
                asset = _asset(path)
                if asset is not None:
                    files[prefix + path.relative_to(root).as_posix()] = asset
        if any(name.startswith(VERSIONED) for name in files):
            raise ValueError(f"portal assets: {VERSIONED!r} is reserved for versioned addresses, found under {core}")
        return cls(files)

    def static_imports(self, name: str) -> tuple[str, ...]:
        """The keys of the modules ``name`` imports statically, transitively, nearest first (``name`` excluded).

        Relative specifiers (``./x.js``, ``../../js/api.js``) are resolved against ``name``'s folder; any other
        specifier, or one that leaves the index, is skipped. The shell preloads these so that a page's whole
        import graph is fetched at once rather than one level after the other.

        Examples
        --------
        >>> AssetIndex.build(STATIC_DIR, {}).static_imports("js/pages/home.js")
        ('js/dom.js', 'js/i18n.js')
        """
        found: dict[str, None] = {}
        queue = [name]
        while queue and len(found) < MAX_PRELOADS:
            current = queue.pop(0)
            asset = self.files.get(current)
            if asset is None or not asset.content_type.startswith("text/javascript"):
                continue
            for match in STATIC_IMPORT.finditer(asset.body.decode("utf-8", errors="replace")):
                spec = match.group(1) or match.group(2)
                if not spec.startswith(("./", "../")):
                    continue
                key = posixpath.normpath(posixpath.join(posixpath.dirname(current), spec))
                if key in self.files and key != name and key not in found:
                    found[key] = None
                    queue.append(key)
        return tuple(found)[:MAX_PRELOADS]

    def get(self, name: str) -> Asset | None:
        """The asset at ``name`` (an index key), or ``None``."""
        return self.files.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.files
