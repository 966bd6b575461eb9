"""``massalia request …``: access requests for a project, and their decision by a DPO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import HomeOption, console, literal, run_governed

request_app = typer.Typer(help="Access requests: file one for a project, list them, approve or reject (DPO).")


@request_app.command("file")
def request_file(
    project_id: Annotated[int, typer.Argument(help="Project id.")],
    justification: Annotated[str, typer.Option(help="Why the project needs the access.")],
    home_dir: HomeOption = None,
) -> None:
    """File an access request for a project one is a member of."""
    request = run_governed(
        home_dir,
        lambda caller: caller.governance.file_request(project_id, actor=caller.principal, justification=justification),
    )
    console.print(f"request {request.id} filed for project {request.project_id}: {request.status}")


@request_app.command("list")
def request_list(home_dir: HomeOption = None) -> None:
    """List access requests and their decisions (all for DPOs and admins, one's projects' for others)."""
    requests = run_governed(home_dir, lambda caller: caller.governance.list_requests(actor=caller.principal))
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
    request = run_governed(
        home_dir, lambda caller: caller.governance.decide_request(request_id, approve, reason, actor=caller.principal)
    )
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
    request = run_governed(
        home_dir, lambda caller: caller.governance.revoke_request(request_id, reason, actor=caller.principal)
    )
    console.print(literal(f"request {request.id} revoked by {request.revoked_by}"))
