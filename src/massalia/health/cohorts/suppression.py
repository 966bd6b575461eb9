"""The small-cell threshold, and the masking of record counts in redacted explanations.

Aggregate counts (cohort counts, attrition, breakdowns, mart counts) are no longer masked here: they
go through the one release mechanism, :mod:`massalia.governance.disclosure` (noise, rounding,
threshold, budget), because plain suppression leaks by differencing and by "masked versus 0".
What stays is ``suppress_count`` for the per-criterion record counts of an explanation shown to the
local operator (one person's records, not a population count), and ``DEFAULT_THRESHOLD``.
"""

from __future__ import annotations

DEFAULT_THRESHOLD = 10


def is_small(count: int | None, threshold: int) -> bool:
    """Whether ``count`` must be masked on its own (0 is not: nobody can be singled out from it)."""
    return count is not None and 0 < count < threshold


def suppress_count(count: int, threshold: int = DEFAULT_THRESHOLD, *, allowed_raw: bool = False) -> int | None:
    """Mask a single count (a total) when it is small.

    Examples
    --------
    >>> suppress_count(7) is None, suppress_count(70)
    (True, 70)
    """
    if allowed_raw or not is_small(count, threshold):
        return count
    return None
