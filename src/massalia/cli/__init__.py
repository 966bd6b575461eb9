"""The ``massalia`` command line: one module per command group, shared pieces in :mod:`massalia.cli.common`."""

from massalia.cli.main import app, create_app

__all__ = ["app", "create_app"]
