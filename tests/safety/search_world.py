"""Helpers of the search, views and release tests (found through pytest's ``pythonpath``): users and the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from massalia.governance import Caller, Governance, Principal, Role, operator_principal
from massalia.ledger import TransparencyLog

USERS = {
    "operator": Role.SAFETY_OPERATOR,
    "operator2": Role.SAFETY_OPERATOR,
    "analyst": Role.SAFETY_ANALYST,
    "analyst2": Role.SAFETY_ANALYST,
    "manager": Role.SAFETY_MANAGER,
    "partner": Role.PARTNER,
    "researcher": Role.RESEARCHER,
    "clinician": Role.CLINICIAN,
    "admin": Role.ADMIN,
}


@dataclass
class City:
    """A governance service with one user per role (two operators, two analysts), and its ledger."""

    gov: Governance
    principals: dict[str, Principal]

    def caller(self, name: str) -> Caller:
        return Caller(self.principals[name], self.gov, "api")

    def size(self) -> int:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return log.size

    def entries(self, since: int) -> list[str]:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return [json.dumps(log.get(i).entry, default=str, ensure_ascii=False) for i in range(since, log.size)]


def make_city(root: Path) -> City:
    gov = Governance(f"sqlite:///{(root / 'meta.sqlite').as_posix()}", root / "ledger", key_path=root / "master.key")
    principals = {}
    for name, role in USERS.items():
        site = "chu_nord" if role is Role.CLINICIAN else None
        principals[name] = gov.create_user(f"{name}.search", None, [role], site, actor=operator_principal())
    return City(gov, principals)
