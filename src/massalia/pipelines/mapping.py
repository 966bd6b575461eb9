"""The mapping language: typed models of what a declarative source mapping may say.

A source (a hospital site, an open-data publisher...) is described by one YAML file: how its files are
written (format, separator, encoding, date formats, decimal separator) and, for each target table it
feeds, one *table mapping* whose columns are small typed transforms (:class:`ColumnSpec`). The language
knows nothing of a domain's data model: a domain subclasses :class:`SourceMapping` with what its own
sources add (health: the care site, treatment lines, see :mod:`massalia.health.etl.mapping`) and the
compiler (:mod:`massalia.pipelines.compiler`) turns a mapping into SQL against the domain's target tables.
The language is documented in docs/mappings.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OnUnmapped = Literal["reject", "flag", "keep"]
"""What to do with a well-formed code the vocabulary does not know (malformed codes are always
rejected by the file's ``codes:`` patterns).

``keep`` (default, the OHDSI convention): load the row with concept id 0 and keep the code in the
``*_source_value`` field, so nothing is lost and the code can be mapped later; ``flag``: the same,
plus one ``flag`` row per occurrence in ``etl_reject`` (use it while building a mapping: with an
incomplete vocabulary it writes one row per unmapped record); ``reject``: do not load the row.
"""

TRANSFORMS = (
    "text",
    "const",
    "date",
    "datetime",
    "number",
    "integer",
    "operator",
    "map",
    "concept",
    "local",
    "local_attribute",
    "id",
    "row_id",
    "sql",
)


class Strict(BaseModel):
    """Base model: unknown keys in a mapping file are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FileFormat(Strict):
    """How a site writes its files (defaults for every file of the site, overridable per file)."""

    format: str = "csv"
    separator: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    date: str = "%Y-%m-%d"
    datetime: str = "%Y-%m-%d %H:%M:%S"
    decimal: str = "."


class FileSpec(Strict):
    """One kind of file of a site: a glob pattern relative to the site folder, and its format."""

    pattern: str
    format: str | None = None
    separator: str | None = None
    encoding: str | None = None
    date: str | None = None
    datetime: str | None = None
    decimal: str | None = None
    columns: tuple[str, ...] = ()
    """Columns that must be present (a file missing one is refused, naming it)."""
    required: tuple[str, ...] = ()
    """Columns without which a record is unusable: a row missing one is rejected, whatever it feeds."""
    dates: tuple[str, ...] = ()
    """Columns holding dates in the file's date format (a row with an invalid one is rejected)."""
    datetimes: tuple[str, ...] = ()
    """Columns holding date-times in the file's date-time format."""
    numbers: tuple[str, ...] = ()
    """Columns holding numbers written with the file's decimal separator."""
    codes: dict[str, str] = {}
    """Column → code pattern (a name of a pattern the domain knows, e.g. ``icd10``, or a regular expression)."""


class ColumnSpec(Strict):
    """One target column: exactly one transform key, plus its options.

    Transforms (the value of the key is the source column, unless said otherwise):

    - ``text``: the value as text (too long for the target field → reject, naming the limit);
    - ``const``: a literal value;
    - ``date`` / ``datetime``: parsed with the file's format (``format`` overrides; special formats
      ``yyyymmdd-int`` and ``epoch-s``); ``part: year|month|day`` extracts one part;
    - ``number`` / ``integer``: parsed with the file's decimal separator; a leading comparator
      (``<0.5``) is dropped (``operator`` gives its concept); ``scale_by_local`` multiplies by the
      site's local-code factor (unit conversion);
    - ``map``: a value list (``values``), ``default`` for anything else (absent: unknown values are
      rejected);
    - ``concept``: a code of ``vocabulary`` (``normalize``: ``icd10_dot`` adds the dot); ``standard:
      true`` follows "Maps to" (``relationship`` overrides), ``false`` gives the source concept;
    - ``local``: a local code through the site's SOURCE_TO_CONCEPT_MAP (``standard`` as above);
    - ``local_attribute``: an attribute of the local code list (``attribute: ucum_unit``...);
    - ``id``: the stable id of a keyed record of ``kind`` (``person``, ``visit``...) by source key;
    - ``row_id``: the id of the row produced from the same source row by mapping ``mapping``;
    - ``sql``: an expression in the house dialect over the source columns (``s.<column>``).
    """

    text: str | None = None
    const: Any = None
    date: str | None = None
    datetime: str | None = None
    number: str | None = None
    integer: str | None = None
    operator: str | None = None
    map: str | None = None
    concept: str | None = None
    local: str | None = None
    local_attribute: str | None = None
    id: str | None = None
    row_id: str | None = None
    sql: str | None = None

    format: str | None = None
    or_else: str | None = None
    """Dates and numbers: the source column used when this one is empty (e.g. end date ← start date)."""
    morphology: str | None = None
    """Concepts: an ICD-O-3 morphology column; the code becomes ``<morphology>-<site>`` (ICDO3 combos)."""
    via_local: bool = False
    """Concepts: translate the code (and ``morphology``) through the site's local-code list first
    (its ``target_concept_code``), e.g. a local diagnosis + local histology → an ICDO3 combo."""
    local_field: str = "target_concept_code"
    """With ``via_local``: the column of the local-code list the code is translated to (``ucum_unit``...)."""
    part: Literal["year", "month", "day"] | None = None
    values: dict[str, Any] | None = None
    default: Any = None
    vocabulary: str | None = None
    normalize: Literal["icd10_dot", "icdo3_site", "upper", "none"] = "none"
    code_sql: str | None = None
    standard: bool = True
    relationship: str = "Maps to"
    on_unmapped: OnUnmapped | None = None
    attribute: str | None = None
    key: str | None = None
    scale_by_local: str | None = None
    required: bool | None = None
    """Override: reject rows where the source value is missing (default: when the field is required)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # A bare string is the common case: copy this source column as text.
        if isinstance(data, str):
            return {"text": data}
        if isinstance(data, int | float):
            return {"const": data}
        return data

    @model_validator(mode="after")
    def _one_transform(self) -> ColumnSpec:
        chosen = [name for name in TRANSFORMS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"give exactly one transform among {', '.join(TRANSFORMS)}; got {chosen or 'none'}")
        if self.transform == "concept" and not self.vocabulary:
            raise ValueError("a concept transform needs vocabulary:")
        if self.transform == "map" and self.values is None:
            raise ValueError("a map transform needs values:")
        if self.transform == "id" and not self.key:
            raise ValueError("an id transform needs key: (the source column holding the record's key)")
        if self.transform == "local_attribute" and not self.attribute:
            raise ValueError("a local_attribute transform needs attribute:")
        return self

    @property
    def transform(self) -> str:
        """Name of the transform this column uses (a key of the compiler's transform registry)."""
        return next(name for name in TRANSFORMS if getattr(self, name) is not None)

    @property
    def source(self) -> Any:
        """The transform's argument (usually a source column)."""
        return getattr(self, self.transform)


class Unpivot(Strict):
    """Turn several source columns into several rows (one per non-empty column).

    The new rows expose ``name`` (which column it came from, as written in ``columns``) and
    ``value`` (its value) as source columns.
    """

    columns: dict[str, str] = {}
    """Source column → label exposed in ``name`` (e.g. ``ct: clinical_t``)."""
    expressions: dict[str, str] = {}
    """Label → SQL expression over ``s.<column>`` (e.g. the T part of a compact ``cT2N1M0``)."""
    name: str = "unpivot_name"
    value: str = "unpivot_value"


class TableMapping(Strict):
    """How one kind of file feeds one target table."""

    name: str
    """Unique within the site: names the mapping in rejects and in ``row_id`` references."""
    target: str
    source: str = Field(alias="from")
    where: str | None = None
    """Only source rows matching this predicate (house dialect over ``s.<column>``)."""
    unpivot: Unpivot | None = None
    defines: str | None = None
    """This mapping creates the records of a keyed kind (``person``, ``visit``...): its rows get ids."""
    key: str | None = None
    """Source column holding the record key (with ``defines``)."""
    requires: tuple[str, ...] = ()
    """Mappings of the same source rows that must have accepted the row (e.g. an episode's event)."""
    on_unmapped: OnUnmapped = "keep"
    duplicates: Literal["reject", "ignore"] = "reject"
    """With ``defines``: a key seen twice in the same run is rejected (``reject``) or merged (``ignore``)."""
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _keyed(self) -> TableMapping:
        if self.defines and not self.key:
            raise ValueError(f"mapping {self.name}: defines: needs key:")
        return self


class LocalCodes(Strict):
    """The source's local-code list (for health: turned into SOURCE_TO_CONCEPT_MAP rows)."""

    resource: str
    """``package.module:file.csv`` (shipped with a package) or a path relative to the mapping file."""
    vocabulary_id: str
    """Vocabulary name given to the source's local codes (health: ``source_vocabulary_id``)."""


class SourceMapping(Strict):
    """Everything a pipeline needs to know about one source; a domain subclasses it with its own keys."""

    site: str
    description: str = ""
    defaults: FileFormat = FileFormat()
    files: dict[str, FileSpec]
    local_codes: LocalCodes | None = None
    crosswalks: tuple[str, ...] = ()
    """Code crosswalks (``package:file.csv`` or paths next to the mapping) with the columns
    ``source_vocabulary_id, source_code, source_label, target_vocabulary_id, target_concept_code``:
    the data team's mapping of source codes the vocabulary lacks (e.g. WHO ICD-10 or ATC 5th levels
    missing from a demo vocabulary). Loaded into SOURCE_TO_CONCEPT_MAP and used by ``concept``
    transforms after the vocabulary itself."""
    tables: list[TableMapping]
    origin: str = ""

    @field_validator("tables")
    @classmethod
    def _unique_names(cls, tables: list[TableMapping]) -> list[TableMapping]:
        names = [t.name for t in tables]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mapping names must be unique; repeated: {', '.join(duplicates)}")
        if len(tables) > 63:
            raise ValueError("at most 63 table mappings per site (they number the rows they create)")
        return tables

    @model_validator(mode="after")
    def _files_known(self) -> SourceMapping:
        for table in self.tables:
            if table.source not in self.files:
                raise ValueError(
                    f"mapping {table.name}: from: {table.source!r} is not among files: {', '.join(self.files)}"
                )
        return self

    def file_format(self, kind: str) -> FileFormat:
        """The effective format of file kind ``kind`` (site defaults overridden by the file's own)."""
        spec = self.files[kind]
        overrides = {k: v for k, v in spec.model_dump().items() if k in FileFormat.model_fields and v is not None}
        return self.defaults.model_copy(update=overrides)

    def slot(self, mapping: str) -> int:
        """Position of a mapping in the file (1-based): part of the ids of the rows it creates."""
        for index, table in enumerate(self.tables, start=1):
            if table.name == mapping:
                return index
        raise KeyError(f"site {self.site} has no mapping {mapping!r}")


class MappingError(ValueError):
    """A mapping file is invalid; the message names the file and what is wrong."""


M = TypeVar("M", bound=SourceMapping)


def load_mapping(path: Path, model: type[M]) -> M:
    """Read one mapping file and check it against ``model`` (a :class:`SourceMapping` subclass).

    Raises
    ------
    MappingError
        The file cannot be read, is not YAML, or does not follow the language (the message names the file).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "mapping.yaml"
    ...     _ = path.write_text("{site: demo, files: {people: {pattern: '*.csv'}}, tables: [{name: p, "
    ...                         "target: person, from: people, columns: {name: nom}}]}")
    ...     load_mapping(path, SourceMapping).tables[0].columns["name"].transform
    'text'
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MappingError(f"{path}: cannot read the mapping: {error}") from None
    if not isinstance(data, dict):  # an empty file or a bare list: name it rather than fail inside pydantic
        raise MappingError(f"{path}: invalid mapping: expected a mapping of keys (site:, files:, tables:...)")
    try:
        return model.model_validate({**data, "origin": str(path)})
    except ValueError as error:
        raise MappingError(f"{path}: invalid mapping: {error}") from None
