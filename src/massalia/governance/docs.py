"""The rights table of ``docs/governance.md``, generated from the merged rights (a test keeps the two in sync).

The table is the one the governance layer enforces: the core's ``rights.yaml`` merged with every domain's
file (health's ``massalia/health/rights.yaml``); its first column says where each action is defined.

Run ``python -m massalia.governance.docs`` to print the table, or ``--write docs/governance.md`` to
replace the block between the ``rights-table`` markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from massalia.governance.rights import Rights, Rule, load_rights

START = "<!-- rights-table:start (generated from rights.yaml: python -m massalia.governance.docs --write) -->"
END = "<!-- rights-table:end -->"
CONDITION_WORDS = {
    "member_of_project": "member of the project",
    "approved_project": "it is approved and unexpired",
    "own_site": "data of their own site",
}


def _rule_text(rule: Rule) -> str:
    roles = ", ".join(f"`{role.value}`" for role in sorted(rule.roles))
    order = ("member_of_project", "approved_project", "project_access_level", "own_site")
    when = sorted(rule.when, key=lambda item: order.index(item[0]))
    conditions = [
        f"a {value} project" if name == "project_access_level" else CONDITION_WORDS[name] for name, value in when
    ]
    text = roles + (f" if {', '.join(conditions)}" if conditions else "")
    grant = ", ".join(sorted(rule.grant))
    return f"{text} → {grant or 'allowed'}"


def rights_markdown(rights: Rights | None = None) -> str:
    """The merged rights table as Markdown: one row per action, its rules in order (first match wins).

    Examples
    --------
    >>> "| `health.cohort.count` |" in rights_markdown()
    True
    """
    rights = rights or load_rights()
    lines = [
        "| defined by | action | audited | rules, tried in order (first match wins) | what it is |",
        "|---|---|---|---|---|",
    ]
    # The core's actions first, then each domain's: a domain's action is <domain>.<area>.<verb>.
    for name in sorted(rights.actions, key=lambda action: (action.count("."), action)):
        action = rights.actions[name]
        owner = "core" if name.count(".") == 1 else name.split(".", 1)[0]
        rules = "<br>".join(f"{i + 1}. {_rule_text(rule)}" for i, rule in enumerate(action.rules))
        lines.append(f"| {owner} | `{name}` | {'yes' if action.audit else 'no'} | {rules} | {action.description} |")
    return "\n".join(lines)


def replace_block(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    if START not in text or END not in text:
        raise ValueError("the rights-table markers are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into the Markdown file given after ``--write``."""
    args = sys.argv[1:] if argv is None else argv
    table = rights_markdown()
    if args[:1] == ["--write"] and len(args) == 2:
        path = Path(args[1])
        path.write_text(replace_block(path.read_text(encoding="utf-8"), table), encoding="utf-8")
        return 0
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
