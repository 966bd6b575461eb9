"""The domain plug-in seam: one registry type, domains contributing their parts, duplicates refused."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import typer
from fastapi import APIRouter
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from massalia.api import ApiSettings, create_app
from massalia.api.app import route_table
from massalia.api.deps import action
from massalia.cli.domains import mount_domain_groups
from massalia.config import Home
from massalia.governance import Governance, Role, operator_principal
from massalia.governance.rights import RightsError, load_rights
from massalia.health.cohorts.definition import CohortDefinition
from massalia.plugins import (
    BUILTIN_DOMAINS,
    DOMAINS_SETTING,
    Contributions,
    Registry,
    RegistryError,
    configured_domains,
    load_domains,
)


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
    with pytest.raises(RegistryError, match=r"'massalia_no_such_domain\.plugin' cannot be found"):
        load_domains(["massalia_no_such_domain.plugin"], builtins=())
    empty = _module("massalia_test_domain_empty", None)
    try:
        with pytest.raises(RegistryError, match="has no DOMAIN"):
            load_domains([empty], builtins=())
    finally:
        del sys.modules[empty]


# -- the example domain (tests/example_domain), plugged into the real app and the real command line ----------
TESTS = Path(__file__).resolve().parent
EXAMPLE = "example_domain.plugin"


@pytest.fixture
def example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example domain is importable as ``example_domain`` (whatever pytest's import mode)."""
    monkeypatch.syspath_prepend(str(TESTS))


def _tokens(gov: Governance, roles: dict[str, Role]) -> dict[str, str]:
    operator = operator_principal()
    tokens: dict[str, str] = {}
    for username, role in roles.items():
        gov.create_user(username, None, roles=[role], actor=operator)
        tokens[username] = gov.create_token(username, None, dt.timedelta(days=1), actor=operator)
    return tokens


@pytest.mark.usefixtures("example_on_path")
def test_the_example_domain_plugs_into_the_api_under_its_rights(tmp_path: Path) -> None:
    app = create_app(Home(tmp_path / "home"), settings=ApiSettings(), domains=[EXAMPLE])
    gov: Governance = app.state.massalia.governance
    try:
        assert list(app.state.domains.domains) == ["health", "opendata", "safety", "example"]
        assert gov.rights.get("example.thing.read").description.startswith("Read the example domain's things")
        routes = {(route.method, route.path): route.action for route in route_table(app)}
        assert routes[("GET", "/api/v1/example/things")] == "example.thing.read"
        assert routes[("POST", "/api/v1/cohorts/count")] == "health.cohort.count", "health still mounted"
        tokens = _tokens(gov, {"rita": Role.RESEARCHER, "dora": Role.DPO})
        client = TestClient(app, raise_server_exceptions=False)
        assert client.get("/api/v1/example/things").status_code == 401
        denied = client.get("/api/v1/example/things", headers={"Authorization": f"Bearer {tokens['dora']}"})
        assert denied.status_code == 403 and "example.thing.read" in denied.text
        allowed = client.get("/api/v1/example/things", headers={"Authorization": f"Bearer {tokens['rita']}"})
        assert allowed.status_code == 200 and allowed.json() == {"things": ["anchor", "lighthouse", "quay"]}
    finally:
        gov.close()
    plain = create_app(Home(tmp_path / "plain"), settings=ApiSettings())
    try:
        assert "example.thing.read" not in plain.state.massalia.governance.rights
        assert TestClient(plain).get("/api/v1/example/things").status_code == 404, "no domain, no route"
    finally:
        plain.state.massalia.governance.close()


