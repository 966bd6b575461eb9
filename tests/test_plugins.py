"""The domain plug-in seam: one registry type, domains contributing their parts, duplicates refused."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from massalia.plugins import Contributions, Registry, RegistryError, load_domains


class _Domain:
    def __init__(self, name: str, group: str = "things") -> None:
        self.name = name
        self.group = group

    def contribute(self, contributions: Contributions) -> None:
        contributions.add_cli_group(self.group, object())
        contributions.add_router("router")
        contributions.add_rights(Path(f"{self.name}.yaml"))


def _module(name: str, domain: object) -> str:
    module = types.ModuleType(name)
    module.DOMAIN = domain  # type: ignore[attr-defined]
    sys.modules[name] = module
    return name


def test_registry_refuses_duplicates_and_names_known_entries() -> None:
    registry: Registry[int] = Registry("connector")
    registry.register("csv", 1)
    registry.register("parquet", 2)
    with pytest.raises(RegistryError, match=r"duplicate connector 'csv' \(already registered: csv, parquet\)"):
        registry.register("csv", 3)
    with pytest.raises(RegistryError, match=r"unknown connector 'json' \(known: csv, parquet\)"):
        registry.get("json")
    assert list(registry) == ["csv", "parquet"] and registry.get("parquet") == 2


def test_domains_contribute_and_collisions_are_refused() -> None:
    first = _module("massalia_test_domain_a", _Domain("alpha"))
    second = _module("massalia_test_domain_b", _Domain("beta", group="others"))
    try:
        loaded = load_domains([first, second, first], builtins=())
        assert list(loaded.domains) == ["alpha", "beta"], "a module listed twice loads once"
        assert [(c.domain, c.item) for c in loaded.routers] == [("alpha", "router"), ("beta", "router")]
        assert loaded.cli_groups.get("others").domain == "beta"
        clash = _module("massalia_test_domain_c", _Domain("gamma", group="things"))
        with pytest.raises(RegistryError, match="duplicate CLI group 'things'"):
            load_domains([first, clash], builtins=())
        twin = _module("massalia_test_domain_d", _Domain("alpha", group="more"))
        with pytest.raises(RegistryError, match="duplicate domain 'alpha'"):
            load_domains([first, twin], builtins=())
    finally:
        for name in list(sys.modules):
            if name.startswith("massalia_test_domain_"):
                del sys.modules[name]


def test_a_contribution_outside_contribute_and_a_bad_domain_are_refused() -> None:
    with pytest.raises(RegistryError, match="from a domain's contribute"):
        Contributions().add_router("router")
    with pytest.raises(RegistryError, match="lowercase"):
        Contributions().accept(_Domain("Bad Name"))
    empty = _module("massalia_test_domain_empty", None)
    try:
        with pytest.raises(RegistryError, match="has no DOMAIN"):
            load_domains([empty], builtins=())
    finally:
        del sys.modules[empty]
