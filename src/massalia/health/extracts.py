"""Pseudonymized, date-shifted, k-anonymous person-level extracts of the research mart.

``build_extract`` reads one row per person from a warehouse table (``mart_patient`` by default), keeps
the requested variables, and releases them under an ``ExtractPolicy``:

1. **direct identifiers removed** — every column whose disclosure role is ``identifier``, every column
   the policy lists in ``drop``, and whatever is named like a direct identifier (``person_source_value``,
   names, IPP/NIP/NIR, addresses, e-mail, phone, free text), whatever its role says, and every
   warehouse key (``*_id`` other than a vocabulary ``*_concept_id``);
2. **person id replaced** by the project's keyed pseudonym (``person_pseudonym``);
3. **dates shifted** — every date and timestamp column moves by the person's keyed shift; date parts
   (``year_of_birth``, ``year_of_diagnosis``...) are derived from the shifted date, or dropped when
   that date is not in the source (a real year beside shifted dates would give the shift away);
4. **k-anonymity enforced over every released column**: an attacker can derive quasi-identifiers
   from any of them (date differences, exact age in days, survival, a rare value), and anything derived
   from a row's released values is constant within its equivalence class, so k over all of them is the
   true k. Below ``k_min`` the extract is refused, or generalized (30-day bands of durations, months,
   years, rare → ``other``) and, within a small budget, the residual records suppressed;
5. **written atomically** (temporary file + rename) as Parquet or CSV, rows in pseudonym order (the
   source order could betray ids), with a JSON manifest: project, time, row count, each column and its
   treatment, the k reached, the generalizations, and the SHA-256 of the data file.

Column roles come from the mart catalogue (``massalia.health.marts``: each variable's ``disclosure``)
or from an explicit ``column_roles`` mapping. A column with no role is refused: nothing leaves unclassified.
Authorization and audit are the caller's (``massalia.health.research.create_extract``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlglot import exp

from massalia.engine import Engine
from massalia.engine.base import check_identifier
from massalia.governance.kanon import (
    GeneralizationPolicy,
    Hierarchy,
    KAnonymityError,
    KReport,
    NumberBands,
    default_hierarchy,
    generalize_to_k,
    k_anonymity,
)
from massalia.governance.model import InvalidRequest
from massalia.governance.pseudonym import (
    MAX_SHIFT_DAYS,
    SCHEME,
    check_key,
    check_project,
    date_shifts,
    is_temporal,
    pseudonymize,
    shift_dates,
)
from massalia.health.marts.catalogue import load_catalogue

Role = Literal["identifier", "quasi_identifier", "sensitive", "date", "none"]
ROLES: tuple[str, ...] = ("identifier", "quasi_identifier", "sensitive", "date", "none")
Format = Literal["parquet", "csv"]

PERSON_COLUMN = "person_id"
"""The person id column every source table must have (replaced by the pseudonym)."""

PSEUDONYM_COLUMN = "person_pseudonym"
"""The column that carries the project's pseudonym in an extract."""

MANIFEST_FORMAT = "massalia-extract/1"

DIRECT_IDENTIFIERS = frozenset(
    {
        "person_source_value",
        "patient_source_value",
        "ipp",
        "nip",
        "nir",
        "nda",
        "ins",
        "ssn",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "birth_name",
        "nom",
        "prenom",
        "nom_naissance",
        "nom_usage",
        "address",
        "address_1",
        "address_2",
        "adresse",
        "street",
        "email",
        "phone",
        "telephone",
        "mobile",
        "note_text",
        "free_text",
        "texte",
    }
)
"""Column names removed from every extract whatever their role: direct identifiers and free text."""

_DIRECT_PATTERN = re.compile(
    r"(^|_)(ipp|nip|nir|prenom|first_name|last_name|email|phone|telephone|address|adresse)($|_)"
)


_DATE_PART = re.compile(r"^(year|month|day)_of_([a-z0-9_]+)$")
"""A date part named the OMOP way (``year_of_birth``, ``month_of_birth``, ``day_of_birth``, ``year_of_diagnosis``)."""


