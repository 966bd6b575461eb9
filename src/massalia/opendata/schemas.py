"""Schema-first publishing: shipped Table Schemas, validation of uploads with Frictionless, reports and badges.

**Shipped schemas.** The national Table Schemas (IRVE, SDIRVE, the SCDL local data schemas) are files of this
package (``schemas/<publisher>~<name>@<version>.json``, the upstream JSON unchanged, attribution in
``schemas/NOTICE.txt``). A resource declares one by a URL-less id and a pinned version,
``etalab/schema-irve-statique@2.3.0``: nothing is ever fetched from the network, and an unknown id or version is
a clear error naming what is shipped (:func:`resolve`).

**Validation.** An uploaded file of a resource that declares a schema is validated with the ``frictionless``
library (:func:`validate_file`), streaming row by row, bounded in rows and seconds. The report keeps the first
:data:`MAX_REPORTED_ERRORS` errors (row, field, error type, message) but counts them all. Reports are stored
beside the uploaded files, keyed by the file's SHA-256, the schema and the validator version (:class:`ReportStore`):
the same bytes against the same pinned schema always give the same report, so publishing a new version that keeps
a file re-uses it. The resource's fields carry ``validation_status`` (``success``, ``failure`` or ``error``, the
values of ckanext-validation), ``validation_errors`` and ``validation_timestamp``; every published version keeps
them, so the status and the report of any earlier version stay readable.

**Policy** (declared per resource, field ``validation``): by default (``publish``) an invalid upload is published
and its badge says *invalid (n errors)*, as udata does; ``validation: strict`` refuses a write whose file does not
validate, and nothing is published (the catalog's transaction rolls back).

**Badges** (:func:`badge_svg`): *valid*, *invalid (n errors)*, *not validated* (a schema but no uploaded file, or a
file that could not be read in the bounds) and *no schema*, in French or English.

Examples
--------
>>> resolve("etalab/schema-irve-statique@2.3.0").title
'IRVE statique'
>>> resolve("etalab/schema-irve-statique@9.9.9")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
ValidationFailed: schema: etalab/schema-irve-statique has no version 9.9.9 (shipped: 2.3.0)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from html import escape
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from massalia.governance import Caller, NotFound
from massalia.opendata.models import ValidationFailed

if TYPE_CHECKING:
    from massalia.opendata.catalog import Catalog

SCHEMA_DIR = Path(__file__).with_name("schemas")
"""The shipped Table Schema files (``<publisher>~<name>@<version>.json``)."""
MAX_REPORTED_ERRORS = 1000
"""A report keeps this many errors (row, field, type, message); every error is still counted."""
MAX_VALIDATION_ROWS = 5_000_000
"""Validation stops after this many rows: the report then says it is incomplete."""
MAX_VALIDATION_SECONDS = 120.0
"""Validation stops after this much time (``MASSALIA_OPENDATA_VALIDATION_SECONDS``): the report then says it is
incomplete. Frictionless reads about 2,000 rows of 40 fields a second on a loaded 2-core machine, so a larger
file is validated in part (status ``error``, badge *not validated*, the errors found so far still counted)."""


def validation_seconds() -> float:
    """The validation time bound: ``MASSALIA_OPENDATA_VALIDATION_SECONDS`` (1 to 3600), else the default."""
    given = os.environ.get("MASSALIA_OPENDATA_VALIDATION_SECONDS", "").strip()
    if not given:
        return MAX_VALIDATION_SECONDS
    try:
        value = float(given)
    except ValueError:
        raise ValueError(f"MASSALIA_OPENDATA_VALIDATION_SECONDS={given[:50]!r} is not a number of seconds") from None
    if not 1 <= value <= 3600:
        raise ValueError(f"MASSALIA_OPENDATA_VALIDATION_SECONDS={given[:50]!r} must be from 1 to 3600")
    return value


TABULAR_FORMATS = frozenset({"csv", "tsv", "xlsx"})
"""The file formats validated against a Table Schema (others get status ``error``: cannot be validated)."""
VALIDATOR = "frictionless"
STATUSES = ("success", "failure", "error")
POLICIES = ("publish", "strict")
_REF = re.compile(r"^(?P<id>[a-z0-9][a-z0-9._-]{0,60}/[a-z0-9][a-z0-9._-]{0,100})@(?P<version>[0-9A-Za-z.+-]{1,40})$")


@dataclass(frozen=True)
class ShippedSchema:
    """A Table Schema shipped with the package: its id, pinned version, title and file."""

    id: str
    version: str
    title: str
    path: Path

    @property
    def ref(self) -> str:
        """``id@version``, what a resource declares."""
        return f"{self.id}@{self.version}"

    def descriptor(self) -> dict[str, Any]:
        """The schema's JSON (the upstream file, unchanged)."""
        loaded: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return loaded

    def summary(self) -> dict[str, Any]:
        """What ``schema_list`` shows of it."""
        return {"id": self.id, "version": self.version, "schema": self.ref, "title": self.title}


