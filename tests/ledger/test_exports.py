"""The ledger's lazy exports: what a type checker sees is what ``massalia.ledger.<name>`` returns."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import massalia.ledger as ledger

INIT = Path(ledger.__file__)


def _type_checking_imports() -> dict[str, str]:
    """Name → module of the ``if TYPE_CHECKING:`` imports of ledger/__init__.py."""
    names: dict[str, str] = {}
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name}: re-export as itself for strict checkers"
                    names[alias.name] = statement.module
    return names


def test_type_checkers_see_every_lazy_export_from_its_module() -> None:
    seen = _type_checking_imports()
    assert sorted(seen) == sorted(ledger.__all__)
    for name, module in seen.items():
        assert getattr(ledger, name) is getattr(importlib.import_module(module), name), name