@pytest.mark.usefixtures("example_on_path")
def test_the_example_domain_plugs_into_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = typer.Typer()

    @root.command()
    def init() -> None:
        """A core command (so that the root is a group)."""

    monkeypatch.setenv(DOMAINS_SETTING, EXAMPLE)  # the governance of the command loads the same domains
    assert mount_domain_groups(root, load_domains(configured_domains())) == [
        "omop",
        "etl",
        "cohort",
        "mart",
        "extract",
        "patient",
        "analysis",
        "text",
        "deid",
        "nlp",
        "opendata",
        "safety",
        "example",
    ]
    result = CliRunner().invoke(root, ["example", "things", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["anchor", "lighthouse", "quay"]
    home_ = Home(tmp_path).ensure()
    with Governance.from_home(home_) as gov:
        dpo = _tokens(gov, {"dora": Role.DPO})["dora"]
    monkeypatch.setenv("MASSALIA_TOKEN", dpo)
    refused = CliRunner().invoke(root, ["example", "things", "--home", str(tmp_path)])
    assert refused.exit_code == 3 and "example.thing.read" in refused.output


def test_the_real_command_line_mounts_a_domain_named_by_the_setting(tmp_path: Path) -> None:
    env = {
        **os.environ,
        DOMAINS_SETTING: EXAMPLE,
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)]),
    }
    env.pop("MASSALIA_TOKEN", None)
    command = [sys.executable, "-m", "massalia", "example", "things", "--home", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["anchor", "lighthouse", "quay"]


@pytest.mark.usefixtures("example_on_path")
def test_a_second_domain_reusing_a_taken_name_is_refused_naming_the_clash(tmp_path: Path) -> None:
    from example_domain.plugin import ExampleDomain

    rights = TESTS / "example_domain" / "rights.yaml"
    cases = {
        "twin": (ExampleDomain(name="example", group="twin"), "duplicate domain 'example'"),
        "group": (ExampleDomain(name="other", group="example"), "duplicate CLI group 'example'"),
        # Attack: a domain claims another's action (to open it to more roles): its own name must prefix it.
        "action": (ExampleDomain(name="other", group="other", rights=rights), rf"{rights}: action 'example.thing.read'"
                   r" is not 'other.<area>.<verb>'"),
        "health": (ExampleDomain(name="health", group="other"), "duplicate domain 'health'"),
    }  # fmt: skip
    try:
        for name, (domain, message) in cases.items():
            module = _module(f"massalia_test_domain_{name}", domain)
            with pytest.raises((RegistryError, RightsError), match=message):
                load_rights(domains=load_domains([EXAMPLE, module]))
            with pytest.raises((RegistryError, RightsError), match=message):
                create_app(Home(tmp_path / name), settings=ApiSettings(), domains=[EXAMPLE, module])
        clash = _module("massalia_test_domain_init", ExampleDomain(name="initial", group="init"))
        root = typer.Typer()
        root.command("init")(lambda: None)
        with pytest.raises(RegistryError, match=r"CLI group 'init', already a command of 'massalia'"):
            mount_domain_groups(root, load_domains([clash], builtins=()))
    finally:
        for name in list(sys.modules):
            if name.startswith("massalia_test_domain_"):
                del sys.modules[name]


def test_the_health_domain_is_built_in_and_registers_only_when_asked() -> None:
    assert BUILTIN_DOMAINS == ("massalia.health.plugin", "massalia.opendata.plugin", "massalia.safety.plugin")
    loaded = load_domains(builtins=BUILTIN_DOMAINS)
    assert list(loaded.domains) == ["health", "opendata", "safety"]
    assert {name for name, _ in loaded.quality_checks.items()} == {"omop.dqd", "health.oncology"}
    assert loaded.scope_models.get("health.cohort").domain == "health"
    again = load_domains(builtins=BUILTIN_DOMAINS)
    assert [c.item for c in again.routers] == [c.item for c in loaded.routers], "the same routers, registered anew"
    code = (
        "import massalia.health.plugin, massalia.opendata.plugin, massalia.plugins as p; "
        "print(len(p.Contributions().routers))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(TESTS.parent / "src")})  # fmt: skip
    assert done.stdout.strip() == "0", "importing a domain registers nothing"


class _RouterDomain:
    """A domain whose one route declares ``declared`` (or nothing), with the example's rights file."""

    def __init__(self, declared: str | None) -> None:
        self.name = "example"
        self.router = APIRouter(prefix="/sneaky")
        extra = action(declared) if declared is not None else {}
        self.router.get("/rows", **extra)(lambda: {"rows": ["identified"]})

    def contribute(self, contributions: Contributions) -> None:
        contributions.add_router(self.router)
        contributions.add_rights(TESTS / "example_domain" / "rights.yaml")


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (None, r"route GET /sneaky/rows: declares the action None"),
        ("audit.verify", r"declares the action 'audit.verify'; a domain's route declares one of its own"),
        ("health.cohort.sql", r"declares the action 'health.cohort.sql'"),
        ("example.thing.write", r"its action 'example.thing.write' is not in the domain's rights file"),
    ],
)
def test_a_domain_route_without_its_own_declared_action_stops_the_app(
    tmp_path: Path, declared: str | None, message: str
) -> None:
    """Attack: a plug-in serves a route outside the rights table (no action, or a borrowed open one)."""
    module = _module("massalia_test_domain_routes", _RouterDomain(declared))
    try:
        with pytest.raises(RegistryError, match=message):
            create_app(Home(tmp_path), settings=ApiSettings(), domains=[module])
    finally:
        del sys.modules[module]


def test_a_projects_cohort_is_hashed_by_the_domain_that_contributed_the_scope_model(tmp_path: Path) -> None:
    """The core's project route no longer imports health's cohort model: health's scope model hashes it."""
    app = create_app(Home(tmp_path), settings=ApiSettings())
    gov: Governance = app.state.massalia.governance
    try:
        token = _tokens(gov, {"rita": Role.RESEARCHER})["rita"]
        client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"})
        cohort = {"title": "deaths", "concept_sets": [], "primary_criteria": {"criteria_list": [{"kind": "Death"}]}}
        body = {"title": "Deaths", "purpose": "count the deaths of the demo", "access_level": "aggregate",
                "expires": "2099-12-31", "scope": {"cohort": cohort}}  # fmt: skip
        created = client.post("/api/v1/projects", json=body)
        assert created.status_code == 201, created.text
        expected = CohortDefinition.model_validate(cohort).definition_hash()
        assert created.json()["scope"]["cohort_hash"] == expected
        bad = client.post("/api/v1/projects", json={**body, "scope": {"cohort": {"title": "x", "primary": 1}}})
        assert bad.status_code == 422, bad.text
        assert any(detail["loc"][:1] == ["scope.cohort.primary"] for detail in bad.json()["error"]["details"]), bad.text
    finally:
        gov.close()
