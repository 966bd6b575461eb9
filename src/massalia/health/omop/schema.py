"""OMOP CDM v5.4 schema, derived from the official field specification (never hand-typed).

``cdm54_spec.json`` is extracted from OHDSI's CSV specification by ``scripts/gen_omop_spec.py``;
this module turns it into column definitions, Arrow schemas and DDL for any engine.

Deviation from OHDSI's DDL, on purpose: row identifiers (``*_id`` columns that are not concept ids)
are ``BIGINT`` instead of ``INTEGER`` so that warehouses beyond 2^31 events and stable hashed ids
fit; the oncology extension already widens episode ids the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pyarrow as pa
from sqlglot import exp

from massalia.engine import HOUSE_DIALECT, Column, Engine, UnsupportedOperation

CDM_VERSION = "5.4"

VOCABULARY_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "concept_relationship",
    "relationship",
    "concept_synonym",
    "concept_ancestor",
    "source_to_concept_map",
    "drug_strength",
)
"""Tables of the standardized vocabularies (loaded from Athena, not from the ETL)."""

_VARCHAR = re.compile(r"varchar\((\d+|max)\)")

RESERVED_FIELD_NAMES = frozenset({"offset"})
"""CDM field names that are reserved words in SQL (NOTE_NLP.offset): always quoted in DDL and queries."""


def field_identifier(name: str) -> exp.Identifier:
    """A SQLGlot identifier for a CDM field, quoted when the name is a reserved word."""
    return exp.to_identifier(name, quoted=name in RESERVED_FIELD_NAMES)


@dataclass(frozen=True)
class FieldSpec:
    """One CDM field as the specification defines it."""

    name: str
    type: str
    required: bool
    primary_key: bool
    fk_table: str | None
    fk_field: str | None
    fk_domain: str | None
    fk_class: str | None
    extension: bool = False

    @property
    def is_row_identifier(self) -> bool:
        """Whether this field identifies a row (widened to BIGINT), as opposed to a concept id."""
        name = self.name
        return (
            self.type in ("integer", "bigint")
            and (name.endswith("_id") or name in ("fact_id_1", "fact_id_2"))
            and not name.endswith("concept_id")
            and self.fk_table != "concept"
        )

    @property
    def sql_type(self) -> str:
        """Type in the house dialect (DuckDB)."""
        if self.is_row_identifier or self.type == "bigint":
            return "BIGINT"
        if self.type == "integer":
            return "INTEGER"
        if self.type == "float":
            return "DOUBLE"
        if self.type == "date":
            return "DATE"
        if self.type == "datetime":
            return "TIMESTAMP"
        match = _VARCHAR.fullmatch(self.type)
        if match:
            return "VARCHAR" if match.group(1) == "max" else f"VARCHAR({match.group(1)})"
        raise ValueError(f"unknown CDM datatype {self.type!r} for field {self.name}")

    @property
    def max_length(self) -> int | None:
        """Maximum length of a varchar field, ``None`` when unbounded or not text."""
        match = _VARCHAR.fullmatch(self.type)
        return int(match.group(1)) if match and match.group(1) != "max" else None

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type used when data for this field travels between engines."""
        sql = self.sql_type
        if sql == "BIGINT":
            return pa.int64()
        if sql == "INTEGER":
            return pa.int32()
        if sql == "DOUBLE":
            return pa.float64()
        if sql == "DATE":
            return pa.date32()
        if sql == "TIMESTAMP":
            return pa.timestamp("us")
        return pa.string()


