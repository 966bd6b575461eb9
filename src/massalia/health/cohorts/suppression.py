"""Small-cell suppression for every aggregate count the cohort services return.

A count between 1 and ``threshold - 1`` is masked (``None``). Complementary suppression then masks
more cells until the masked cells cannot be recovered from the published total by subtraction: at
least two cells are masked, and together they hold at least ``threshold`` persons (or every cell is
masked). The total itself is masked when it is small. Callers allowed to see raw counts (the
governance layer decides who) pass ``allowed_raw=True`` and get the counts unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_THRESHOLD = 10


def is_small(count: int | None, threshold: int) -> bool:
    """Whether ``count`` must be masked on its own (0 is not: nobody can be singled out from it)."""
    return count is not None and 0 < count < threshold


def suppress_small_cells(
    counts: Mapping[K, int | None], threshold: int = DEFAULT_THRESHOLD, *, allowed_raw: bool = False
) -> dict[K, int | None]:
    """Mask small counts, with complementary suppression so a masked cell cannot be derived from the others.

    Parameters
    ----------
    counts
        The cells of one breakdown (e.g. persons by sex) whose total is published or derivable.
    threshold
        Counts from 1 to ``threshold - 1`` are masked (default 10).
    allowed_raw
        Return the counts unchanged (for callers entitled to raw counts).

    Returns
    -------
    dict
        The same keys; masked cells are ``None``.

    Examples
    --------
    >>> suppress_small_cells({"F": 120, "M": 4})
    {'F': None, 'M': None}
    >>> suppress_small_cells({"F": 120, "M": 40, "U": 3})
    {'F': 120, 'M': None, 'U': None}
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    result: dict[K, int | None] = dict(counts)
    if allowed_raw:
        return result
    masked = {key for key, value in result.items() if is_small(value, threshold)}
    if masked:
        # Complementary cells: mask the smallest visible non-zero cells until the masked ones are at least
        # two and sum to at least the threshold, so subtraction from the total reveals nothing small.
        visible = sorted(
            (key for key in result if key not in masked and (result[key] or 0) > 0),
            key=lambda key: (result[key] or 0, str(key)),
        )
        while visible and (len(masked) < 2 or sum(result[key] or 0 for key in masked) < threshold):
            masked.add(visible.pop(0))
    for key in masked:
        result[key] = None
    return result


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
