"""Who the command line acts as, over every command: no token, a garbage token, and each role's token.

The table ``EXPECTED`` is written by hand from ``rights.yaml`` (not computed from it): for every command,
which callers are allowed and the exit status they get. A garbage, blank or unknown token always stops
the command with exit 4 and a clear message, never a fall back to the local operator. A new command
without a row here fails :func:`test_every_command_is_in_the_table`.

Attacks of issue 10, section 4, each a test below:
- a garbage ``MASSALIA_TOKEN`` ran ``load``, ``quality``, ``omop load-*``, ``etl runs``, ``info`` as the
  operator (``test_every_command_refuses_a_bad_token``);
- ``health.etl.run`` and ``health.quality.run`` were never checked
  (``test_every_command_applies_the_rights_of_its_caller``);
- the operator's identity came from ``LOGNAME`` (``test_the_operator_is_the_real_os_account_not_logname``);
- minting a token for another user left no trace (``test_a_token_for_another_user_is_an_audited_administrative_act``);
- ``etl rejects`` printed raw source values to anyone, unaudited (``test_etl_rejects_is_restricted_and_audited``);
- a home created under umask 022 was world-readable (``test_the_home_is_private_whatever_the_umask``);
- Rich markup and escape codes in a project title were interpreted (``test_a_project_title_is_printed_literally``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from massalia.cli import app
from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance, Principal, ProjectScope, Role, operator_principal
from massalia.health.research import person_site
from massalia.ledger import TransparencyLog

runner = CliRunner()
ROLES = ("admin", "data_engineer", "dpo", "researcher", "clinician")
CALLERS = ("operator", *ROLES)
GARBAGE_TOKENS = {
    "garbage": "not-a-token",
    "blank": "   ",
    "unknown": "msl_" + "A" * 43,  # the right shape, but no such token
}
REAL_ACCOUNT = pwd.getpwuid(os.getuid()).pw_name
DEFINITION = {
    "title": "breast cancer",
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]},
}
# Commands that need no identity: they read nothing under MASSALIA_HOME (and take no --home), or, for
# `serve`, authenticate every HTTP request themselves.
NO_IDENTITY = {
    ("version",), ("omop", "ddl"), ("mart", "variables"), ("serve",), ("deid", "evaluate"), ("safety", "generate"),
    ("verify",),
}  # fmt: skip


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(command, "commands"):
            paths += _command_paths(command, path)
        else:
            paths.append(path)
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


@dataclass
class World:
    """A home with the demo warehouse, one account and token per role, projects and pending requests."""

    home: Path
    tmp: Path
    definition: Path
    tokens: dict[str, str]
    project: int  # no caller is a member
    requests: tuple[int, int]  # pending: one to approve, one to reject
    person: int  # a person of the clinician's site


def _run(world: World, caller: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    token = "" if caller == "operator" else world.tokens.get(caller, GARBAGE_TOKENS.get(caller, ""))
    environment = {"MASSALIA_TOKEN": token, "MASSALIA_HOME": str(world.home), "COLUMNS": "200", **(env or {})}
    result = runner.invoke(app, list(args), env=environment)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def world(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("cli-identity")
    home = tmp / "home"
    home.mkdir()
    shutil.copy(demo_warehouse, home / "warehouse.duckdb")
    definition = tmp / "breast.json"
    definition.write_text(json.dumps(DEFINITION), encoding="utf-8")
    with DuckDBEngine(home / "warehouse.duckdb", read_only=True) as engine:
        person = int(engine.query_native("SELECT min(person_id) AS p FROM person").to_pylist()[0]["p"])
        site = person_site(engine, person)
    assert site is not None
    operator = operator_principal()
    with Governance.from_home(Home(home).ensure()) as gov:
        users = {
            role: gov.create_user(f"cli-{role.replace('_', '-')}", None, [role], site if role == "clinician" else None,
                                  actor=operator)
            for role in ROLES
        }  # fmt: skip
        gov.create_user("cli-guest", None, [Role.RESEARCHER], actor=operator)  # added to projects by the table
        gov.create_user("cli-target", None, [Role.RESEARCHER], actor=operator)  # disabled, re-enabled by the table
        tokens = {
            role: gov.create_token(user, None, dt.timedelta(days=30), actor=operator) for role, user in users.items()
        }
        expires = dt.date.today() + dt.timedelta(days=90)
        project = gov.create_project(
            "nobody's project", "a study nobody here is a member of", scope=ProjectScope(),
            access_level="aggregate", expires=expires, actor=operator,
        ).id  # fmt: skip
        requests = []
        for title in ("to approve", "to reject"):
            other = gov.create_project(title, "a study with a pending request", scope=ProjectScope(),
                                       access_level="aggregate", expires=expires, actor=operator).id  # fmt: skip
            gov.add_member(other, users["researcher"].subject, actor=operator)
            researcher = Principal(users["researcher"].subject, {Role.RESEARCHER}, users["researcher"].user_id)
            requests.append(gov.file_request(other, actor=researcher, justification="we need the counts, really").id)
    world = World(home, tmp, definition, tokens, project, (requests[0], requests[1]), person)
    # The mart and the generated cohort that `mart count` and `cohort breakdowns` read.
    for args in (("mart", "build"), ("cohort", "generate", str(definition), "--id", "1")):
        code, out = _run(world, "operator", *args)
        assert code == 0, out
    yield world


ALL = frozenset(CALLERS)
# health.etl.run, health.quality.run, health.mart.build...
STAFF_ADMINS = frozenset({"operator", "admin", "data_engineer"})


@dataclass(frozen=True)
class Row:
    """One command: its arguments, the callers allowed, and the exit status of an allowed call."""

    args: tuple[str, ...]
    allowed: frozenset[str]
    exit_allowed: int = 0
    exit_by_caller: tuple[tuple[str, int], ...] = ()  # exceptions to exit_allowed
    run_allowed: bool = True  # False: too slow to run for every allowed caller (covered elsewhere)

    def expected(self, caller: str) -> int:
        if caller not in self.allowed:
            return 3
        return dict(self.exit_by_caller).get(caller, self.exit_allowed)


def expectations(world: World, caller: str) -> dict[tuple[str, ...], Row]:
    """The table, written from rights.yaml; ``{...}`` placeholders are filled from the world."""
    d, missing = str(world.definition), str(world.tmp / "missing")
    return {
        ("audit", "verify"): Row((), ALL),
        ("cohort", "attrition"): Row((d,), ALL),
        ("cohort", "breakdowns"): Row((d, "--id", "1"), ALL),
        ("cohort", "count"): Row((d,), ALL),
        ("cohort", "explain"): Row(
            (d, "--person", str(world.person), "--purpose", "checking the identity table"),
            frozenset({"clinician"}),  # no per-person verdict for anyone else (issue 10 §2)
        ),
        ("cohort", "generate"): Row((d, "--id", "2"), STAFF_ADMINS),
        ("cohort", "import"): Row((d,), ALL),
        ("cohort", "sql"): Row((d,), ALL),
        ("cohort", "validate"): Row((d,), ALL),
        ("demo",): Row(("--patients", "10", "--no-serve"), STAFF_ADMINS, run_allowed=False),
        ("etl", "rejects"): Row(("--limit", "5"), STAFF_ADMINS),
        ("etl", "runs"): Row((), STAFF_ADMINS | {"dpo"}),
        ("etl", "show"): Row(("no-such-run",), STAFF_ADMINS | {"dpo"}, exit_allowed=1),
        # Extracts are for members of an approved pseudonymized project: nobody here (tests/cli/test_extract.py).
        ("extract", "create"): Row(("--project", str(world.project)), frozenset()),
        # Analyses are for members of an approved project: nobody here (tests/health/analytics/).
        ("analysis", "survival"): Row(("--project", str(world.project)), frozenset()),
        ("analysis", "patterns"): Row(("--project", str(world.project)), frozenset()),
        # Full-text search: everyone gets something (hits, pseudonymized hits or a noisy count); whether the
        # index exists depends on the order tests run in, so only refusals are checked here (tests/cli/test_text.py).
        ("text", "index"): Row((), STAFF_ADMINS),
        ("text", "search"): Row(("sein",), ALL, run_allowed=False),
        # NLP: the pipeline is an operator's job (tests/cli/test_nlp.py runs it; too slow for every caller here).
        ("nlp", "run"): Row(("--limit", "5"), STAFF_ADMINS, run_allowed=False),
        ("nlp", "evaluate"): Row((), STAFF_ADMINS, run_allowed=False),
        # Public safety: the health roles and the admin see no incident; the admin reads the catalogue, aggregates
        # and load quality, and loads (tests/safety/ covers the safety roles).
        ("safety", "catalogue"): Row((), STAFF_ADMINS),
        ("safety", "load"): Row((missing,), STAFF_ADMINS, exit_allowed=1),  # allowed, then: no such folder
        ("safety", "incidents"): Row((), frozenset()),
        ("safety", "stats"): Row((), frozenset({"operator", "admin"})),
        ("safety", "quality"): Row((), STAFF_ADMINS),
        ("safety", "index"): Row((), STAFF_ADMINS, exit_allowed=1),  # allowed, then: no incident log to index
        ("safety", "search"): Row(("tapage",), frozenset()),
        ("safety", "views"): Row((), frozenset()),
        # Alarms (tests/safety/alarms/ covers the safety roles): the admin declares rule sets (the cohort file is not
        # one: exit 1), the data engineer may run the feed subscriber (not run here: it connects to a broker).
        ("safety", "alarms", "rules"): Row((d,), STAFF_ADMINS - {"data_engineer"}, exit_allowed=1),
        ("safety", "alarms", "list"): Row((), frozenset()),
        ("safety", "alarms", "act"): Row(("1",), frozenset()),
        ("safety", "alarms", "export"): Row(("1",), frozenset()),
        ("safety", "alarms", "listen"): Row(("--seconds", "1"), STAFF_ADMINS - {"admin"}, run_allowed=False),
        ("analysis", "compare"): Row(
            ("--project", str(world.project), "--treated", "sex = female", "--comparator", "sex = male"), frozenset()
        ),
        ("analysis", "predict-train"): Row(("--project", str(world.project)), frozenset()),
        ("analysis", "predict-score"): Row(("0123456789abcdef", "--project", str(world.project)), frozenset()),
        ("analysis", "models"): Row(("--project", str(world.project)), frozenset()),
        ("analysis", "pathways"): Row(("--project", str(world.project)), frozenset()),
        ("analysis", "conformance"): Row(("--project", str(world.project)), frozenset()),
        ("analysis", "similar"): Row(("--project", str(world.project), "--like", "primary_site=lung"), frozenset()),
        ("analysis", "groups"): Row(("--project", str(world.project), "--max-groups", "3"), frozenset()),
        ("analysis", "hypotheses"): Row(
            (
                "--project",
                str(world.project),
                "--group-a",
                "sex = female",
                "--group-b",
                "sex = male",
                "--variable",
                "age_at_diagnosis",
            ),
            frozenset(),
        ),
        ("analysis", "control-arm"): Row(("--project", str(world.project), "--trial", "sex = female"), frozenset()),
        ("generate",): Row(
            ("--patients", "1", "--no-documents", "--out", str(world.tmp / f"gen-{caller}")), STAFF_ADMINS
        ),
        ("info",): Row((), STAFF_ADMINS | {"dpo"}),
        ("init",): Row((), STAFF_ADMINS),
        ("load",): Row((missing,), STAFF_ADMINS, exit_allowed=1),  # allowed, then: no such folder
        ("mart", "build"): Row((), STAFF_ADMINS, run_allowed=False),  # built by the fixture, as the operator
        ("mart", "count"): Row(("--where", "sex = female"), ALL),
        ("omop", "load-athena"): Row((missing,), STAFF_ADMINS, exit_allowed=1),
        ("omop", "load-csv"): Row((missing,), STAFF_ADMINS, exit_allowed=1),
        # De-identified notes are for members of an approved pseudonymized project: nobody here
        # (tests/cli/test_deid.py); the decision comes before the pseudonym is looked up.
        ("deid", "notes"): Row(
            ("p1-0123456789ABCDEF", "--project", str(world.project), "--purpose", "checking the identity table"),
            frozenset(),
        ),
        ("patient", "view"): Row(
            (str(world.person), "--purpose", "checking the identity table"), frozenset({"clinician"})
        ),
        ("project", "add-member"): Row((str(world.project), "cli-guest"), frozenset({"operator", "admin", "dpo"})),
        ("project", "create"): Row(
            ("--title", f"by {caller}", "--purpose", "a study from the identity table", "--expires", "2099-01-01"),
            frozenset({"operator", "admin", "dpo", "researcher"}),
        ),
        ("project", "list"): Row((), ALL),
        ("project", "show"): Row((str(world.project),), frozenset({"operator", "admin", "dpo"})),
        ("quality",): Row(("--check", "cdmTable"), STAFF_ADMINS),
        ("request", "approve"): Row((str(world.requests[0]), "--reason", "fine"), frozenset({"dpo"})),
        ("request", "file"): Row((str(world.project), "--justification", "not a member, so refused"), frozenset()),
        ("request", "list"): Row((), ALL),
        ("request", "reject"): Row((str(world.requests[1]), "--reason", "not fine"), frozenset({"dpo"})),
        # The operator has no account to own a token; revoking an unknown id is "not found" for everyone.
        ("token", "create"): Row(("--days", "1"), ALL, exit_by_caller=(("operator", 1),)),
        ("token", "list"): Row((), ALL),
        ("token", "revoke"): Row(("999999",), ALL, exit_allowed=1),
        ("user", "add"): Row((f"new-{caller.replace('_', '-')}", "--no-password"), frozenset({"operator", "admin"})),
        ("user", "list"): Row((), frozenset({"operator", "admin", "dpo"})),
        ("user", "disable"): Row(("cli-target",), frozenset({"operator", "admin"})),
        ("user", "enable"): Row(("cli-target",), frozenset({"operator", "admin"})),
        ("user", "set-roles"): Row(("cli-target", "--role", "researcher"), frozenset({"operator", "admin"})),
        ("privacy", "budget"): Row((), ALL),
        # cli-guest is no pending member, cli-target no member: allowed callers are told so (exit 1).
        ("project", "approve-member"): Row((str(world.project), "cli-guest"), frozenset({"dpo"}), exit_allowed=1),
        ("project", "remove-member"): Row(
            (str(world.project), "cli-target"), frozenset({"operator", "admin", "dpo"}), exit_allowed=1
        ),
        ("request", "revoke"): Row(("999999", "--reason", "no longer needed"), frozenset({"dpo"}), exit_allowed=1),
        # Open data (opendata/rights.yaml): reads are everyone's; organizations and groups are platform admins';
        # publishing is open to signed-in roles, then refused (exit 1 here: no such organization, dataset or file).
        ("opendata", "org-create"): Row((f"org-{caller.replace('_', '-')}",), frozenset({"operator", "admin"})),
        ("opendata", "group-create"): Row((f"grp-{caller.replace('_', '-')}",), frozenset({"operator", "admin"})),
        ("opendata", "member-add"): Row(("no-such-org", "cli-guest"), ALL, exit_allowed=1),
        ("opendata", "dataset-create"): Row((missing,), ALL, exit_allowed=1),
        ("opendata", "dataset-update"): Row((missing,), ALL, exit_allowed=1),
        ("opendata", "show"): Row(("no-such-dataset",), ALL, exit_allowed=1),
        ("opendata", "versions"): Row(("no-such-dataset",), ALL, exit_allowed=1),
        ("opendata", "search"): Row((), ALL),
        ("opendata", "publish"): Row(("no-such-dataset", d), ALL, exit_allowed=1),
        ("opendata", "sql"): Row(("SELECT 1 AS one",), ALL),
        ("opendata", "demo"): Row(("--datasets", "2"), frozenset({"operator", "admin"})),
        ("opendata", "schemas"): Row((), ALL),
        ("opendata", "validation"): Row(("no-such-resource",), ALL, exit_allowed=1),
        ("opendata", "harvest"): Row((missing, "--org", "no-such-org"), ALL, exit_allowed=1),
        ("opendata", "certify"): Row((), frozenset({"operator", "admin"})),
        ("opendata", "proof"): Row(("00000000-0000-4000-8000-000000000000",), ALL, exit_allowed=1),
        ("opendata", "checkpoint"): Row((), ALL),
    }


def test_every_command_is_in_the_table(world: World) -> None:
    table = set(expectations(world, "operator"))
    missing = [" ".join(path) for path in COMMANDS if path not in table and path not in NO_IDENTITY]
    assert not missing, f"commands without an identity expectation: {missing}"


def test_commands_without_identity_cannot_read_the_home() -> None:
    command = typer.main.get_command(app)
    for path in NO_IDENTITY - {("serve",)}:
        target = command
        for name in path:
            target = target.commands[name]  # type: ignore[attr-defined]
        options = {opt for param in target.params for opt in getattr(param, "opts", [])}
        assert "--home" not in options, f"massalia {' '.join(path)} reads the home: it must resolve its caller"


@pytest.mark.parametrize("kind", sorted(GARBAGE_TOKENS))
@pytest.mark.parametrize("path", [p for p in COMMANDS if p not in NO_IDENTITY], ids=" ".join)
def test_every_command_refuses_a_bad_token(world: World, path: tuple[str, ...], kind: str) -> None:
    row = expectations(world, kind)[path]
    size_before = _ledger_size(world.home)
    code, out = _run(world, kind, *path, *row.args)
    assert code == 4, f"massalia {' '.join(path)} with a {kind} MASSALIA_TOKEN: exit {code}\n{out}"
    assert "authentication failed" in out and "MASSALIA_TOKEN" in out
    assert _ledger_size(world.home) == size_before, "nothing may be done, not even as the operator"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", [p for p in COMMANDS if p not in NO_IDENTITY], ids=" ".join)
def test_every_command_applies_the_rights_of_its_caller(world: World, path: tuple[str, ...], caller: str) -> None:
    row = expectations(world, caller)[path]
    if caller in row.allowed and not row.run_allowed:
        pytest.skip("too slow to run for every allowed caller: run by the fixture or test_the_home_is_private_…")
    code, out = _run(world, caller, *path, *row.args)
    assert code == row.expected(caller), f"massalia {' '.join(path)} as {caller}: exit {code}\n{out}"
    if code == 3:
        assert "denied" in out


def _ledger_size(home: Path) -> int:
    if not (home / "ledger").is_dir():
        return 0
    with TransparencyLog(home / "ledger", readonly=True) as log:
        return log.size


def _entries(home: Path, since: int = 0) -> list[dict[str, Any]]:
    with TransparencyLog(home / "ledger", readonly=True) as log:
        assert log.verify().ok
        return [log.get(index).entry for index in range(since, log.size)]


def test_the_operator_is_the_real_os_account_not_logname(world: World) -> None:
    before = _ledger_size(world.home)
    spoofed = {"LOGNAME": "mallory", "USER": "mallory", "USERNAME": "mallory", "LNAME": "mallory"}
    code, out = _run(world, "operator", "user", "list", env=spoofed)
    assert code == 0, out
    (entry,) = _entries(world.home, before)
    assert entry["action"] == "user.list" and entry["auth"] == "operator"
    assert entry["actor"] == f"operator:{REAL_ACCOUNT}"
    assert entry["os_account"] == REAL_ACCOUNT and entry["os_uid"] == os.getuid()
    assert "mallory" not in json.dumps(entry)


def test_a_token_for_another_user_is_an_audited_administrative_act(world: World) -> None:
    before = _ledger_size(world.home)
    code, out = _run(world, "operator", "token", "create", "--user", "cli-dpo", "--days", "1")
    assert code == 0, out
    minted = [e for e in _entries(world.home, before) if e["action"] == "token.create_for_user"]
    assert len(minted) == 1
    entry = minted[0]
    assert entry["decision"] == "allowed" and entry["administrative"] is True
    assert entry["for_user"] == "cli-dpo" and entry["actor"] == f"operator:{REAL_ACCOUNT}"
    assert entry["token_prefix"] == out.strip().splitlines()[0][:12]
    # A researcher may not, and the refusal is in the trail too.
    before = _ledger_size(world.home)
    code, out = _run(world, "researcher", "token", "create", "--user", "cli-dpo")
    assert code == 3, out
    (denied,) = [e for e in _entries(world.home, before) if e["action"] == "token.create_for_user"]
    assert denied["decision"] == "denied" and denied["actor"] == "cli-researcher"


def test_etl_rejects_is_restricted_and_audited(world: World) -> None:
    before = _ledger_size(world.home)
    code, out = _run(world, "data_engineer", "etl", "rejects", "--site", "chu_nord", "--limit", "3")
    assert code == 0, out
    (entry,) = _entries(world.home, before)
    assert entry["action"] == "health.etl.rejects" and entry["decision"] == "allowed"
    assert entry["actor"] == "cli-data-engineer" and entry["resource"]["site"] == "chu_nord"
    assert entry["resource"]["limit"] == 3
    for caller in ("researcher", "dpo", "clinician"):
        before = _ledger_size(world.home)
        code, out = _run(world, caller, "etl", "rejects")
        assert code == 3, out
        (denied,) = _entries(world.home, before)
        assert denied["action"] == "health.etl.rejects" and denied["decision"] == "denied"
    code, out = _run(world, "data_engineer", "etl", "rejects", "--limit", "100000")
    assert code != 0, "an unbounded read of personal data"


def test_a_project_title_is_printed_literally(world: World) -> None:
    title = "[bold red]URGENT[/] \x1b[2J\x1b[31mcleared\x1b[0m [link=https://evil.example]click[/link]"
    code, out = _run(world, "admin", "project", "create", "--title", title, "--purpose", "a title that attacks the "
                     "terminal", "--expires", "2099-01-01")  # fmt: skip
    assert code == 0, out
    assert "\x1b" not in out and "[bold red]URGENT[/]" in out and "\\x1b[2J" in out
    code, out = _run(world, "admin", "project", "list")
    assert code == 0, out
    # The table may wrap the title inside its cell (its width depends on the other projects listed): the markup
    # is printed as text, in pieces or not, and no escape sequence reaches the terminal.
    assert "\x1b" not in out and "[bold" in out and "URGENT[/]" in out


def _modes(root: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            modes[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return modes


def test_the_home_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"MASSALIA_HOME": str(home), "MASSALIA_TOKEN": ""}
    previous = os.umask(0o022)
    try:
        result = runner.invoke(app, ["demo", "--patients", "10", "--no-serve"], env=env)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["user", "add", "ada", "--role", "admin", "--no-password"], env=env)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["token", "create", "--user", "ada"], env=env)
        assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    modes = _modes(home)
    for expected in (".", "metadata.sqlite", "warehouse.duckdb", "ledger", "sources", "reports"):
        assert expected in modes, f"{expected} was not created"
    public = {path: oct(mode) for path, mode in modes.items() if mode & 0o077}
    assert not public, f"readable or writable by others: {public}"


def test_an_existing_public_home_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    metadata = home / "metadata.sqlite"
    metadata.write_bytes(b"")
    metadata.chmod(0o644)
    previous = os.umask(0o022)
    try:
        result = runner.invoke(app, ["user", "list"], env={"MASSALIA_HOME": str(home), "MASSALIA_TOKEN": ""})
        assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(metadata.stat().st_mode) == 0o600


def test_records_print_as_readable_text_not_python_reprs() -> None:
    from massalia.cli.common import literal, record_text

    record = {"condition_start_date": dt.date(2019, 3, 2), "condition_concept_id": 4112853, "stop_reason": None}
    shown = literal(record_text(record)).plain
    assert shown == "condition_start_date 2019-03-02, condition_concept_id 4112853"
    assert "\\x1b" in literal(record_text({"note": "\x1b[31mred"})).plain, "control characters stay escaped"


COHORT = {"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]}}
DATA_COMMANDS = {
    "info": ["info"],
    "quality": ["quality"],
    "cohort count": ["cohort", "count", "{cohort}"],
    "cohort explain": ["cohort", "explain", "{cohort}", "--person", "1", "--purpose", "check a patient"],
    "mart count": ["mart", "count"],
    "mart build": ["mart", "build"],
    "etl runs": ["etl", "runs"],
    "etl rejects": ["etl", "rejects"],
    "patient view": ["patient", "view", "1", "--purpose", "follow-up visit"],
    "extract create": ["extract", "create", "--project", "1"],
}


@pytest.mark.parametrize("name", sorted(DATA_COMMANDS))
def test_a_mistyped_home_is_refused_not_created(tmp_path: Path, name: str) -> None:
    cohort = tmp_path / "cohort.json"
    cohort.write_text(json.dumps(COHORT), encoding="utf-8")
    args = [arg.format(cohort=cohort) for arg in DATA_COMMANDS[name]]
    typo = tmp_path / "massalia-dta"
    result = runner.invoke(app, [*args, "--home", str(typo)], env={"MASSALIA_TOKEN": ""})
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"no Massalia home at {typo}" in output and "massalia init" in output, output
    assert not typo.exists(), "a mistyped home must not be created"


@pytest.mark.parametrize("name", [n for n in sorted(DATA_COMMANDS) if not n.startswith("etl runs")])
def test_a_home_never_initialized_is_refused_before_any_query(tmp_path: Path, name: str) -> None:
    cohort = tmp_path / "cohort.json"
    cohort.write_text(json.dumps(COHORT), encoding="utf-8")
    args = [arg.format(cohort=cohort) for arg in DATA_COMMANDS[name]]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, [*args, "--home", str(empty)], env={"MASSALIA_TOKEN": ""})
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "not an initialized Massalia home" in output and "never initialized" in output, output
    assert "SELECT" not in output and "Traceback" not in output