class ExtractError(InvalidRequest):
    """The extract cannot be built as asked (unknown table or variable, a column without a role...)."""


class ExtractNotReadyError(ExtractError):
    """What the extract reads does not exist yet: the mart is not built, or the cohort not generated."""


class ExtractRefused(ExtractError):  # noqa: N818 (a refusal, as the policy says, not a crash)
    """The selection is not k-anonymous enough and the policy refuses (or cannot reach ``k_min``)."""

    def __init__(self, message: str, report: KReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExtractPolicy:
    """How a project's extracts are protected.

    Attributes
    ----------
    project_id
        The project the extract is for (pseudonym prefix and key derivation).
    key
        The project's secret (``Governance.project_key(project_id)``); never written anywhere.
    date_shift_days
        Amplitude ``N`` of the per-person date shift (``[-N, -1] ∪ [1, N]`` days); ``None``: dates kept.
    k_min
        The smallest equivalence class allowed over the released columns (every one of them counts as a
        quasi-identifier: see ``build_extract``).
    on_low_k
        ``"refuse"`` (raise ``ExtractRefused``) or ``"generalize"`` (coarsen, then suppress within budget).
    drop
        Extra columns to remove as direct identifiers.
    hierarchies, max_levels, max_suppression
        The generalization policy (see ``massalia.governance.kanon.GeneralizationPolicy``); used only
        when ``on_low_k="generalize"``. ``max_suppression`` is the fraction of records that may be removed.
    shift_datetimes
        Shift timestamp columns as well as dates (default). When ``False`` timestamp columns are removed
        rather than released unshifted.
    """

    project_id: int | str
    key: bytes = field(repr=False)
    date_shift_days: int | None = None
    k_min: int = 5
    on_low_k: Literal["refuse", "generalize"] = "refuse"
    drop: Sequence[str] = ()
    hierarchies: Mapping[str, Hierarchy] = field(default_factory=dict)
    max_levels: Mapping[str, int] = field(default_factory=dict)
    max_suppression: float = 0.01
    shift_datetimes: bool = True

    def __post_init__(self) -> None:
        try:
            check_project(self.project_id)
            check_key(self.key)
        except (TypeError, ValueError) as error:
            raise ExtractError(f"extract policy: {error}") from None
        shift = self.date_shift_days
        if shift is not None and (
            isinstance(shift, bool) or not isinstance(shift, int) or not 1 <= shift <= MAX_SHIFT_DAYS
        ):
            raise ExtractError(f"extract policy: date_shift_days must be None or 1..{MAX_SHIFT_DAYS}, got {shift!r}")
        if isinstance(self.k_min, bool) or not isinstance(self.k_min, int) or self.k_min < 1:
            raise ExtractError(f"extract policy: k_min must be a positive integer, got {self.k_min!r}")
        if self.on_low_k not in ("refuse", "generalize"):
            raise ExtractError(f"extract policy: on_low_k must be 'refuse' or 'generalize', got {self.on_low_k!r}")
        if not 0.0 <= self.max_suppression <= 1.0:
            raise ExtractError(f"extract policy: max_suppression is a fraction 0..1, got {self.max_suppression!r}")
        object.__setattr__(self, "drop", tuple(self.drop))


@dataclass(frozen=True)
class ExtractResult:
    """What ``build_extract`` wrote.

    Attributes
    ----------
    path
        The data file (Parquet or CSV).
    manifest_path
        The JSON manifest beside it.
    manifest
        The manifest's content.
    rows
        Records written.
    k
        The k achieved over every released column (the row count when only the pseudonym is released).
    """

    path: Path
    manifest_path: Path
    manifest: dict[str, Any]
    rows: int
    k: int


def catalogue_roles() -> dict[str, str]:
    """The disclosure role of every variable of the research mart catalogue (``massalia.health.marts``)."""
    return {variable.name: variable.disclosure.value for variable in load_catalogue().variables}


def is_direct_identifier(name: str) -> bool:
    """Whether a column name says it holds a direct identifier or free text (always removed).

    Examples
    --------
    >>> is_direct_identifier("person_source_value"), is_direct_identifier("patient_ipp"), is_direct_identifier("age")
    (True, True, False)
    """
    lowered = name.lower()
    return lowered in DIRECT_IDENTIFIERS or bool(_DIRECT_PATTERN.search(lowered))


def is_warehouse_key(name: str) -> bool:
    """Whether a column is a warehouse key (``*_id`` but not a vocabulary ``*_concept_id``): never released.

    Examples
    --------
    >>> is_warehouse_key("care_site_id"), is_warehouse_key("primary_concept_id"), is_warehouse_key("stage_group")
    (True, False, False)
    """
    lowered = name.lower()
    return lowered.endswith("_id") and not lowered.endswith("_concept_id")


def _check_roles(roles: Mapping[str, str]) -> dict[str, str]:
    bad = {name: role for name, role in roles.items() if role not in ROLES}
    if bad:
        raise ExtractError(f"unknown disclosure role(s) {bad}: use one of {', '.join(ROLES)}")
    return dict(roles)


def _select(engine: Engine, source_table: str, columns: list[str], cohort: tuple[str, int] | None) -> pa.Table:
    query = exp.select(*(exp.column(name) for name in columns)).from_(exp.to_table(source_table))
    if cohort is not None:
        cohort_table, cohort_id = cohort
        members = (
            exp.select(exp.column("subject_id"))
            .from_(exp.to_table(cohort_table))
            .where(exp.column("cohort_definition_id").eq(exp.Literal.number(cohort_id)))
        )
        query = query.where(exp.column(PERSON_COLUMN).isin(query=members))
    return engine.query(query)


def _check_selection(
    engine: Engine,
    source_table: str,
    cohort: tuple[str, int] | None,
    person_ids: Sequence[int] | None,
) -> tuple[list[str], tuple[str, int] | None, pa.Array | None]:
    try:
        check_identifier(source_table)
    except ValueError as error:
        raise ExtractError(f"source_table: {error}") from None
    if not engine.table_exists(source_table):
        raise ExtractNotReadyError(
            f"source table {source_table!r} does not exist (build the mart first: massalia mart build)"
        )
    available = [column.name for column in engine.describe(source_table)]
    if PERSON_COLUMN not in available:
        raise ExtractError(f"source table {source_table!r} has no {PERSON_COLUMN} column: extracts are person-level")
    if cohort is not None:
        if not (isinstance(cohort, tuple | list) and len(cohort) == 2):
            raise ExtractError(f"cohort must be (cohort table, cohort_definition_id), got {cohort!r}")
        cohort_table, cohort_id = cohort
        try:
            check_identifier(cohort_table)
        except ValueError as error:
            raise ExtractError(f"cohort table: {error}") from None
        if isinstance(cohort_id, bool) or not isinstance(cohort_id, int):
            raise ExtractError(f"cohort_definition_id must be an integer, got {cohort_id!r}")
        if not engine.table_exists(cohort_table):
            raise ExtractNotReadyError(f"cohort table {cohort_table!r} does not exist (generate the cohort first)")
        cohort = (cohort_table, cohort_id)
    wanted = None
    if person_ids is not None:
        try:
            if isinstance(person_ids, str | bytes) or any(isinstance(i, bool) for i in person_ids):
                raise TypeError("not integers")
            numbers = [operator.index(i) for i in person_ids]
        except TypeError:
            raise ExtractError("person_ids must be a sequence of integer person ids") from None
        wanted = pa.array(numbers, pa.int64())
    return available, cohort, wanted


def _choose_columns(available: list[str], variables: Sequence[str] | None) -> list[str]:
    if variables is None:
        return list(available)
    if isinstance(variables, str):
        raise ExtractError("variables must be a sequence of column names, not one string")
    unknown = [name for name in variables if name not in available]
    if unknown:
        raise ExtractError(f"unknown variable(s) {unknown} in the source table (columns: {', '.join(available)})")
    return [PERSON_COLUMN, *(name for name in dict.fromkeys(variables) if name != PERSON_COLUMN)]


def _atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` through ``write(temporary_path)``, then rename it into place (same folder, same disk)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _date_part_source(name: str, available: Sequence[str]) -> tuple[str, str] | None:
    """For a date part such as ``year_of_birth``: ``(the date column it is a part of, the part)``, if any."""
    match = _DATE_PART.match(name.lower())
    if match is None:
        return None
    part, stem = match.groups()
    for candidate in (f"{stem}_date", f"{stem}_datetime", stem):
        if candidate in available:
            return candidate, part
    return "", part


@dataclass
class _Plan:
    """What happens to each requested column: released ones (``kept``), treatments, date parts to derive."""

    treatments: dict[str, dict[str, Any]]
    kept: list[str]
    parts: dict[str, tuple[str, str]]
    """``date part column → (source date column, "year" | "month" | "day")``, derived after the shift."""

    def read(self) -> list[str]:
        """The source columns to read: the released ones and the dates their parts are derived from."""
        sources = [source for source, _ in self.parts.values()]
        return list(dict.fromkeys([PERSON_COLUMN, *(n for n in self.kept if n not in self.parts), *sources]))


def _plan(
    columns: list[str], available: list[str], roles: Mapping[str, str], policy: ExtractPolicy, source_table: str
) -> _Plan:
    """Classify every requested column: dropped (and why), released, or a date part derived from a shifted date."""
    treatments: dict[str, dict[str, Any]] = {}
    kept: list[str] = []
    parts: dict[str, tuple[str, str]] = {}
    for name in columns:
        if name == PERSON_COLUMN:
            continue  # replaced by the pseudonym
        role = roles.get(name)
        if is_direct_identifier(name):
            treatments[name] = {"role": role or "identifier", "treatment": "dropped: direct identifier"}
            continue
        if name in policy.drop:
            treatments[name] = {"role": role or "identifier", "treatment": "dropped: listed in the policy's drop"}
            continue
        if is_warehouse_key(name):
            # A warehouse key (visit, provider, site, record...) joins the file back to the warehouse.
            treatments[name] = {"role": role or "identifier", "treatment": "dropped: warehouse key"}
            continue
        if role is None:
            raise ExtractError(
                f"column {name!r} of {source_table!r} has no disclosure role: classify it in the mart catalogue "
                "or in column_roles (identifier, quasi_identifier, sensitive, date, none), or leave it out"
            )
        if role == "identifier":
            treatments[name] = {"role": role, "treatment": "dropped: identifier"}
            continue
        part = _date_part_source(name, available) if policy.date_shift_days is not None else None
        if part is not None:
            source, unit = part
            if not source:
                # A real year beside shifted dates gives the shift away (and so every real date): never.
                treatments[name] = {"role": role, "treatment": "dropped: a date part whose date is not in the source "
                                    "cannot be shifted"}  # fmt: skip
                continue
            parts[name] = (source, unit)
            treatments[name] = {"role": role, "treatment": f"derived: {unit} of the shifted {source}"}
        else:
            treatments[name] = {"role": role, "treatment": "kept"}
        kept.append(name)
    return _Plan(treatments, kept, parts)


def _read(
    engine: Engine, source_table: str, plan: _Plan, cohort: tuple[str, int] | None, wanted: pa.Array | None
) -> tuple[pa.Table, pa.ChunkedArray]:
    """The selected rows, checked to be one per person, and their person ids."""
    table = _select(engine, source_table, plan.read(), cohort)
    if wanted is not None:
        table = table.filter(pc.is_in(table.column(PERSON_COLUMN), value_set=wanted))
    if table.num_rows == 0:
        raise ExtractError("the selection is empty: no person of the source table matches the cohort / person ids")
    ids = table.column(PERSON_COLUMN)
    if ids.null_count:
        raise ExtractError(f"{ids.null_count} row(s) of {source_table!r} have no {PERSON_COLUMN}")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        raise ExtractError(f"{source_table!r} has several rows for some {PERSON_COLUMN}: extracts are one row a person")
    return table, ids


_PARTS = {"year": pc.year, "month": pc.month, "day": pc.day}


def _shift_dates(table: pa.Table, ids: pa.ChunkedArray, policy: ExtractPolicy, plan: _Plan) -> pa.Table:
    """Shift every date of the released columns by the person's shift and derive date parts from them.

    Returns the released columns only (in the plan's order), without the person id.
    """
    treatments = plan.treatments
    shifts = None
    if policy.date_shift_days is not None:
        shifts = date_shifts(ids, key=policy.key, project=policy.project_id, max_days=policy.date_shift_days)
    moved: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in table.column_names:
        column, kind = table.column(name), table.schema.field(name).type
        if name == PERSON_COLUMN or not is_temporal(kind):
            moved[name] = column
        elif shifts is None:
            moved[name] = column
            if name in treatments:
                treatments[name]["treatment"] = "kept: dates not shifted (no date shift in the policy)"
        elif pa.types.is_timestamp(kind) and not policy.shift_datetimes:
            moved[name] = pa.nulls(len(column), kind)  # never released; a date part of it is dropped below
            if name in treatments:
                treatments[name]["treatment"] = "dropped: timestamp not shifted (shift_datetimes is off)"
        else:
            moved[name] = shift_dates(column, shifts)
            if name in treatments:
                treatments[name]["treatment"] = f"date-shifted (per person, ±{policy.date_shift_days} days)"
    released: dict[str, Any] = {}
    for name in plan.kept:
        if treatments[name]["treatment"].startswith("dropped"):
            continue
        if name in plan.parts:
            source, unit = plan.parts[name]
            if treatments.get(source, {}).get("treatment", "").startswith("dropped"):
                treatments[name]["treatment"] = f"dropped: its date {source} is not released"
                continue
            if pa.types.is_timestamp(table.schema.field(source).type) and not policy.shift_datetimes:
                treatments[name]["treatment"] = f"dropped: its timestamp {source} is not shifted"
                continue
            released[name] = pc.cast(_PARTS[unit](moved[source]), pa.int32())
        elif (
            treatments[name]["role"] == "date" and not is_temporal(table.schema.field(name).type) and shifts is not None
        ):
            # A date held as text or a number cannot be moved: released as is it would give the shift away.
            treatments[name]["treatment"] = "dropped: a date that is not of a date type cannot be shifted"
        else:
            released[name] = moved[name]
    out = table.select([])  # keeps the row count even when nothing but the pseudonym is released
    for name, column in released.items():
        out = out.append_column(name, column)
    return out


DURATION_HIERARCHIES: tuple[tuple[re.Pattern[str], Hierarchy], ...] = (
    (re.compile(r"(^|_)days?($|_)"), NumberBands((30, 90, 180, 360, 720))),
    (re.compile(r"(^|_)months?($|_)"), NumberBands((1, 3, 6, 12, 24))),
    (re.compile(r"(^|_)(weeks?|fractions|sessions)($|_)"), NumberBands((4, 12, 24, 48))),
)
"""Generalization ladders of durations by name (``os_days`` → 30-day bands first, not 5-day ones)."""


def extract_hierarchies(table: pa.Table, chosen: Mapping[str, Hierarchy]) -> dict[str, Hierarchy]:
    """The ladder of each released column: the policy's, else a duration's by name, else the type's default."""
    ladders: dict[str, Hierarchy] = {}
    for field_ in table.schema:
        if field_.name in chosen:
            ladders[field_.name] = chosen[field_.name]
            continue
        numeric = pa.types.is_integer(field_.type) or pa.types.is_floating(field_.type)
        match = next((h for p, h in DURATION_HIERARCHIES if numeric and p.search(field_.name.lower())), None)
        ladders[field_.name] = match or default_hierarchy(field_.type)
    return ladders


def _enforce_k(
    out: pa.Table, policy: ExtractPolicy, treatments: dict[str, dict[str, Any]]
) -> tuple[pa.Table, KReport, list[dict[str, Any]], int]:
    """Bring the released table to ``k_min`` over every released column, or refuse.

    Every released column counts as a quasi-identifier: whatever an attacker derives from a row (date
    differences, age in days, survival, a rare value) is a function of that row's released values, so
    it is constant inside each equivalence class and can never split one. The k reported is then the
    true k for any quasi-identifier derivable from the file, and a join of two projects' extracts on any
    columns, or on anything computed from them, finds at least k candidates for every record.
    """
    quasi = [name for name in out.column_names if name != PSEUDONYM_COLUMN]
    report = k_anonymity(out, quasi, target=policy.k_min)
    if report.satisfied:
        return out, report, [], 0
    summary = (
        f"k over the {len(quasi)} released column(s) is {report.k}, below k_min={policy.k_min}: "
        f"{report.records_below} of {report.rows} record(s) are in {report.classes_below} class(es) smaller than "
        f"{policy.k_min}"
    )
    if policy.on_low_k == "refuse":
        raise ExtractRefused(f"extract refused: {summary}", report)
    rules = GeneralizationPolicy(
        hierarchies=extract_hierarchies(out.select(quasi), policy.hierarchies),
        max_levels=policy.max_levels,
        max_suppression=policy.max_suppression,
    )
    try:
        result = generalize_to_k(out, quasi, policy.k_min, rules)
    except KAnonymityError as error:
        raise ExtractRefused(f"extract refused: {summary}; generalization failed: {error}", report) from None
    for entry in result.applied:
        treatments[entry["column"]]["treatment"] += f"; generalized: {entry['description']}"
    return result.table, k_anonymity(result.table, quasi, target=policy.k_min), result.applied, result.suppressed


def _manifest(
    out: pa.Table,
    *,
    path: Path,
    fmt: str,
    created: dt.datetime,
    policy: ExtractPolicy,
    selection: dict[str, Any],
    treatments: dict[str, dict[str, Any]],
    report: KReport,
    generalizations: list[dict[str, Any]],
    suppressed: int,
) -> dict[str, Any]:
    columns_out = [
        {
            "name": PSEUDONYM_COLUMN,
            "type": str(out.schema.field(PSEUDONYM_COLUMN).type),
            "source": PERSON_COLUMN,
            "role": "identifier",
            "treatment": f"pseudonymized ({SCHEME}, project key)",
        }
    ]
    columns_out += [
        {"name": name, "type": str(out.schema.field(name).type), "source": name, **treatments[name]}
        for name in out.column_names
        if name != PSEUDONYM_COLUMN
    ]
    return {
        "format": MANIFEST_FORMAT,
        "project_id": policy.project_id,
        "created_at": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data_file": path.name,
        "file_format": fmt,
        "sha256": _sha256(path),
        "rows": out.num_rows,
        "selection": selection,
        "columns": columns_out,
        "dropped": [
            {"name": name, **treatments[name]}
            for name in treatments
            if treatments[name]["treatment"].startswith("dropped")
        ],
        "pseudonym": {"column": PSEUDONYM_COLUMN, "scheme": SCHEME},
        "date_shift": None
        if policy.date_shift_days is None
        else {"max_days": policy.date_shift_days, "per": "person", "zero_excluded": True},
        "k_anonymity": {
            "k_min": policy.k_min,
            "k": report.k,
            "classes": report.classes,
            "over": "every released column (and so anything derived from them)",
            "quasi_identifiers": [name for name in out.column_names if name != PSEUDONYM_COLUMN],
            "on_low_k": policy.on_low_k,
            "generalizations": generalizations,
            "suppressed_records": suppressed,
        },
    }


def build_extract(
    engine: Engine,
    *,
    source_table: str = "mart_patient",
    person_ids: Sequence[int] | None = None,
    cohort: tuple[str, int] | None = None,
    variables: Sequence[str] | None = None,
    policy: ExtractPolicy,
    out_dir: Path,
    fmt: Format = "parquet",
    column_roles: Mapping[str, str] | None = None,
) -> ExtractResult:
    """Build a pseudonymized, date-shifted, k-anonymous extract and write it with its manifest.

    Parameters
    ----------
    engine
        The warehouse engine.
    source_table
        A person-level table (one row per ``person_id``); the research mart by default.
    person_ids, cohort
        Which persons: explicit ids, members of ``(cohort table, cohort_definition_id)`` (OMOP
        ``cohort.subject_id``), both (their intersection) or neither (everyone).
    variables
        The columns to release (``None``: all); ``person_id`` is always read, and replaced.
    policy
        Pseudonymization, date shift and disclosure rules, with the project's key.
    out_dir
        Folder for the data file and its manifest (created if needed).
    fmt
        ``"parquet"`` or ``"csv"`` (comma-separated, header, UTF-8, null as an empty field).
    column_roles
        Disclosure role of each column (``identifier``, ``quasi_identifier``, ``sensitive``, ``date``,
        ``none``); default: the mart catalogue's.

    Returns
    -------
    ExtractResult

    Raises
    ------
    ExtractError
        Bad input: unknown table, column or role, duplicate person ids, an empty selection.
    ExtractRefused
        k over the released columns is below ``policy.k_min`` and the policy refuses, or generalization
        and suppression cannot reach it.

    Examples
    --------
    >>> policy = ExtractPolicy(project_id=3, key=gov.project_key(3), date_shift_days=365)  # doctest: +SKIP
    >>> build_extract(engine, cohort=("cohort", 1), policy=policy, out_dir=Path("out"))  # doctest: +SKIP
    """
    if fmt not in ("parquet", "csv"):
        raise ExtractError(f"extract format must be 'parquet' or 'csv', got {fmt!r}")
    available, cohort, wanted = _check_selection(engine, source_table, cohort, person_ids)
    columns = _choose_columns(available, variables)
    roles = _check_roles(column_roles if column_roles is not None else catalogue_roles())
    plan = _plan(columns, available, roles, policy, source_table)
    table, ids = _read(engine, source_table, plan, cohort, wanted)
    out = _shift_dates(table, ids, policy, plan)
    out = out.add_column(0, PSEUDONYM_COLUMN, pseudonymize(ids, key=policy.key, project=policy.project_id))
    out, report, generalizations, suppressed = _enforce_k(out, policy, plan.treatments)
    out = out.sort_by(PSEUDONYM_COLUMN)  # the source order could betray the ids

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.UTC)
    stem = f"extract-p{check_project(policy.project_id)}-{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    path = out_dir / f"{stem}.{fmt}"
    if fmt == "parquet":
        _atomic_write(path, lambda target: pq.write_table(out, target))
    else:
        _atomic_write(path, lambda target: pacsv.write_csv(out, target))
    selection = {
        "source_table": source_table,
        "cohort": {"table": cohort[0], "cohort_definition_id": cohort[1]} if cohort else None,
        "person_ids_given": None if wanted is None else len(wanted),
    }
    manifest = _manifest(out, path=path, fmt=fmt, created=created, policy=policy, selection=selection,
                         treatments=plan.treatments, report=report, generalizations=generalizations,
                         suppressed=suppressed)  # fmt: skip
    manifest_path = out_dir / f"{stem}.manifest.json"
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    _atomic_write(manifest_path, lambda target: target.write_text(text, encoding="utf-8"))
    return ExtractResult(path=path, manifest_path=manifest_path, manifest=manifest, rows=out.num_rows, k=report.k)
