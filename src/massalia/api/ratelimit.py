"""A small sliding-window limiter for failed logins (per account, per account and address, per address).

Only failures count: a user who signs in at the first try is never slowed down, while a password
guesser is stopped after ``max_failures`` wrong answers within ``window`` seconds until the oldest
failure leaves the window. Each kind of key may have its own bound (``limits``, by key prefix): the
login route counts a failure against the (account, address) pair with the tight bound, and against
the account alone and the address alone with looser ones, so that one guesser neither locks the
account's owner out from elsewhere nor everyone else behind the same address (a hospital's NAT),
while guessing one account from many addresses, or many accounts from one address, is still stopped.
In memory, per process: behind several workers each keeps its own window (the bound per worker holds).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping


class FailureLimiter:
    """Count failures per key in a sliding window and say how long a blocked key must wait.

    Parameters
    ----------
    max_failures
        Failures allowed within ``window``; the next attempt is refused.
    window
        Length of the window in seconds.
    clock
        Monotonic seconds (tests pass a fake clock).
    limits
        Other bounds for keys starting with a prefix (``{"ip:": 50}``); others get ``max_failures``.

    Examples
    --------
    >>> now = [0.0]
    >>> limiter = FailureLimiter(2, 60.0, clock=lambda: now[0])
    >>> limiter.fail("user:ana"); limiter.fail("user:ana")
    >>> limiter.retry_after("user:ana")
    60
    >>> now[0] = 60.5
    >>> limiter.retry_after("user:ana")
    0
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        if max_failures < 1 or window <= 0:
            raise ValueError(f"FailureLimiter needs max_failures >= 1 and window > 0, got {max_failures}, {window}")
        if any(bound < 1 for bound in (limits or {}).values()):
            raise ValueError(f"FailureLimiter limits must be at least 1, got {dict(limits or {})}")
        self.max_failures = max_failures
        self.limits = dict(limits or {})
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def limit(self, key: str) -> int:
        """The failures allowed for ``key`` within the window."""
        return next((bound for prefix, bound in self.limits.items() if key.startswith(prefix)), self.max_failures)

    def retry_after(self, *keys: str) -> int:
        """Seconds (rounded up) before any of ``keys`` may try again; 0 when none is blocked."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._prune(key, now)
                bound = self.limit(key)
                if times is not None and len(times) >= bound:
                    wait = max(wait, times[len(times) - bound] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def fail(self, *keys: str) -> None:
        """Record one failure for each of ``keys``."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._prune(key, now)
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of distinct names
                for stale in [k for k, t in self._failures.items() if t[-1] <= now - self.window]:
                    del self._failures[stale]

    def clear(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login for that username)."""
        with self._lock:
            self._failures.pop(key, None)
