"""The tested toolchain is pinned: constraints.txt covers every declared dependency within its declared range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts.extend(text for text in extra if not text.startswith("massalia"))
    return [Requirement(re.sub(r"\s*#.*$", "", text)) for text in texts]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    problems = []
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name}: not in constraints.txt (run bash scripts/lock)")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement.name}: pinned {pins[name]} is outside {requirement.specifier}")
    assert not problems, "\n".join(problems)


def test_test_command_and_ci_install_with_the_constraints() -> None:
    test_script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "-c constraints.txt" in test_script
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "--system-site-packages" not in ci.replace("no --system-site-packages", "")


def test_the_test_command_type_checks_before_pytest() -> None:
    lines = [line.strip() for line in (ROOT / "scripts" / "test").read_text(encoding="utf-8").splitlines()]
    mypy = next(index for index, line in enumerate(lines) if line == '"$python" -m mypy src')
    pytest_ = next(index for index, line in enumerate(lines) if "-m pytest" in line)
    assert mypy < pytest_


def test_the_core_layers_are_strictly_typed() -> None:
    """The brief of issue 11: mypy strict on engine/, governance/ and ledger/ at least."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    strict_flags = ("disallow_untyped_defs", "disallow_any_generics", "warn_return_any", "disallow_untyped_calls")
    strict_modules = {
        module
        for override in config["overrides"]
        if all(override.get(flag) for flag in strict_flags)
        for module in override["module"]
    }
    assert {"massalia.engine.*", "massalia.governance.*", "massalia.ledger.*", "massalia.plugins"} <= strict_modules
    assert config["check_untyped_defs"] and config["warn_unused_ignores"]
