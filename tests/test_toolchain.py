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
