"""The command line's share of the domain plug-ins: mount every contributed command group on the root app.

Kept apart from :mod:`massalia.cli.main` so that the root app only creates itself and asks for the domains'
groups (``mount_domain_groups(app, load_domains(...))``); registration happens when the CLI is created,
never when a domain's module is imported.
"""

from __future__ import annotations

import typer

from massalia.plugins import Contributions, RegistryError


def _taken_names(app: typer.Typer) -> dict[str, str]:
    """Names already used on ``app``: its command groups and its commands, each with what it is."""
    taken: dict[str, str] = {}
    for group in app.registered_groups:
        if group.name:
            taken[group.name] = "a command group"
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else None)
        if name:
            taken[name] = "a command"
    return taken


def mount_domain_groups(app: typer.Typer, contributions: Contributions) -> list[str]:
    """Mount each domain's command group as ``massalia <name>``; return the names mounted, in order.

    A group whose name is already a command or a group of ``app`` is refused (the core's commands are not
    overridden by a domain), with the clash named.

    Examples
    --------
    >>> from massalia.plugins import load_domains
    >>> root = typer.Typer()
    >>> mount_domain_groups(root, load_domains(builtins=("massalia.health.plugin",)))
    ['omop', 'etl', 'cohort', 'mart', 'extract', 'patient']
    """
    taken = _taken_names(app)
    mounted: list[str] = []
    for name, contributed in contributions.cli_groups.items():
        if name in taken:
            raise RegistryError(
                f"domain {contributed.domain!r} contributes the CLI group {name!r}, already {taken[name]} of "
                f"'massalia' (taken: {', '.join(sorted(taken))})"
            )
        app.add_typer(contributed.item, name=name)
        taken[name] = "a command group"
        mounted.append(name)
    return mounted
