"""The variable tables of ``docs/marts.md``, generated from the catalogue.

Run ``python -m massalia.health.marts.docs docs/marts.md`` after changing ``catalogue.yaml``: the text
between the two markers is replaced, the prose around it is kept. A test checks that they agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from massalia.health.marts.catalogue import Catalogue, load_catalogue

BEGIN = "<!-- BEGIN GENERATED: mart variables (python -m massalia.health.marts.docs docs/marts.md) -->"
END = "<!-- END GENERATED: mart variables -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_variables(catalogue: Catalogue) -> str:
    """Markdown tables of the variables, one per group, and of the sources.

    Examples
    --------
    >>> "| `sex` |" in render_variables(load_catalogue())
    True
    """
    lines = [f"{len(catalogue.variables)} variables in {len(catalogue.by_group())} groups.", ""]
    for group, variables in catalogue.by_group().items():
        lines += [
            f"### {group.value.replace('_', ' ').capitalize()}",
            "",
            "| variable | label (en / fr) | type | unit | definition | missing | disclosure |",
            "|---|---|---|---|---|---|---|",
        ]
        for variable in variables:
            kind = variable.type.value
            if variable.values:
                kind += ": " + ", ".join(f"`{value}`" for value in variable.values)
            definition = variable.definition
            if variable.concepts:
                definition += f" Concepts: {', '.join(str(c) for c in variable.concepts)}."
            if variable.provenance.value == "text":
                definition += " Provenance: text (NLP findings)."
            definition += f" Source `{variable.source}`"
            definition += f", `{variable.expression}`." if variable.expression else "."
            missing = variable.missing.meaning
            if variable.missing.default is not None:
                missing += f" (null → `{str(variable.missing.default).lower()}`)"
            lines.append(
                f"| `{variable.name}` | {_cell(variable.label_en)} / {_cell(variable.label_fr)} | {_cell(kind)} "
                f"| {variable.unit or ''} | {_cell(definition)} | {_cell(missing)} | {variable.disclosure.value} |"
            )
        lines.append("")
    lines += ["### Sources", "", "| source | what it reads |", "|---|---|"]
    for source in catalogue.sources:
        lines.append(f"| `{source.name}` | {_cell(source.description)} |")
    return "\n".join(lines) + "\n"


def update_document(text: str, catalogue: Catalogue) -> str:
    """``text`` with the part between the markers replaced by the generated tables."""
    if BEGIN not in text or END not in text:
        raise ValueError("the document lacks the generated-section markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render_variables(catalogue)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated section of the Markdown file given as argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m massalia.health.marts.docs docs/marts.md", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.write_text(update_document(path.read_text(encoding="utf-8"), load_catalogue()), encoding="utf-8")
    print(f"{path}: variable tables regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