@lru_cache(maxsize=1)
def shipped() -> dict[str, ShippedSchema]:
    """Every shipped schema by ``id@version``."""
    found: dict[str, ShippedSchema] = {}
    for path in sorted(SCHEMA_DIR.glob("*@*.json")):
        stem = path.name.removesuffix(".json")
        ident, _, version = stem.partition("@")
        title = str(json.loads(path.read_text(encoding="utf-8")).get("title", ident))
        schema = ShippedSchema(ident.replace("~", "/"), version, title, path)
        found[schema.ref] = schema
    return found


def resolve(ref: str) -> ShippedSchema:
    """The shipped schema a resource declares (``id@version``); a clear error if none is shipped under it."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationFailed(
            {"schema": ["a schema is declared as id@version, e.g. etalab/schema-irve-statique@2.3.0"]}
        )
    ref = ref.strip()
    match = _REF.match(ref)
    if match is None:
        raise ValidationFailed(
            {
                "schema": [
                    f"{ref[:200]!r} is not id@version (a pinned version is required, no URL), e.g. "
                    "etalab/schema-irve-statique@2.3.0"
                ]
            }
        )
    known = shipped()
    if ref in known:
        return known[ref]
    versions = sorted(s.version for s in known.values() if s.id == match["id"])
    if versions:
        raise ValidationFailed(
            {"schema": [f"{match['id']} has no version {match['version']} (shipped: {', '.join(versions)})"]}
        )
    raise ValidationFailed({"schema": [f"unknown schema {match['id']!r} (see schema_list for the shipped schemas)"]})


def schema_list(caller: Caller) -> list[dict[str, Any]]:
    """The shipped schemas (``opendata.catalog.read``)."""
    caller.authorize("opendata.catalog.read")
    return [schema.summary() for schema in shipped().values()]


def schema_show(caller: Caller, ref: str) -> dict[str, Any]:
    """One shipped schema's descriptor (``opendata.catalog.read``)."""
    caller.authorize("opendata.catalog.read")
    schema = resolve(ref)
    return {**schema.summary(), "descriptor": schema.descriptor()}


# -- validation -------------------------------------------------------------------------------------------------
@dataclass
class ValidationReport:
    """The outcome of validating one file against one schema.

    ``status`` is ``success`` (every row read, no error), ``failure`` (errors found) or ``error`` (the file could
    not be validated: unreadable, not tabular, or stopped by a bound before any error); ``errors`` holds the first
    :data:`MAX_REPORTED_ERRORS` of ``error_count``.
    """

    schema: str
    sha256: str
    status: str
    error_count: int = 0
    rows: int = 0
    complete: bool = True
    note: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    validator: str = VALIDATOR
    validated_at: str = ""
    seconds: float = 0.0

    @property
    def truncated(self) -> bool:
        """Whether more errors were counted than kept."""
        return self.error_count > len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**asdict(self), "truncated": self.truncated}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """A report read back from its stored JSON."""
        data = {k: v for k, v in data.items() if k != "truncated"}
        return cls(**data)

    def summary(self) -> str:
        """One line for an error message or the command line."""
        head = f"{self.status}: {self.error_count} error(s) in {self.rows} row(s) against {self.schema}"
        first = "; ".join(_error_line(e) for e in self.errors[:5])
        return head + (f" ({self.note})" if self.note else "") + (f"; {first}" if first else "")


def _error_line(error: dict[str, Any]) -> str:
    where = f"row {error['row']}" if error.get("row") else "header"
    return f"{where}, field {error.get('field') or '-'}: {error['type']}"


def _version() -> str:
    return f"{VALIDATOR}-{package_version('frictionless')}"


