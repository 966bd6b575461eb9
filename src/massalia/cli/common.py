"""What every ``massalia`` command shares, defined once: options, consoles, the caller, exits, safe output.

Who is acting (:func:`calling_principal`): the holder of the API token in ``MASSALIA_TOKEN`` if it is set (an invalid
one stops the command: never a fallback), otherwise the local operator of the home (whoever can read the
``MASSALIA_HOME`` files), named by the process's OS account and acting with the roles ``admin`` +
``data_engineer``; every decision on an operator's action is audited by the guarded services. :func:`governed`
makes it the command's one :class:`~massalia.governance.Caller` (channel ``"cli"``), handed to those services.

Exit statuses (:data:`EXIT_INVALID`, :data:`EXIT_DENIED`, :data:`EXIT_UNAUTHENTICATED`): 1 bad input or not
found, 2 a usage error (click's own), 3 access denied, 4 authentication failed.

Text that users or source files wrote (titles, purposes, reasons, names, records) is printed through
:func:`literal`: never read as Rich markup, control characters shown as escapes, so a title cannot
restyle the terminal or forge lines of output.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from massalia.config import Home, home
from massalia.engine import Engine
from massalia.governance import (
    AccessDenied,
    AuthenticationError,
    Caller,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    operator_principal,
)
from massalia.warehouse import open_warehouse

TOKEN_ENV = "MASSALIA_TOKEN"  # noqa: S105 (the name of the variable, not a token)
EXIT_INVALID = 1
"""Bad input, or a thing asked for does not exist (the ``error:`` line says which)."""
EXIT_DENIED = 3
"""The caller lacks the right (the ``denied:`` line names the action and the reason)."""
EXIT_UNAUTHENTICATED = 4
"""``MASSALIA_TOKEN`` is set but is not a valid token."""

UNINITIALIZED_HINT = (
    "it was never initialized (check --home / MASSALIA_HOME; create one with 'massalia init' then "
    "'massalia load', or 'massalia demo')"
)
CDM_MARKER_TABLE = "person"
"""A table every initialized OMOP warehouse has (``massalia init`` creates the CDM tables)."""

# Lines are never hard-wrapped at the terminal's width (soft wrap): a summary, a path or a command stays on one
# line to copy, and what a script or a test reads does not depend on the width a terminal had (tables still fit).
console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="MASSALIA_HOME", help="Data folder (warehouse, metadata, indexes, reports)."),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", envvar="MASSALIA_ENGINE", help="Warehouse engine: duckdb (default), postgres, spark."),
]
ProjectOption = Annotated[
    int | None,
    typer.Option(
        "--project", min=1, help="Act under this approved project (raw counts, records as its access level allows)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of tables.")]


def literal(value: object) -> Text:
    r"""``value`` as plain terminal text: no Rich markup, every control character shown as an escape.

    Examples
    --------
    >>> literal("[bold]x[/] \x1b[31m").plain
    '[bold]x[/] \\x1b[31m'
    """
    text = str(value)
    shown = "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii") for char in text
    )
    return Text(shown)


def record_text(record: Mapping[str, object]) -> str:
    """A record as readable text, ``name value`` pairs with dates in ISO form and empty fields left out.

    Examples
    --------
    >>> import datetime as dt
    >>> record_text({"condition_start_date": dt.date(2019, 3, 2), "concept_id": 4112853, "stop_reason": None})
    'condition_start_date 2019-03-02, concept_id 4112853'
    """
    shown = []
    for name, value in record.items():
        if value is None:
            continue
        text = value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)
        shown.append(f"{name} {text}")
    return ", ".join(shown) or "(no field)"


def fail(message: str, *, code: int = EXIT_INVALID) -> NoReturn:
    """Print ``error: message`` (literally) on standard error and stop the command with ``code``.

    Examples
    --------
    >>> try:
    ...     fail("no such file")
    ... except typer.Exit as stop:
    ...     stop.exit_code
    1
    """
    # soft_wrap: a path or a command in the message stays on one line, copyable, at any terminal width
    error_console.print("[red]error[/]: ", literal(message), sep="", soft_wrap=True)
    raise typer.Exit(code=code)


def progress_bar() -> Progress:
    """The progress display of the long commands (generate, load, quality, demo), on the shared console."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def token_from_env() -> str | None:
    """The token in ``MASSALIA_TOKEN``: ``None`` when the variable is unset or empty, else its stripped value.

    A value of only spaces is returned as ``""`` (then refused as malformed), never taken for "no token".
    """
    raw = os.environ.get(TOKEN_ENV)
    if raw is None or raw == "":
        return None
    return raw.strip()


CLI_CHANNEL = "cli"
"""The channel the command line's calls are recorded under in the audit trail."""


def calling_principal(gov: Governance) -> Principal:
    """Who runs this command: the ``MASSALIA_TOKEN`` holder, else the home's local operator.

    Raises
    ------
    AuthenticationError
        If ``MASSALIA_TOKEN`` is set but not a valid, unexpired, unrevoked token: an invalid token is an
        error, never a fall back to the operator.
    """
    token = token_from_env()
    if token is not None:
        return gov.authenticate_token(token)
    return operator_principal()


@contextmanager
def governed(data: Home) -> Iterator[Caller]:
    """Open the home's governance service, resolve the caller (channel ``"cli"``), and turn refusals into clear exits.

    The one place a command gets its :class:`~massalia.governance.Caller`, which it hands to the guarded services.

    Exit status: 1 bad input or not found, 3 access denied, 4 authentication failed.
    """
    try:
        with Governance.from_home(data) as gov:
            yield Caller(calling_principal(gov), gov, CLI_CHANNEL)
    except AccessDenied as denied:
        error_console.print("[red]denied[/]: ", literal(f"{denied.action}: {denied.reason}"), sep="")
        raise typer.Exit(code=EXIT_DENIED) from None
    except AuthenticationError as error:
        error_console.print(f"[red]authentication failed[/] ({TOKEN_ENV}): ", literal(error), sep="")
        raise typer.Exit(code=EXIT_UNAUTHENTICATED) from None
    except (InvalidRequest, NotFound) as error:
        fail(str(error))


def existing_home(home_dir: Path | None) -> Home:
    """The home at ``home_dir`` for a command that reads data: a folder that does not exist is refused.

    A mistyped ``--home`` or ``MASSALIA_HOME`` would otherwise be created empty, then fail on the first query.
    """
    data = home(home_dir)
    if not data.root.is_dir():
        fail(f"no Massalia home at {data.root} (it is not an initialized Massalia home): {UNINITIALIZED_HINT}")
    if not data.initialized:  # a folder, but never made a home by init, load or demo (its marker file)
        fail(f"{data.root} is not an initialized Massalia home: {UNINITIALIZED_HINT}")
    return data.ensure()


@contextmanager
def initialized_warehouse(data: Home, engine: str | None) -> Iterator[Engine]:
    """Open the home's warehouse for a command that reads it; a warehouse without the OMOP tables is refused."""
    with open_warehouse(data, engine) as warehouse:
        # Whether the CDM tables exist says nothing about anybody: a precondition, checked before any service.
        if not warehouse.table_exists(CDM_MARKER_TABLE):
            fail(f"the warehouse of {data.root} ({warehouse.name}) has no OMOP tables: {UNINITIALIZED_HINT}")
        yield warehouse


def run_governed(home_dir: Path | None, action: Callable[[Caller], T]) -> T:
    """Run ``action(caller)`` under :func:`governed` for the home at ``home_dir``."""
    with governed(home(home_dir).ensure()) as caller:
        return action(caller)
