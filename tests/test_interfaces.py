"""One enforcement point: no route and no CLI command decides rights itself; they call the guarded services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "massalia"
FORBIDDEN = {"authorize", "decide"}


def interface_modules() -> list[Path]:
    """Every module of the HTTP API and of the command line (``cli*.py``, and ``cli/`` once it is a package)."""
    found = sorted((SRC / "api").rglob("*.py")) + sorted(SRC.glob("cli*.py")) + sorted((SRC / "cli").rglob("*.py"))
    return [path for path in found if path.is_file()]


def rights_calls(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every call to ``authorize``/``decide``, as a method (``gov.authorize(``) or a name."""
    calls: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in FORBIDDEN:
                calls.append((node.lineno, name))
    return calls


def test_the_scanner_finds_the_calls_it_forbids() -> None:
    source = "def route(ctx, caller):\n    ctx.governance.authorize(caller, 'x.y')\n    decide(r, p, 'x.y', f)\n"
    assert rights_calls(source) == [(2, "authorize"), (3, "decide")]
    assert rights_calls("def _decide(): pass\n_decide()\nrequest_decide = 1\n") == []


def test_the_interfaces_are_found() -> None:
    names = {path.relative_to(SRC).as_posix() for path in interface_modules()}
    assert {"api/app.py", "api/routes/cohorts.py", "api/routes/audit.py"} <= names
    assert any(name.startswith("cli") for name in names)


@pytest.mark.parametrize("path", interface_modules(), ids=lambda path: path.relative_to(SRC).as_posix())
def test_no_interface_decides_rights_itself(path: Path) -> None:
    """Attack: a route or command that calls ``authorize`` itself is a second enforcement point, where a
    forgotten scope, audit or disclosure step goes unnoticed; every check goes through a guarded service."""
    calls = rights_calls(path.read_text(encoding="utf-8"))
    where = ", ".join(f"line {line}: {name}(" for line, name in calls)
    assert not calls, f"{path.relative_to(SRC)} decides rights itself ({where}): call a guarded service instead"


CALLER_MAKERS = {"api/deps.py", "api/app.py", "cli/common.py"}
"""Where an interface may open the governance or resolve who calls (the app, its dependencies, ``governed``)."""
BY_HAND = {"Caller", "ServiceCaller", "Governance", "from_home", "operator_principal", "anonymous"}


def caller_builds(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every call building a caller's part by hand (``Caller``, ``Governance``, a principal)."""
    builds: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in BY_HAND:
                builds.append((node.lineno, name))
    return builds


def test_the_caller_scanner_finds_what_it_forbids() -> None:
    source = "def cmd(home):\n    gov = Governance.from_home(home)\n    run(Caller(operator_principal(), gov))\n"
    assert sorted(caller_builds(source)) == [(2, "from_home"), (3, "Caller"), (3, "operator_principal")]


@pytest.mark.parametrize("path", interface_modules(), ids=lambda path: path.relative_to(SRC).as_posix())
def test_no_interface_builds_its_caller_by_hand(path: Path) -> None:
    """Routes get their ``Caller`` from ``api/deps.py``, commands from ``cli/common.governed``: one place each,
    so who calls and through which channel is resolved (and recorded) the same way everywhere."""
    if path.relative_to(SRC).as_posix() in CALLER_MAKERS:
        return
    builds = caller_builds(path.read_text(encoding="utf-8"))
    where = ", ".join(f"line {line}: {name}(" for line, name in builds)
    assert not builds, f"{path.relative_to(SRC)} builds a caller by hand ({where}): take the interface's Caller"
