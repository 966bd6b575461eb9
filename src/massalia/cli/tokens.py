"""``massalia token …``: API tokens (stored as SHA-256 hashes, shown once), through the Governance service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import HomeOption, console, error_console, literal, run_governed
from massalia.governance import Caller, InvalidRequest

OPERATOR_PREFIX = "operator:"
"""How the local operator's subject starts (``operator:<OS account>``): never a user name."""
OPERATOR_HAS_NO_ACCOUNT = (
    "{subject} is the local operator (whoever holds the home's files), not a user account, so it cannot own a "
    "token: create a token for a user with 'massalia token create --user NAME' (an account is made with "
    "'massalia user add NAME --role researcher')"
)

token_app = typer.Typer(help="API tokens (stored as SHA-256 hashes; shown once): create, list, revoke.")


@token_app.command("create")
def token_create(
    user: Annotated[
        str | None, typer.Option(help="Whose token (default: the caller; another user needs the admin role).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Limit the token to an action or area (repeatable): cohort.count, cohort.*."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days until the token expires.")] = 90,
    home_dir: HomeOption = None,
) -> None:
    """Create an API token and print it once (only its hash is kept): use it as MASSALIA_TOKEN or a Bearer token."""

    def create(caller: Caller) -> str:
        actor = caller.principal
        operator = actor.auth == "operator"
        if operator and (user is None or user == actor.subject):
            raise InvalidRequest(OPERATOR_HAS_NO_ACCOUNT.format(subject=actor.subject))
        if user is not None and user.startswith(OPERATOR_PREFIX):
            raise InvalidRequest(f"{user!r} is the local operator of a home, not an account: tokens belong to users")
        owner = user or actor.subject
        return caller.governance.create_token(owner, scope, dt.timedelta(days=days), actor=actor)

    token = run_governed(home_dir, create)
    typer.echo(token)
    error_console.print("store it now: it cannot be shown again")


@token_app.command("list")
def token_list(home_dir: HomeOption = None) -> None:
    """List API tokens (the caller's; every token for admins), without their secrets."""
    tokens = run_governed(home_dir, lambda caller: caller.governance.list_tokens(actor=caller.principal))
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
    run_governed(home_dir, lambda caller: caller.governance.revoke_token(token_id, actor=caller.principal))
    console.print(f"token {token_id} revoked")
