"""Where the shared reference data lives, for tests that parametrize over its files at collection time.

Fixtures should prefer the ``reference`` fixture of ``tests/conftest.py`` (skips locally, fails in CI
when the folder is absent); this module only resolves the path.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_reference() -> Path:
    """``$MASSALIA_REFERENCE``, else ``shared/reference`` beside this checkout or beside the local
    repository it was cloned from (CI runs in a fresh clone made in a temporary folder)."""
    configured = os.environ.get("MASSALIA_REFERENCE")
    if configured:
        return Path(configured)
    beside = ROOT.parent / "shared" / "reference"
    if beside.is_dir():
        return beside
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        origin = subprocess.run(
            ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True, text=True, check=False, timeout=10,
        ).stdout.strip()  # fmt: skip
        if origin and Path(origin).is_dir():
            return Path(origin).resolve().parent / "shared" / "reference"
    return beside


REFERENCE = find_reference()
"""Reference specs and samples (``$MASSALIA_REFERENCE``, else ``../shared/reference``)."""
