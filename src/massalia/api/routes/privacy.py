"""The caller's own privacy budget for noisy feasibility counts (how much is spent, how much is left)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from massalia.api.deps import Caller, Context, action
from massalia.governance.disclosure import Budget, privacy_budget

router = APIRouter(prefix="/me", tags=["privacy"])


def budget_json(budget: Budget) -> dict[str, Any]:
    """A privacy budget as JSON."""
    return {
        "subject": budget.subject, "total": budget.total, "spent": budget.spent, "remaining": budget.remaining,
        "period_days": budget.period_days, "period_start": budget.period_start.isoformat(),
        "releases": budget.releases, "locked_out": budget.locked_out,
        "epsilon_per_count": budget.epsilon_per_count,
    }  # fmt: skip


@router.get("/privacy-budget", **action("privacy.budget"))
def my_privacy_budget(context: Context, caller: Caller) -> dict[str, Any]:
    """The caller's privacy budget for the current period: total, spent, remaining, releases, lockout."""
    return budget_json(privacy_budget(caller))
