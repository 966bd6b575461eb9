"""``massalia project …``: research projects (purpose, members, scope, access level, expiry)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from massalia.cli.cohort import load_definition
from massalia.cli.common import HomeOption, console, literal, run_governed
from massalia.governance import InvalidRequest, Project, ProjectScope

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
        lambda caller: caller.governance.create_project(
            title, purpose, scope=scope, access_level=access_level, expires=expiry, actor=caller.principal
        ),
    )
    _show_project(project)


@project_app.command("list")
def project_list(home_dir: HomeOption = None) -> None:
    """List projects: all for admins and DPOs, one's own for others."""
    projects = run_governed(home_dir, lambda caller: caller.governance.list_projects(actor=caller.principal))
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
    _show_project(
        run_governed(home_dir, lambda caller: caller.governance.get_project(project_id, actor=caller.principal))
    )


@project_app.command("add-member")
def project_add_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="User to add.")],
    home_dir: HomeOption = None,
) -> None:
    """Add a user to a project (its owner, a DPO or an admin; never oneself); pending once a request is filed."""
    project = run_governed(
        home_dir, lambda caller: caller.governance.add_member(project_id, username, actor=caller.principal)
    )
    state = "pending a DPO's approval" if username in project.pending_members else "active"
    console.print(literal(f"project {project.id}: {username} added ({state})"))


@project_app.command("approve-member")
def project_approve_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="Pending member to approve.")],
    home_dir: HomeOption = None,
) -> None:
    """Approve a pending member (a DPO who is neither a member nor the one who added them)."""
    project = run_governed(
        home_dir, lambda caller: caller.governance.approve_member(project_id, username, actor=caller.principal)
    )
    console.print(literal(f"project {project.id}: {username} approved"))


@project_app.command("remove-member")
def project_remove_member(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    username: Annotated[str, typer.Argument(help="Member to remove.")],
    home_dir: HomeOption = None,
) -> None:
    """Remove a member (the owner, a DPO, an admin, or the member leaving); their access ends at once."""
    project = run_governed(
        home_dir, lambda caller: caller.governance.remove_member(project_id, username, actor=caller.principal)
    )
    console.print(literal(f"project {project.id}: {username} removed"))
