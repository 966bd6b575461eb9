"""``massalia user|token|project|request …``: accounts, API tokens, projects and access requests.

A thin layer over :class:`massalia.governance.Governance`. Who is acting (:func:`caller`): the holder
of the API token in ``MASSALIA_TOKEN`` if it is set (an invalid one stops the command: never a fallback),
otherwise the local operator of the home (whoever can read the ``MASSALIA_HOME`` files), named by the
process's OS account and acting with the roles ``admin`` + ``data_engineer``; every decision on an
operator's action is audited. Approving a request needs a DPO, so a DPO's token.

Text that users or source files wrote (titles, purposes, reasons, names) is printed through
:func:`literal`: never read as Rich markup, control characters shown as escapes, so a title cannot
restyle the terminal or forge lines of output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from massalia.config import Home, home
from massalia.governance import (
    AccessDenied,
    AuthenticationError,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    Project,
    ProjectScope,
    Role,
    operator_principal,
)

TOKEN_ENV = "MASSALIA_TOKEN"  # noqa: S105 (the name of the variable, not a token)
console = Console()
error_console = Console(stderr=True)
T = TypeVar("T")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="MASSALIA_HOME", help="Data folder (warehouse, metadata, indexes, reports)."),
]


def literal(value: object) -> Text:
    r"""``value`` as plain terminal text: no Rich markup, every control character shown as an escape.

    Examples
    --------
    >>> literal("[bold]x[/] \x1b[31m").plain
    '[bold]x[/] \\x1b[31m'
    """
    text = str(value)
    shown = "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii") for char in text
    )
    return Text(shown)


def token_from_env() -> str | None:
    """The token in ``MASSALIA_TOKEN``: ``None`` when the variable is unset or empty, else its stripped value.

    A value of only spaces is returned as ``""`` (then refused as malformed), never taken for "no token".
    """
    raw = os.environ.get(TOKEN_ENV)
    if raw is None or raw == "":
        return None
    return raw.strip()


def caller(gov: Governance) -> Principal:
    """Who runs this command: the ``MASSALIA_TOKEN`` holder, else the home's local operator.

    Raises
    ------
    AuthenticationError
        If ``MASSALIA_TOKEN`` is set but not a valid, unexpired, unrevoked token: an invalid token is an
        error, never a fall back to the operator.
    """
    token = token_from_env()
    if token is not None:
        return gov.authenticate_token(token)
    return operator_principal()


@contextmanager
def governed(data: Home) -> Iterator[tuple[Governance, Principal]]:
    """Open the home's governance service, resolve the caller, and turn refusals into clear exits.

    Exit status: 1 bad input or not found, 3 access denied, 4 authentication failed.
    """
    try:
        with Governance.from_home(data) as gov:
            yield gov, caller(gov)
    except AccessDenied as denied:
        error_console.print("[red]denied[/]: ", literal(f"{denied.action}: {denied.reason}"), sep="")
        raise typer.Exit(code=3) from None
    except AuthenticationError as error:
        error_console.print(f"[red]authentication failed[/] ({TOKEN_ENV}): ", literal(error), sep="")
        raise typer.Exit(code=4) from None
    except (InvalidRequest, NotFound) as error:
        error_console.print("[red]error[/]: ", literal(error), sep="")
        raise typer.Exit(code=1) from None


def run_governed(home_dir: Path | None, action: Callable[[Governance, Principal], T]) -> T:
    """Run ``action(gov, principal)`` under :func:`governed` for the home at ``home_dir``."""
    with governed(home(home_dir).ensure()) as (gov, principal):
        return action(gov, principal)


# -- users ------------------------------------------------------------------------------------------
user_app = typer.Typer(help="Local user accounts (argon2id password hashes): add and list.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name: lowercase letters, digits, '.', '_', '-'.")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Role (repeatable): admin, data_engineer, dpo, researcher, clinician."),
    ] = None,
    site: Annotated[str | None, typer.Option(help="Care site code of a clinician (e.g. chu_nord).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Create the account without a password (API tokens only).")
    ] = False,
    home_dir: HomeOption = None,
) -> None:
    """Create a user account (needs the admin role); the password is prompted unless told otherwise."""
    password = None if no_password else _read_password(password_stdin)
    roles = role or [Role.RESEARCHER.value]
    created = run_governed(home_dir, lambda gov, actor: gov.create_user(username, password, roles, site, actor=actor))
    console.print(literal(f"user {created.subject} created (id {created.user_id}), roles {', '.join(sorted(roles))}"))


@user_app.command("list")
def user_list(home_dir: HomeOption = None) -> None:
    """List the user accounts: name, roles, site, state (needs the admin or dpo role)."""
    users = run_governed(home_dir, lambda gov, actor: gov.list_users(actor=actor))
    table = Table(title=f"{len(users)} user(s)")
    for column in ("id", "username", "roles", "site", "state", "created"):
        table.add_column(column)
    for user in users:
        table.add_row(
            str(user.id), literal(user.username), ", ".join(sorted(r.value for r in user.roles)),
            literal(user.site or ""), "disabled" if user.disabled else "active",
            user.created_at.isoformat(timespec="seconds"),
        )  # fmt: skip
    console.print(table)


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="The account to disable.")],
    home_dir: HomeOption = None,
) -> None:
    """Disable an account (needs the admin role; never one's own): its password, tokens and sessions stop at once."""
    run_governed(home_dir, lambda gov, actor: gov.set_disabled(username, True, actor=actor))
    console.print(literal(f"user {username} disabled"))


@user_app.command("enable")
def user_enable(
    username: Annotated[str, typer.Argument(help="The account to re-enable.")],
    home_dir: HomeOption = None,
) -> None:
    """Re-enable a disabled account (needs the admin role); its old sessions stay ended."""
    run_governed(home_dir, lambda gov, actor: gov.set_disabled(username, False, actor=actor))
    console.print(literal(f"user {username} enabled"))


@user_app.command("set-roles")
def user_set_roles(
    username: Annotated[str, typer.Argument(help="The account whose roles are replaced.")],
    role: Annotated[
        list[str], typer.Option("--role", help="Role (repeatable): admin, data_engineer, dpo, researcher, clinician.")
    ],
    home_dir: HomeOption = None,
) -> None:
    """Replace an account's roles (needs the admin role; never one's own); its open sessions end."""
    changed = run_governed(home_dir, lambda gov, actor: gov.set_roles(username, role, actor=actor))
    roles = ", ".join(sorted(r.value for r in changed.roles))
    console.print(literal(f"user {changed.subject} now has roles {roles}"))


# -- tokens -----------------------------------------------------------------------------------------
token_app = typer.Typer(help="API tokens (stored as SHA-256 hashes; shown once): create, list, revoke.")


@token_app.command("create")
def token_create(
    user: Annotated[
        str | None, typer.Option(help="Whose token (default: the caller; another user needs the admin role).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Limit the token to an action or area (repeatable): health.cohort.count, health.cohort.*, health.*.",
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days until the token expires.")] = 90,
    home_dir: HomeOption = None,
) -> None:
    """Create an API token and print it once (only its hash is kept): use it as MASSALIA_TOKEN or a Bearer token."""

    def create(gov: Governance, actor: Principal) -> str:
        if user is None and actor.auth == "operator":
            raise InvalidRequest("the local operator has no account to own a token: name one with --user")
        owner = user or actor.subject
        return gov.create_token(owner, scope, dt.timedelta(days=days), actor=actor)

    token = run_governed(home_dir, create)
    typer.echo(token)
    error_console.print("store it now: it cannot be shown again")


@token_app.command("list")
def token_list(home_dir: HomeOption = None) -> None:
    """List API tokens (the caller's; every token for admins), without their secrets."""
    tokens = run_governed(home_dir, lambda gov, actor: gov.list_tokens(actor=actor))
    table = Table(title=f"{len(tokens)} token(s)")
    for column in ("id", "user", "prefix", "scopes", "expires", "state", "last used"):
        table.add_column(column)
    for token in tokens:
        state = "revoked" if token.revoked_at else "active"
        table.add_row(
            str(token.id), literal(token.username), literal(token.prefix + "…"),
            literal(", ".join(sorted(token.scopes or ["(all)"]))),
            token.expires_at.date().isoformat(), state,
            token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "",
        )  # fmt: skip
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="Id of the token (see `massalia token list`).")],
    home_dir: HomeOption = None,
) -> None:
    """Revoke an API token (one's own; admins any): it stops working at once."""
    run_governed(home_dir, lambda gov, actor: gov.revoke_token(token_id, actor=actor))
    console.print(f"token {token_id} revoked")


