"""The time limit of a caller's queries: a guarded service cancels a query that runs too long.

A feasibility count, an attrition table, a breakdown, a patient view or an explanation is built from a
caller's own definition or filters, so its cost is the caller's choice. The bounds on definitions (size,
depth, concepts) keep the usual cost small; this limit bounds the rest: a service decorated with
:func:`time_limited` runs its warehouse statements under :meth:`massalia.engine.Engine.time_limit`, and a
statement still running when the limit is reached is cancelled by the engine and reported as a client error
(:class:`~massalia.governance.model.InvalidRequest`, a 422 over HTTP) saying what to do.

The limit is ``MASSALIA_QUERY_TIME_LIMIT`` seconds (default 120). Operators' long jobs (ETL, quality, the
mart build) and approved projects' extracts are not limited by it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from massalia.engine import Engine, QueryTimeoutError
from massalia.governance.caller import Caller
from massalia.governance.model import InvalidRequest

QUERY_TIME_LIMIT_SETTING = "MASSALIA_QUERY_TIME_LIMIT"
DEFAULT_QUERY_TIME_LIMIT = 120.0
MAX_QUERY_TIME_LIMIT = 24 * 3600.0

P = ParamSpec("P")
R = TypeVar("R")


def query_time_limit() -> float:
    """The configured limit in seconds (``MASSALIA_QUERY_TIME_LIMIT``), checked.

    Examples
    --------
    >>> import os; os.environ["MASSALIA_QUERY_TIME_LIMIT"] = "30"
    >>> query_time_limit()
    30.0
    >>> os.environ["MASSALIA_QUERY_TIME_LIMIT"] = "soon"
    >>> query_time_limit()
    Traceback (most recent call last):
    ...
    ValueError: MASSALIA_QUERY_TIME_LIMIT must be a number of seconds between 0 and 86400, got 'soon'
    >>> del os.environ["MASSALIA_QUERY_TIME_LIMIT"]
    """
    raw = os.environ.get(QUERY_TIME_LIMIT_SETTING, "").strip()
    if not raw:
        return DEFAULT_QUERY_TIME_LIMIT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_QUERY_TIME_LIMIT:
        raise ValueError(
            f"{QUERY_TIME_LIMIT_SETTING} must be a number of seconds between 0 and {MAX_QUERY_TIME_LIMIT:g}, "
            f"got {raw!r}"
        )
    return seconds


def time_limited(
    service: Callable[Concatenate[Caller, Engine, P], R],
) -> Callable[Concatenate[Caller, Engine, P], R]:
    """Run a guarded service ``service(caller, engine, ...)`` within the query time limit.

    A cancelled query becomes an :class:`InvalidRequest` naming the limit and what to do; the caller's
    authorization and audit have happened inside the service already (the attempt is on record).
    """

    @functools.wraps(service)
    def limited(caller: Caller, engine: Engine, /, *args: P.args, **kwargs: P.kwargs) -> R:
        limit = query_time_limit()
        try:
            with engine.time_limit(limit):
                return service(caller, engine, *args, **kwargs)
        except QueryTimeoutError as error:
            raise InvalidRequest(
                f"the query ran longer than the limit of {limit:g} s and was cancelled: narrow the definition or "
                f"filters, or ask the operator about {QUERY_TIME_LIMIT_SETTING}"
            ) from error

    return limited
