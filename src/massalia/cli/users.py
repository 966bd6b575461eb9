"""``massalia user …``: local user accounts (argon2id password hashes), through the Governance service."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import HomeOption, console, literal, run_governed
from massalia.governance import Role

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
    created = run_governed(
        home_dir, lambda caller: caller.governance.create_user(username, password, roles, site, actor=caller.principal)
    )
    console.print(literal(f"user {created.subject} created (id {created.user_id}), roles {', '.join(sorted(roles))}"))


@user_app.command("list")
def user_list(home_dir: HomeOption = None) -> None:
    """List the user accounts: name, roles, site, state (needs the admin or dpo role)."""
    users = run_governed(home_dir, lambda caller: caller.governance.list_users(actor=caller.principal))
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
    run_governed(home_dir, lambda caller: caller.governance.set_disabled(username, True, actor=caller.principal))
    console.print(literal(f"user {username} disabled"))


@user_app.command("enable")
def user_enable(
    username: Annotated[str, typer.Argument(help="The account to re-enable.")],
    home_dir: HomeOption = None,
) -> None:
    """Re-enable a disabled account (needs the admin role); its old sessions stay ended."""
    run_governed(home_dir, lambda caller: caller.governance.set_disabled(username, False, actor=caller.principal))
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
    changed = run_governed(home_dir, lambda caller: caller.governance.set_roles(username, role, actor=caller.principal))
    roles = ", ".join(sorted(r.value for r in changed.roles))
    console.print(literal(f"user {changed.subject} now has roles {roles}"))