# -- projects ---------------------------------------------------------------------------------------
project_app = typer.Typer(help="Research projects: purpose, members, scope, access level, expiry.")


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} must be a date YYYY-MM-DD, got {value!r}") from None


def _show_project(project: Project) -> None:
    console.print(f"[bold]project {project.id}[/]: ", literal(project.title), sep="")
    rows = [
        ("status", project.status + ("" if project.is_active() or project.status != "approved" else " (expired)")),
        ("purpose", project.purpose),
        ("owner", project.owner),
        ("members", ", ".join(project.members) or "(none)"),
        ("pending", ", ".join(project.pending_members) or "(none)"),
        ("access level", project.access_level),
        ("expires", project.expires.isoformat()),
        ("cohort", project.scope.cohort_hash or "(any)"),
        ("variables", ", ".join(project.scope.variables) or "(any)"),
        ("sites", ", ".join(project.scope.sites) or "(all)"),
        ("period", f"{project.scope.period_start or '…'} to {project.scope.period_end or '…'}"),
    ]
    for name, value in rows:
        console.print(literal(f"  {name:13} {value}"), highlight=False)


@project_app.command("create")
def project_create(
    title: Annotated[str, typer.Option(help="Short title of the project.")],
    purpose: Annotated[str, typer.Option(help="What the data is for (the approved purpose).")],
    expires: Annotated[str, typer.Option(help="Last day of data access, YYYY-MM-DD.")],
    access_level: Annotated[
        str, typer.Option("--access-level", help="aggregate (counts only) or pseudonymized (row-level extracts).")
    ] = "aggregate",
    cohort: Annotated[
        Path | None, typer.Option(help="Cohort definition the project is scoped to (Massalia or Circe JSON).")
    ] = None,
    variable: Annotated[
        list[str] | None, typer.Option("--variable", help="Mart variable the project may use (repeatable).")
    ] = None,
    site: Annotated[list[str] | None, typer.Option("--site", help="Care site in scope (repeatable).")] = None,
    period_start: Annotated[str | None, typer.Option(help="First day of the study period, YYYY-MM-DD.")] = None,
    period_end: Annotated[str | None, typer.Option(help="Last day of the study period, YYYY-MM-DD.")] = None,
    home_dir: HomeOption = None,
) -> None:
    """Create a research project (it has no data access until a DPO approves a request)."""
    cohort_json: dict[str, Any] | None = None
    cohort_hash = None
    if cohort is not None:
        from massalia.cli_cohorts import load_definition

        definition = load_definition(cohort)
        cohort_json, cohort_hash = json.loads(definition.to_json()), definition.definition_hash()
    expiry = _date(expires, "--expires")
    if expiry is None:
        raise typer.BadParameter("--expires is required")
    try:
        scope = ProjectScope(
            cohort=cohort_json, cohort_hash=cohort_hash, variables=tuple(variable or ()), sites=tuple(site or ()),
            period_start=_date(period_start, "--period-start"), period_end=_date(period_end, "--period-end"),
        )  # fmt: skip
    except InvalidRequest as error:
        raise typer.BadParameter(str(error)) from None
    project = run_governed(
        home_dir,
        lambda gov, actor: gov.create_project(
            title, purpose, scope=scope, access_level=access_level, expires=expiry, actor=actor
        ),
    )
    _show_project(project)