@dataclass(frozen=True)
class TableSpec:
    """One CDM table: its fields in specification order and table-level facts."""

    name: str
    fields: tuple[FieldSpec, ...]
    required: bool
    measure_person_completeness: bool
    person_completeness_threshold: int | None

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Primary-key columns (empty for link tables such as ``death`` or ``episode_event``)."""
        return tuple(f.name for f in self.fields if f.primary_key)

    @property
    def is_vocabulary(self) -> bool:
        """Whether the table belongs to the standardized vocabularies."""
        return self.name in VOCABULARY_TABLES

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``."""
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.name} has no field {name!r}")

    def columns(self) -> list[Column]:
        """Column definitions in the house dialect, NOT NULL where the spec requires."""
        return [Column(f.name, f.sql_type, nullable=not f.required) for f in self.fields]

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of the table (nullability as in the spec)."""
        return pa.schema([pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields])

    def create_statement(self, dialect: str = HOUSE_DIALECT, *, primary_key: bool = True) -> str:
        """``CREATE TABLE`` statement for ``dialect``."""
        definitions: list[exp.Expr] = []
        for field in self.fields:
            column = exp.ColumnDef(
                this=field_identifier(field.name), kind=exp.DataType.build(field.sql_type, dialect=HOUSE_DIALECT)
            )
            if field.required:
                column.append("constraints", exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
            definitions.append(column)
        if primary_key and self.primary_key:
            definitions.append(exp.PrimaryKey(expressions=[exp.to_identifier(c) for c in self.primary_key]))
        statement = exp.Create(this=exp.Schema(this=exp.to_table(self.name), expressions=definitions), kind="TABLE")
        return statement.sql(dialect=dialect)


@cache
def cdm_tables() -> dict[str, TableSpec]:
    """All CDM v5.4 tables (39, with the oncology extension folded into EPISODE/MEASUREMENT).

    Examples
    --------
    >>> tables = cdm_tables()
    >>> len(tables), tables["person"].primary_key
    (39, ('person_id',))
    """
    text = resources.files("massalia.health.omop").joinpath("cdm54_spec.json").read_text(encoding="utf-8")
    spec = json.loads(text)
    tables = {}
    for table in spec["tables"]:
        fields = tuple(FieldSpec(**field) for field in table["fields"])
        tables[table["name"]] = TableSpec(
            name=table["name"],
            fields=fields,
            required=table["required"],
            measure_person_completeness=table["measure_person_completeness"],
            person_completeness_threshold=table["person_completeness_threshold"],
        )
    return tables


def cdm_table(name: str) -> TableSpec:
    """The specification of table ``name`` (error naming the known tables if absent)."""
    try:
        return cdm_tables()[name.lower()]
    except KeyError:
        raise KeyError(f"{name!r} is not an OMOP CDM v5.4 table") from None


INDEXED_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {}
"""Secondary indexes in the spirit of OHDSI's index script: person and main concept per table."""


def _default_indexes(table: TableSpec) -> tuple[tuple[str, ...], ...]:
    if table.name in INDEXED_COLUMNS:
        return INDEXED_COLUMNS[table.name]
    names = [f.name for f in table.fields]
    indexes: list[tuple[str, ...]] = []
    if "person_id" in names and table.primary_key != ("person_id",):
        indexes.append(("person_id",))
    main_concept = f"{table.name.removesuffix('_occurrence').removesuffix('_exposure')}_concept_id"
    if main_concept in names:
        indexes.append((main_concept,))
    if "visit_occurrence_id" in names and table.name != "visit_occurrence":
        indexes.append(("visit_occurrence_id",))
    if table.name == "concept":
        indexes += [("concept_code",), ("vocabulary_id",), ("domain_id",)]
    if table.name in ("concept_relationship",):
        indexes += [("concept_id_1",), ("concept_id_2",)]
    if table.name == "concept_ancestor":
        indexes += [("ancestor_concept_id",), ("descendant_concept_id",)]
    if table.name == "episode_event":
        indexes += [("episode_id",), ("event_id",)]
    return tuple(indexes)


def cdm_indexes(table: str) -> tuple[tuple[str, ...], ...]:
    """Column lists to index on ``table``."""
    return _default_indexes(cdm_table(table))


def create_cdm_schema(
    engine: Engine, tables: list[str] | None = None, *, replace: bool = False, primary_keys: bool = True
) -> list[str]:
    """Create the (empty) CDM tables on ``engine``; existing tables are kept unless ``replace``.

    Returns the names of the tables created.
    """
    created = []
    existing = set(engine.list_tables())
    for name in tables or list(cdm_tables()):
        spec = cdm_table(name)
        if name in existing:
            if not replace:
                continue
            engine.drop_table(name)
        use_pk = primary_keys and engine.capabilities.primary_keys
        engine.execute_native(spec.create_statement(engine.dialect, primary_key=use_pk))
        created.append(name)
    return created


def create_cdm_indexes(engine: Engine, tables: list[str] | None = None) -> int:
    """Create the secondary indexes where the engine supports them; return how many."""
    if not engine.capabilities.indexes:
        return 0
    count = 0
    existing = set(engine.list_tables())
    for name in tables or list(cdm_tables()):
        if name not in existing:
            continue
        for columns in cdm_indexes(name):
            try:
                engine.create_index(name, columns)
            except UnsupportedOperation:
                return count
            count += 1
    return count


def cdm_ddl(dialect: str = HOUSE_DIALECT, *, primary_keys: bool = True) -> str:
    """The full DDL script for ``dialect`` (``duckdb``, ``postgres``, ``spark``...)."""
    statements = [spec.create_statement(dialect, primary_key=primary_keys) for spec in cdm_tables().values()]
    return ";\n\n".join(statements) + ";\n"
