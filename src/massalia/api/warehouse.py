"""The warehouse kept open between requests, so that each request's own connection is cheap to open.

Opening the embedded DuckDB warehouse reads its catalogue and write-ahead log (about 17 ms at 100,000
patients, plus 3 to 6 ms to close it), and a request used to pay that every time. While one connection of
this process stays open (the *anchor*), DuckDB hands every further connection to the same file the database
already open in memory (0.3 ms). :class:`WarehouseKeeper` holds that anchor:

* each request still gets **its own connection** (:meth:`WarehouseKeeper.connect`), opened exactly as
  before (``open_warehouse``, the same engine and options), and closed after the request: requests run side
  by side and see each other's writes as before; nothing of one request's connection (temporary tables,
  settings) reaches another's;
* the anchor is closed when no request has used the warehouse for :data:`KEEP_OPEN_S` seconds, so another
  process (an ETL run, ``massalia mart build`` from the command line) can take the file's write lock in the
  quiet moments, as it could between requests before;
* it is dropped and reopened when the warehouse file is no longer the one it opened (replaced or rebuilt
  under the same name: another inode), so a changed warehouse is read from the next request on.

The keeper opens nothing and grants nothing by itself: rights, scope, disclosure and audit stay in the
guarded services, which receive the request's engine as they always did.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from massalia.config import Home
from massalia.engine import Engine, hold_open
from massalia.warehouse import open_warehouse

KEEP_OPEN_S = 3.0
"""Seconds without any request on the warehouse after which the anchor is closed (the file's lock released)."""


def file_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the warehouse file, or ``None`` when there is none (a server engine).

    Examples
    --------
    >>> file_identity(Path("/nonexistent/warehouse.duckdb")) is None
    True
    """
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class WarehouseKeeper:
    """Opens each request's warehouse connection, keeping one more open between requests.

    Parameters
    ----------
    home
        The server's home (its warehouse).
    engine
        The engine name the API was configured with (``None``: the home's).
    keep_open_s
        Seconds the anchor outlives the last request.

    Examples
    --------
    >>> keeper = WarehouseKeeper(home)  # doctest: +SKIP
    >>> engine = keeper.connect()  # doctest: +SKIP
    >>> keeper.release(engine)  # doctest: +SKIP
    """

    def __init__(self, home: Home, engine: str | None = None, *, keep_open_s: float = KEEP_OPEN_S) -> None:
        self.home = home
        self.engine = engine
        self.keep_open_s = keep_open_s
        self._lock = threading.Lock()
        self._anchor: Engine | None = None
        self._identity: tuple[int, int] | None = None
        self._in_use = 0
        self._last_release = time.monotonic()
        self._stop_reaper: threading.Event | None = None  # the current anchor's reaper stops when this is set
        self._withdraw: Callable[[], None] | None = None  # withdraws the anchor's hold_open declaration

    @property
    def anchored(self) -> bool:
        """Whether the warehouse is being kept open now."""
        return self._anchor is not None

    def connect(self) -> Engine:
        """A new connection to the warehouse for one request (closed with :meth:`release`).

        Raises
        ------
        massalia.engine.WarehouseBusyError
            Another process holds the warehouse (the API answers 503).
        massalia.config.HomeNotInitializedError
            The home has no warehouse yet.
        """
        with self._lock:
            self._refresh_anchor()
            self._in_use += 1
        try:
            return open_warehouse(self.home, self.engine)
        except BaseException:
            self._done()
            raise

    def release(self, engine: Engine) -> None:
        """Close a request's connection; the anchor stays for :attr:`keep_open_s` seconds more."""
        try:
            engine.close()
        finally:
            self._done()

    def close(self) -> None:
        """Close the anchor now (the app's shutdown); later requests open it again."""
        with self._lock:
            self._drop_anchor()

    # -- internals ------------------------------------------------------------------------------------
    def _done(self) -> None:
        with self._lock:
            self._in_use -= 1
            self._last_release = time.monotonic()

    def _refresh_anchor(self) -> None:
        """Under the lock: drop an anchor on a replaced file, open one when there is none."""
        identity = file_identity(self.home.warehouse)
        if self._anchor is not None and identity != self._identity:
            self._drop_anchor()  # the file was replaced: the next connections must read the new one
        if self._anchor is None:
            self._anchor = open_warehouse(self.home, self.engine)
            self._identity = file_identity(self.home.warehouse)
            if self._identity is not None:
                # Another open of the file in this process with another configuration (a read-only reader)
                # may ask the idle anchor to go rather than fail (DuckDB refuses mixed configurations).
                self._withdraw = hold_open(self.home.warehouse, self._let_go_if_idle)
            self._stop_reaper = stop = threading.Event()
            threading.Thread(target=self._reap, args=(stop,), name="massalia-warehouse-keeper", daemon=True).start()

    def _let_go_if_idle(self) -> bool:
        """Close the anchor when no request is using the warehouse; whether it was closed."""
        with self._lock:
            if self._anchor is None or self._in_use:
                return False
            self._drop_anchor()
            return True

    def _drop_anchor(self) -> None:
        if self._withdraw is not None:
            self._withdraw()
            self._withdraw = None
        anchor, self._anchor, self._identity = self._anchor, None, None
        if self._stop_reaper is not None:
            self._stop_reaper.set()
            self._stop_reaper = None
        if anchor is not None:
            anchor.close()

    def _reap(self, stop: threading.Event) -> None:
        """Close this anchor once the warehouse has been idle long enough; end when it is closed otherwise."""
        while not stop.wait(self.keep_open_s / 2):
            with self._lock:
                if stop.is_set():
                    return
                if self._in_use == 0 and time.monotonic() - self._last_release >= self.keep_open_s:
                    self._drop_anchor()
                    return
