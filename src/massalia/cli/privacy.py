"""``massalia privacy``: one's own privacy budget for noisy feasibility counts."""

from __future__ import annotations

import typer

from massalia.cli.common import HomeOption, console, run_governed
from massalia.governance.disclosure import privacy_budget

privacy_app = typer.Typer(help="Your privacy budget for noisy counts made without an approved project.")


@privacy_app.command("budget")
def budget(home_dir: HomeOption = None) -> None:
    """Show how much of your privacy budget (epsilon) this period is spent and how much is left."""
    spent = run_governed(home_dir, privacy_budget)
    console.print(
        f"{spent.subject}: ε {spent.spent:g} spent of {spent.total:g}, {spent.remaining:g} left "
        f"({spent.releases} release(s) in the {spent.period_days} days since {spent.period_start:%Y-%m-%d %H:%M} UTC; "
        f"ε {spent.epsilon_per_count:g} per count)",
        markup=False,
    )
    if spent.locked_out:
        console.print("locked out until the period ends: too many different queries gave the same answer")