def validate_file(
    path: Path,
    schema_ref: str,
    file_format: str,
    *,
    sha256: str = "",
    max_rows: int = MAX_VALIDATION_ROWS,
    max_seconds: float | None = None,
    max_errors: int = MAX_REPORTED_ERRORS,
) -> ValidationReport:
    """Validate a local file against a shipped schema with Frictionless, streaming, within bounds.

    Parameters
    ----------
    path
        The file (read where it is; Frictionless is given its folder as base path and its bare name).
    schema_ref
        ``id@version`` of a shipped schema.
    file_format
        ``csv``, ``tsv`` or ``xlsx`` (case ignored); any other format gives status ``error``.
    max_rows, max_seconds
        Bounds: past either the validation stops and the report says it is incomplete (``max_seconds`` defaults
        to :func:`validation_seconds`).
    max_errors
        How many errors the report keeps (all are counted).
    """
    # Frictionless is imported here, not at the top: it takes ~1 s, and every `massalia` command imports this module.
    from frictionless import Schema, system
    from frictionless.resources import TableResource

    schema = resolve(schema_ref)
    max_seconds = validation_seconds() if max_seconds is None else max_seconds
    started = time.monotonic()
    report = ValidationReport(schema=schema.ref, sha256=sha256, status="success", validator=_version())
    report.validated_at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    fmt = (file_format or "").lower().lstrip(".")
    if fmt not in TABULAR_FORMATS:
        report.status, report.complete = "error", False
        report.note = f"a {fmt or 'file without format'} cannot be validated against a Table Schema (csv, tsv, xlsx)"
        return report

    def add(row: int | None, field_name: str | None, kind: str, message: str) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append({"row": row, "field": field_name, "type": kind, "message": message[:500]})

    try:
        with system.use_context(trusted=False):
            options: dict[str, Any] = {"format": "csv" if fmt == "tsv" else fmt}
            if fmt == "tsv":
                from frictionless import Dialect, formats  # with the imports above (start-up time)

                options["dialect"] = Dialect(controls=[formats.CsvControl(delimiter="\t")])
            resource = TableResource(
                path=path.name, basepath=str(path.parent), schema=Schema.from_descriptor(schema.descriptor()), **options
            )
            with resource:
                header = resource.header
                for error in header.errors if header is not None else []:
                    add(
                        None,
                        getattr(error, "field_name", None) or getattr(error, "label", None) or None,
                        error.type,
                        error.message,
                    )
                for row in resource.row_stream:
                    report.rows += 1
                    for error in row.errors:
                        add(row.row_number, getattr(error, "field_name", None), error.type, error.message)
                    if report.rows >= max_rows:
                        report.complete, report.note = False, f"stopped after {max_rows} rows (row bound)"
                        break
                    if time.monotonic() - started > max_seconds:
                        report.complete, report.note = False, f"stopped after {max_seconds:g} s (time bound)"
                        break
    except Exception as error:  # frictionless raises its own FrictionlessException and the parsers' errors
        report.complete = False
        report.note = f"the file could not be read as {fmt}: {str(error)[:300]}"
    if report.error_count:
        report.status = "failure"
    elif not report.complete:
        report.status = "error"
    report.seconds = round(time.monotonic() - started, 3)
    return report


