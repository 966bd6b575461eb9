"""The portal's static files: an index of every file it may serve, built once when the app starts.

Only files found under the portal's own ``static/`` folder and the domains' asset folders, with a known
type, are served: a request names an index key, never a path on disk, so no ``..`` or symlink can reach
another file. Each file is read once, kept with its SHA-256 validator (``ETag``) and, for text types, its
gzip form; browsers revalidate (``Cache-Control: no-cache``) and get ``304 Not Modified`` while unchanged.

Examples
--------
>>> index = AssetIndex.build(STATIC_DIR, {})
>>> index.get("js/app.js").content_type
'text/javascript; charset=utf-8'
>>> index.get("../pyproject.toml") is None
True
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Asset:
    """One servable file: its bytes (and gzip form), type and validator."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


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
        return cls(files)

    def get(self, name: str) -> Asset | None:
        """The asset at ``name`` (an index key), or ``None``."""
        return self.files.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.files
