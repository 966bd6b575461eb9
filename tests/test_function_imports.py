"""No hidden import cycles in the core and in health's machinery: a function-level import of a Massalia module
is allowed only to keep CLI start-up fast, and then says so in a comment just above it.

Before issue 11, imports were placed inside functions to dodge cycles (governance importing its schema and the
ledger, the treatment plan importing the cohort, the clinical documents importing the generator); the shared
pieces moved down instead, and this test keeps it so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "massalia"
CHECKED = [
    "engine",
    "governance",
    "ledger",
    "pipelines",
    "quality",
    "sources",
    "plugins.py",
    "config.py",
    "warehouse.py",
    "health/etl",
    "health/quality",
    "health/synth",
    "health/research.py",
]


def modules() -> list[Path]:
    found: list[Path] = []
    for entry in CHECKED:
        path = SRC / entry
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [path for path in found if "migrations" not in path.parts]


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of each import of a ``massalia`` module made inside a function body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("massalia"):
                found.append((node.lineno, node.module or ""))
            elif isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("massalia")]
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(SRC)))
def test_function_level_imports_are_only_for_start_up(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    unexplained = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for line, module in function_level_imports(path)
        if not any("start-up" in text for text in lines[max(0, line - 4) : line - 1] if text.strip().startswith("#"))
    ]
    assert not unexplained, "move the shared piece down instead of importing inside a function: " + "; ".join(
        unexplained
    )


def test_the_check_finds_an_import_inside_a_function(tmp_path: Path) -> None:
    source = tmp_path / "cyclic.py"
    source.write_text("def plan():\n    from massalia.health.synth.cohort import MARKERS\n    return MARKERS\n")
    assert function_level_imports(source) == [(2, "massalia.health.synth.cohort")]