@project_app.command("list")
def project_list(home_dir: HomeOption = None) -> None:
    """List projects: all for admins and DPOs, one's own for others."""
    projects = run_governed(home_dir, lambda gov, actor: gov.list_projects(actor=actor))
    table = Table(title=f"{len(projects)} project(s)")
    for column in ("id", "title", "status", "access level", "expires", "members"):
        table.add_column(column)
    for project in projects:
        table.add_row(
            str(project.id), literal(project.title), project.status, project.access_level,
            project.expires.isoformat(), literal(", ".join(project.members)),
        )  # fmt: skip
    console.print(table)


@project_app.command("show")
def project_show(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    home_dir: HomeOption = None,
) -> None:
    """Show a project: purpose, members, scope, access level, expiry and status."""
    _show_project(run_governed(home_dir, lambda gov, actor: gov.get_project(project_id, actor=actor)))


@project_app.command("add-member")
def project_add_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="User to add.")],
    home_dir: HomeOption = None,
) -> None:
    """Add a user to a project (its owner, a DPO or an admin; never oneself); pending once a request is filed."""
    project = run_governed(home_dir, lambda gov, actor: gov.add_member(project_id, username, actor=actor))
    state = "pending a DPO's approval" if username in project.pending_members else "active"
    console.print(literal(f"project {project.id}: {username} added ({state})"))


