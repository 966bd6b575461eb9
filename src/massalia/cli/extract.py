"""``massalia extract …``: a project's pseudonymized, k-anonymous extract (``research.create_extract``).

The same guarded service as ``POST /api/v1/projects/{id}/extracts``, so the same rights (``extract.create``:
a member of an approved pseudonymized project), audit entry and files: they are written under
``MASSALIA_HOME/extracts/project-<id>/<extract id>/``, where the API lists and serves them too.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from massalia.cli.common import (
    EngineOption,
    HomeOption,
    console,
    existing_home,
    fail,
    governed,
    initialized_warehouse,
    literal,
)
from massalia.health import research
from massalia.health.extracts import ExtractNotReadyError, ExtractRefused

extract_app = typer.Typer(
    help="Pseudonymized, k-anonymous extracts of a project's cohort and variables (approved projects only)."
)

GENERALIZE_HINT = (
    "to let dates, durations and rare values coarsen until k holds, run again with --on-low-k generalize "
    "(see docs/extracts.md)"
)


def extract_folder(root: Path, project_id: int) -> Path:
    """A new, unique folder for one extract of ``project_id`` (the layout the API lists and serves).

    Examples
    --------
    >>> extract_folder(Path("h"), 3).parent
    PosixPath('h/extracts/project-3')
    """
    return root / "extracts" / f"project-{int(project_id)}" / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


@extract_app.command("create")
def extract_create(
    project: Annotated[int, typer.Option("--project", min=1, help="The approved pseudonymized project.")],
    cohort: Annotated[
        int | None,
        typer.Option(
            "--cohort",
            min=1,
            max=2**31 - 1,
            help="Generated cohort (cohort_definition_id) of the project's definition.",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="File format: parquet or csv.")] = "parquet",
    k_min: Annotated[int, typer.Option("--k-min", min=2, max=1000, help="Smallest group size on every column.")] = 5,
    on_low_k: Annotated[
        str, typer.Option("--on-low-k", help="When k cannot be met: refuse (default) or generalize.")
    ] = "refuse",
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Build a pseudonymized extract of a project's cohort (members of an approved pseudonymized project; audited)."""
    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter(f"--format must be parquet or csv, not {fmt!r}")
    if on_low_k not in ("refuse", "generalize"):
        raise typer.BadParameter(f"--on-low-k must be refuse or generalize, not {on_low_k!r}")
    file_format: Literal["parquet", "csv"] = "csv" if fmt == "csv" else "parquet"
    policy: Literal["refuse", "generalize"] = "generalize" if on_low_k == "generalize" else "refuse"
    data = existing_home(home_dir)
    out_dir = extract_folder(data.root, project)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        try:
            result = research.create_extract(
                caller, warehouse, project, out_dir=out_dir, fmt=file_format,
                cohort_definition_id=cohort, k_min=k_min, on_low_k=policy,
            )  # fmt: skip
        except ExtractNotReadyError as error:
            fail(f"the extract cannot be built yet: {error}")
        except ExtractRefused as error:
            hint = f"; {GENERALIZE_HINT}" if policy == "refuse" else ""
            fail(f"{error}{hint}")
    console.print(
        literal(f"extract {out_dir.name} of project {project}: {result.rows:,} rows, k = {result.k} (k_min {k_min})"),
        highlight=False,
    )
    console.print(literal(f"  {result.path}"), highlight=False)
    console.print(literal(f"  {result.manifest_path}"), highlight=False)
