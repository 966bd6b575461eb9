"""The registry of check types: each domain registers its own (health: DQD's and the oncology rules).

Examples
--------
>>> from massalia.quality.checks import MetadataCheck
>>> from massalia.quality.definitions import CheckDescription, CheckInstance
>>> class TableExists(MetadataCheck):
...     name = "tableExists"
...     level = "TABLE"
...     def violated(self, instance, catalogue):
...         return instance.table not in catalogue
>>> described = CheckDescription("tableExists", "TABLE", "@cdmTableName exists", "Verification",
...     "Conformance", None, "", "fatal")
>>> registry = CheckRegistry()
>>> registry.register(TableExists(), described, [CheckInstance(described, "person")])
>>> registry.names()
['tableExists']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from massalia.quality.checks import CheckType
from massalia.quality.definitions import CheckDescription, CheckInstance


@dataclass(frozen=True)
class RegisteredCheck:
    """A check type with the description its results carry and its instances."""

    check_type: CheckType
    description: CheckDescription
    instances: tuple[CheckInstance, ...]


class CheckRegistry:
    """Check types by ``(level, name)``, in registration order.

    Built-in checks register the same way an extension would; nothing is registered as an import side
    effect and no check is looked up by a built string.
    """

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], RegisteredCheck] = {}

    def register(
        self,
        check_type: CheckType,
        description: CheckDescription,
        instances: Iterable[CheckInstance],
    ) -> None:
        """Add a check type with the description its results carry and the instances it runs on.

        A domain gives both (health: DQD's description and definition rows, see
        :func:`massalia.health.quality.registry.register_dqd_check`); a key taken twice is refused.
        """
        if check_type.key in self._checks:
            raise ValueError(f"check type {check_type.key} is already registered")
        self._checks[check_type.key] = RegisteredCheck(check_type, description, tuple(instances))

    def names(self) -> list[str]:
        """Distinct check names."""
        return list(dict.fromkeys(key[1] for key in self._checks))

    def checks(self, names: Sequence[str] | None = None) -> list[RegisteredCheck]:
        """Registered checks, restricted to ``names`` when given (unknown names are an error)."""
        if names is None:
            return list(self._checks.values())
        unknown = sorted(set(names) - set(self.names()))
        if unknown:
            raise KeyError(f"unknown quality checks {unknown}; known: {', '.join(self.names())}")
        return [check for key, check in self._checks.items() if key[1] in names]