@project_app.command("approve-member")
def project_approve_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="Pending member to approve.")],
    home_dir: HomeOption = None,
) -> None:
    """Approve a pending member (a DPO who is neither a member nor the one who added them)."""
    project = run_governed(home_dir, lambda gov, actor: gov.approve_member(project_id, username, actor=actor))
    console.print(literal(f"project {project.id}: {username} approved"))


@project_app.command("remove-member")
def project_remove_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="Member to remove.")],
    home_dir: HomeOption = None,
) -> None:
    """Remove a member (the owner, a DPO, an admin, or the member leaving); their access ends at once."""
    project = run_governed(home_dir, lambda gov, actor: gov.remove_member(project_id, username, actor=actor))
    console.print(literal(f"project {project.id}: {username} removed"))


# -- access requests --------------------------------------------------------------------------------
request_app = typer.Typer(help="Access requests: file one for a project, list them, approve or reject (DPO).")


@request_app.command("file")
def request_file(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    justification: Annotated[str, typer.Option(help="Why the project needs the access.")],
    home_dir: HomeOption = None,
) -> None:
    """File an access request for a project one is a member of."""
    request = run_governed(
        home_dir, lambda gov, actor: gov.file_request(project_id, actor=actor, justification=justification)
    )
    console.print(f"request {request.id} filed for project {request.project_id}: {request.status}")


@request_app.command("list")
def request_list(home_dir: HomeOption = None) -> None:
    """List access requests and their decisions (all for DPOs and admins, one's projects' for others)."""
    requests = run_governed(home_dir, lambda gov, actor: gov.list_requests(actor=actor))
    table = Table(title=f"{len(requests)} request(s)")
    for column in ("id", "project", "by", "filed", "status", "decided by", "reason"):
        table.add_column(column)
    for request in requests:
        table.add_row(
            str(request.id), str(request.project_id), literal(request.requested_by),
            request.filed_at.isoformat(timespec="seconds"), request.status, literal(request.decided_by or ""),
            literal(request.reason or ""),
        )  # fmt: skip
    console.print(table)


def _decide(request_id: int, approve: bool, reason: str, home_dir: Path | None) -> None:
    request = run_governed(home_dir, lambda gov, actor: gov.decide_request(request_id, approve, reason, actor=actor))
    console.print(literal(f"request {request.id} {request.status} by {request.decided_by}"))


@request_app.command("approve")
def request_approve(
    request_id: Annotated[int, typer.Argument(help="Request id.")],
    reason: Annotated[str, typer.Option(help="Why it is approved (kept with the decision and in the audit log).")],
    home_dir: HomeOption = None,
) -> None:
    """Approve a pending request (DPO only): the project's members get its access level until it expires."""
    _decide(request_id, True, reason, home_dir)


@request_app.command("reject")
def request_reject(
    request_id: Annotated[int, typer.Argument(help="Request id.")],
    reason: Annotated[str, typer.Option(help="Why it is rejected (kept with the decision and in the audit log).")],
    home_dir: HomeOption = None,
) -> None:
    """Reject a pending request (DPO only); the decision is final (file a new request to try again)."""
    _decide(request_id, False, reason, home_dir)


@request_app.command("revoke")
def request_revoke(
    request_id: Annotated[int, typer.Argument(help="Id of an approved request.")],
    reason: Annotated[str, typer.Option(help="Why it is revoked (kept with the request and in the audit log).")],
    home_dir: HomeOption = None,
) -> None:
    """Revoke an approved request (DPO only, never for one's own project): the project loses access at once."""
    request = run_governed(home_dir, lambda gov, actor: gov.revoke_request(request_id, reason, actor=actor))
    console.print(literal(f"request {request.id} revoked by {request.revoked_by}"))


def register(app: typer.Typer) -> None:
    """Add the ``user``, ``token``, ``project`` and ``request`` command groups to the main app."""
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(project_app, name="project")
    app.add_typer(request_app, name="request")
