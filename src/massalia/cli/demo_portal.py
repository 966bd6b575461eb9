"""The end of ``massalia demo``: the research mart built, demo accounts made, and the portal served.

The accounts are a researcher, a DPO and a clinician of one site, with random passwords written to
``MASSALIA_HOME/demo-accounts.txt`` (mode 0600) and printed; a second demo on the same home keeps them
(their passwords are read back from that file). Everything goes through the guarded services, as the
caller of the demo (the local operator, or the ``MASSALIA_TOKEN`` holder).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from massalia.cli.common import console, literal
from massalia.config import Home
from massalia.engine import Engine
from massalia.governance import Caller, Governance, InvalidRequest, Principal, ProjectScope
from massalia.health import research
from massalia.health.documents.search import index_notes

ACCOUNTS_FILE = "demo-accounts.txt"


@dataclass(frozen=True)
class DemoAccount:
    """One demo sign-in: username, role, care site (clinicians), and its password (``None``: unknown)."""

    username: str
    role: str
    site: str | None
    password: str | None = None


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("researcher.demo", "researcher", None),
    DemoAccount("dpo.demo", "dpo", None),
    DemoAccount("clinician.demo", "clinician", "chu_nord"),
)
"""The demo's accounts: a researcher, a DPO, and a clinician of the CHU Nord site."""


def _known_passwords(path: Path) -> dict[str, str]:
    """Passwords of a previous demo on this home (``username role password`` lines), to keep its accounts."""
    if not path.is_file():
        return {}
    known: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            known[parts[0]] = parts[2]
    return known


def demo_accounts(gov: Governance, principal: Principal, root: Path) -> list[DemoAccount]:
    """Create the demo accounts with random passwords (kept when they exist) and write them, mode 0600.

    Examples
    --------
    >>> from massalia.config import Home  # doctest: +SKIP
    >>> [a.username for a in demo_accounts(gov, operator, Path("h"))]  # doctest: +SKIP
    ['researcher.demo', 'dpo.demo', 'clinician.demo']
    """
    path = root / ACCOUNTS_FILE
    known = _known_passwords(path)
    made: list[DemoAccount] = []
    for account in DEMO_ACCOUNTS:
        password: str | None = secrets.token_urlsafe(15)
        try:
            gov.create_user(account.username, password, roles=[account.role], site=account.site, actor=principal)
        except InvalidRequest as error:
            if "already taken" not in str(error):
                raise
            password = known.get(account.username)  # None: made before, its password not on file any more
        made.append(DemoAccount(account.username, account.role, account.site, password))
    lines = ["# Massalia demo accounts (local sign-in on the portal). Private: delete when done."]
    lines += [f"{a.username} {a.role} {a.password}" for a in made if a.password]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # the file may predate this demo with wider bits
    return made


DEMO_PROJECT = "Démo : faisabilité en oncologie"


def demo_project(gov: Governance, accounts: list[DemoAccount]) -> int | None:
    """An approved aggregate project of the demo researcher (exact counts in the portal), filed and approved.

    The researcher creates it and files the request, the demo DPO approves it (separation of duties), as
    they would through the API. Kept when it exists; ``None`` when a password is not known any more.
    """
    known = {account.role: account for account in accounts}
    researcher, dpo = known["researcher"], known["dpo"]
    if researcher.password is None or dpo.password is None:
        return None
    owner = gov.authenticate_password(researcher.username, researcher.password)
    for project in gov.list_projects(actor=owner):
        if project.title == DEMO_PROJECT and project.owner == owner.subject:
            return project.id
    project = gov.create_project(
        DEMO_PROJECT, "Estimer le nombre de patients éligibles avant de déposer un protocole (démonstration).",
        scope=ProjectScope(), access_level="aggregate", expires=dt.date.today() + dt.timedelta(days=365), actor=owner,
    )  # fmt: skip
    justification = "Démonstration du portail (données synthétiques)."
    request = gov.file_request(project.id, actor=owner, justification=justification)
    decider = gov.authenticate_password(dpo.username, dpo.password)
    gov.decide_request(request.id, True, "Données synthétiques de démonstration.", actor=decider)
    return project.id


def prepare_portal(caller: Caller, warehouse: Engine, root: Path) -> list[DemoAccount]:
    """Build the research mart and the notes index, make the demo accounts and their project.

    The mart makes feasibility counts work at once; the notes index, the document search page.
    """
    research.mart_build(caller, warehouse)
    if warehouse.table_exists("note"):
        index_notes(caller, warehouse, Home(root).indexes)
    accounts = demo_accounts(caller.governance, caller.principal, root)
    demo_project(caller.governance, accounts)
    return accounts


def print_sign_in(accounts: list[DemoAccount], root: Path, address: str) -> None:
    """Print the portal's address and the demo sign-ins."""
    line = f"the portal:  {address}  (sign in with one of these; also in {root / ACCOUNTS_FILE})"
    console.print(literal(line), highlight=False, soft_wrap=True)
    for account in accounts:
        site = f" of {account.site}" if account.site else ""
        password = account.password or "(made by an earlier demo; its password is not on file)"
        console.print(literal(f"  {account.role + site:<22} {account.username:<16} {password}"), highlight=False,
                      soft_wrap=True)  # fmt: skip


def should_serve(serve: bool) -> bool:
    """Serve unless asked not to, or under CI (``CI=true``): a demo in CI never blocks."""
    return serve and os.environ.get("CI", "").strip().lower() not in ("true", "1", "yes")
