"""The ``massalia`` command line: one module per command group, shared pieces in :mod:`massalia.cli.common`.

``app`` and ``create_app`` are loaded on first use: a domain's entry module imports its command groups from
this package, and the root app loads the domains when it is created, so importing a group must not create
the root app (that would import the domain again, half-initialized).
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from massalia.cli import main

        return getattr(main, name)
    raise AttributeError(f"module 'massalia.cli' has no attribute {name!r}")