class ReportStore:
    """Validation reports kept beside the uploaded files, by file hash, schema and validator version."""

    def __init__(self, files: Path) -> None:
        self.root = Path(files) / "validation"

    def key(self, sha256: str, schema_ref: str) -> str:
        """The report's name: the same bytes against the same pinned schema and validator share it."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a SHA-256: {sha256[:80]!r}")
        safe = resolve(schema_ref).ref.replace("/", "~")
        return f"{sha256}.{safe}.{_version()}"

    def get(self, key: str) -> ValidationReport | None:
        """A stored report, or None (a key not of :meth:`key`'s shape is none: it never names another file)."""
        if not re.fullmatch(r"[0-9a-f]{64}\.[A-Za-z0-9._~@+-]{1,200}", key) or ".." in key:
            return None
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        return ValidationReport.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def put(self, key: str, report: ValidationReport) -> None:
        """Store a report (atomically: written beside, then renamed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(json.dumps(report.as_dict(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.root / f"{key}.json")


def check_resource(
    files: Path, file_path: Path | None, fields: dict[str, Any], sha256: str | None, *, rerun: bool = False
) -> dict[str, Any]:
    """The validation fields of a resource about to be published (and the strict policy enforced).

    Parameters
    ----------
    files
        The catalog's file store (reports are kept under ``validation/``).
    file_path
        The uploaded file, or None for a link.
    fields
        The resource's stored fields (``schema_id``, ``validation``, ``format``).
    sha256
        The uploaded file's hash.
    rerun
        Validate again even if a report for these bytes and schema is stored.

    Returns
    -------
    dict
        The fields to set: ``validation_status``, ``validation_errors``, ``validation_timestamp``,
        ``validation_report`` (all None when there is nothing to validate).

    Raises
    ------
    ValidationFailed
        The schema is unknown, or the policy is ``strict`` and the file does not validate.
    """
    cleared: dict[str, Any] = {
        "validation_status": None,
        "validation_errors": None,
        "validation_timestamp": None,
        "validation_report": None,
    }
    ref = fields.get("schema_id")
    policy = fields.get("validation") or "publish"
    if not ref:
        return cleared
    schema = resolve(ref)
    if file_path is None or not sha256:
        if policy == "strict":
            raise ValidationFailed({"validation": ["strict validation needs an uploaded file to validate"]})
        return cleared
    store = ReportStore(files)
    key = store.key(sha256, schema.ref)
    report = None if rerun else store.get(key)
    if report is None:
        report = validate_file(file_path, schema.ref, str(fields.get("format") or file_path.suffix), sha256=sha256)
        store.put(key, report)
    if policy == "strict" and report.status != "success":
        raise ValidationFailed(
            {"validation": [f"strict validation refused the file, nothing was published: {report.summary()}"]}
        )
    return {
        "validation_status": report.status,
        "validation_errors": report.error_count,
        "validation_timestamp": report.validated_at,
        "validation_report": key,
    }


def _published_resource(caller: Caller, catalog: Catalog, ref: str, version: int | None) -> dict[str, Any]:
    """A resource as it stands, or as published in ``version`` of its dataset (both through guarded reads)."""
    current = catalog.resource_show(caller, ref)
    if version is None:
        return current
    document = catalog.package_show(caller, current["package_id"], version=version)
    for resource in document.get("resources", []):
        if resource.get("id") == current["id"]:
            return dict(resource)
    raise NotFound(f"Resource {current['id']} is not in version {version} of its dataset")


def validation_show(caller: Caller, catalog: Catalog, ref: str, *, version: int | None = None) -> dict[str, Any]:
    """The validation report of a resource as it stands or in an earlier version (``resource_validation_show``).

    Readable by whoever may read the resource's dataset (a deleted dataset's reports only by its producers): the
    dataset is looked up through the catalog's guarded reads first.
    """
    resource = _published_resource(caller, catalog, ref, version)
    state, errors = badge_state(resource)
    answer: dict[str, Any] = {
        "resource_id": resource["id"],
        "package_id": resource.get("package_id"),
        "version": version,
        "schema": resource.get("schema_id"),
        "policy": resource.get("validation") or "publish",
        "status": resource.get("validation_status"),
        "badge": state,
        "error_count": errors,
        "report": None,
    }
    key = resource.get("validation_report")
    if key:
        report = ReportStore(catalog.files).get(str(key))
        answer["report"] = report.as_dict() if report is not None else None
    return answer


def badge(caller: Caller, catalog: Catalog, ref: str, *, version: int | None = None, lang: str = "fr") -> str:
    """The SVG validity badge of a resource (as it stands, or in ``version``)."""
    state, errors = badge_state(_published_resource(caller, catalog, ref, version))
    return badge_svg(state, errors, lang)


# -- badges -------------------------------------------------------------------------------------------------------
BADGE_STATES = ("valid", "invalid", "not-validated", "no-schema")
_LABELS = {
    "fr": {
        "title": "schéma",
        "valid": "valide",
        "invalid": "invalide ({n} erreur{s})",
        "not-validated": "non validé",
        "no-schema": "sans schéma",
    },
    "en": {
        "title": "schema",
        "valid": "valid",
        "invalid": "invalid ({n} error{s})",
        "not-validated": "not validated",
        "no-schema": "no schema",
    },
}
_COLOURS = {"valid": "#2e7d32", "invalid": "#c62828", "not-validated": "#757575", "no-schema": "#9e9e9e"}


def badge_state(resource: dict[str, Any]) -> tuple[str, int]:
    """The badge of a resource dict (as published): its state and error count."""
    if not resource.get("schema_id"):
        return "no-schema", 0
    status = resource.get("validation_status")
    if status == "success":
        return "valid", 0
    if status == "failure":
        return "invalid", int(resource.get("validation_errors") or 0)
    return "not-validated", 0


def badge_svg(state: str, errors: int = 0, lang: str = "fr") -> str:
    """An SVG badge (shields-like) for a validity state, labelled in French (default) or English."""
    labels = _LABELS.get(lang, _LABELS["fr"])
    if state not in BADGE_STATES:
        raise ValidationFailed({"state": [f"must be one of {', '.join(BADGE_STATES)}"]})
    text = labels[state].format(n=errors, s="s" if errors != 1 else "")
    title = labels["title"]
    left, right = 7 * len(title) + 12, 7 * len(text) + 12
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(title)}: {escape(text)}"><title>{escape(title)}: {escape(text)}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{_COLOURS[state]}"/>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:g}" y="14">{escape(title)}</text>'
        f'<text x="{left + right / 2:g}" y="14">{escape(text)}</text></g></svg>'
    )
