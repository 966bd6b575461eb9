"""The example domain's entry module: ``DOMAIN`` contributes a router, a CLI group and a rights file.

Loaded by ``load_domains(["example_domain.plugin"])``, ``create_app(..., domains=[...])`` or the
``MASSALIA_DOMAINS`` setting; a third party's package would declare it in the ``massalia.domains``
entry-point group instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fastapi import APIRouter

from example_domain.services import read_things
from massalia.api.deps import Caller, Context, action
from massalia.cli.common import governed
from massalia.config import home
from massalia.plugins import Contributions

router = APIRouter(prefix="/example", tags=["example"])


@router.get("/things", **action("example.thing.read"))
def things(context: Context, caller: Caller) -> dict[str, list[str]]:
    """The example domain's things."""
    return {"things": read_things(caller)}


cli = typer.Typer(help="The example domain: its things.")


@cli.command("things")
def things_command(
    home_dir: Annotated[Path | None, typer.Option("--home", envvar="MASSALIA_HOME")] = None,
) -> None:
    """Print the example domain's things, one a line."""
    with governed(home(home_dir).ensure()) as caller:
        found = read_things(caller)
    typer.echo("\n".join(found))


class ExampleDomain:
    """A domain with one action (``example.thing.read``), one route and one command group."""

    def __init__(self, name: str = "example", group: str = "example", rights: Path | None = None) -> None:
        self.name = name
        self.group = group
        self.rights = rights or Path(__file__).with_name("rights.yaml")

    def contribute(self, contributions: Contributions) -> None:
        """Register the router, the CLI group and the rights file."""
        contributions.add_router(router)
        contributions.add_cli_group(self.group, cli)
        contributions.add_rights(self.rights)


DOMAIN = ExampleDomain()
