"""Oncology data-quality rules: TNM consistency, treatment timing, biomarker answers, episodes.

The rules are data (``oncology_rules.yaml``): each is one house-dialect query returning
``num_violated_rows`` and ``num_denominator_rows``, with its Kahn category, severity and threshold.
They register in the same :class:`~massalia.quality.registry.CheckRegistry` as DQD's checks
and are evaluated, reported and made 'not applicable' the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from massalia.engine.base import HOUSE_DIALECT
from massalia.quality.checks import QueryCheck, ident
from massalia.quality.definitions import CheckDescription, CheckInstance
from massalia.quality.registry import CheckRegistry

ONCOLOGY_LEVEL = "ONCOLOGY"
_REQUIRED_KEYS = {"name", "description", "category", "severity", "threshold", "sql"}


@dataclass(frozen=True)
class OncologyRule(QueryCheck):
    """One oncology rule: its query and the tables and fields it reads."""

    rule_name: str
    sql: str
    tables: tuple[tuple[str, tuple[str, ...]], ...]

    level = ONCOLOGY_LEVEL

    @property
    def name(self) -> str:  # type: ignore[override]  # QueryCheck's name is a ClassVar; a YAML rule's is its own
        """The rule's name (what ``run_quality(checks=...)`` selects)."""
        return self.rule_name

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Every table the query reads, with the fields the rule declares."""
        return dict(self.tables)

    def batch_key(self, instance: CheckInstance) -> tuple[str, ...]:
        """Each rule is its own query."""
        return (self.rule_name,)

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """The rule's SQL, shaped like the other query checks."""
        return f"SELECT 0 AS k, num_violated_rows, num_denominator_rows FROM (\n{self.sql.strip()}\n) AS rule"


def _tables_read(sql: str) -> set[str]:
    """Base tables a query reads (CTE names excluded)."""
    tree = sqlglot.parse_one(sql, read=HOUSE_DIALECT)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


def parse_rule(entry: dict[str, Any]) -> tuple[OncologyRule, CheckDescription, CheckInstance]:
    """Validate one YAML entry; return its check type, description and single instance."""
    missing = _REQUIRED_KEYS - set(entry)
    if missing:
        raise ValueError(f"oncology rule {entry.get('name', '?')!r} lacks {sorted(missing)}")
    declared = {ident(t): tuple(ident(f) for f in fields or ()) for t, fields in (entry.get("requires") or {}).items()}
    for table in sorted(_tables_read(entry["sql"])):
        declared.setdefault(ident(table), ())
    rule = OncologyRule(entry["name"], entry["sql"], tuple(sorted(declared.items())))
    description = CheckDescription(
        name=entry["name"],
        level=ONCOLOGY_LEVEL,
        description=" ".join(entry["description"].split()),
        kahn_context="Validation",
        kahn_category=entry["category"],
        kahn_subcategory=entry.get("subcategory"),
        evaluation_filter="",
        severity=entry["severity"],
    )
    main_table = next(iter(entry.get("requires") or {"person": []}))
    instance = CheckInstance(check=description, table=ident(main_table), threshold=float(entry["threshold"]))
    return rule, description, instance


@cache
def oncology_rules() -> tuple[tuple[OncologyRule, CheckDescription, CheckInstance], ...]:
    """The shipped oncology rules."""
    text = resources.files("massalia.health.quality").joinpath("oncology_rules.yaml").read_text(encoding="utf-8")
    return tuple(parse_rule(entry) for entry in yaml.safe_load(text))


def register_oncology_rules(registry: CheckRegistry) -> None:
    """Add the oncology rules to ``registry``.

    Examples
    --------
    >>> registry = CheckRegistry()
    >>> register_oncology_rules(registry)
    >>> "tnmM1StageIV" in registry.names()
    True
    """
    for rule, description, instance in oncology_rules():
        registry.register(rule, description, [instance])
