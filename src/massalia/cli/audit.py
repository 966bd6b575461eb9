"""``massalia audit …``: the tamper-evident audit log (an RFC 9162-style Merkle transparency log)."""

from __future__ import annotations

import typer

from massalia.cli.common import HomeOption, console, existing_home, governed, literal

audit_app = typer.Typer(help="The tamper-evident audit log (an RFC 9162-style Merkle transparency log).")


@audit_app.command("verify")
def audit_verify(home_dir: HomeOption = None) -> None:
    """Recompute the whole audit log and check every stored hash and signed tree head (exit 1 if not intact)."""
    with governed(existing_home(home_dir)) as caller:
        if not caller.governance.ledger_path.is_dir():
            # No audited action yet: nothing to verify is a success (tree heads are public, no check needed).
            console.print(
                literal(
                    "the audit log is empty (no audited action yet): nothing to verify at "
                    f"{caller.governance.ledger_path}"
                )
            )
            return
        report = caller.governance.verify_audit_log(actor=caller.principal)
    console.print(literal(report.summary()))
    if not report.ok:
        raise typer.Exit(code=1)
