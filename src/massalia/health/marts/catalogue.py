"""The mart's variable catalogue: data (``catalogue.yaml``), validated by pydantic when loaded.

Each variable says what it means (labels in French and English, a definition in OMOP words, the
concept ids it reads), how it is typed (``integer``, ``number``, ``text``, ``date``, ``boolean`` or
``category`` with its allowed values, a UCUM unit for numbers), what a null means, and how disclosive
it is (``identifier``, ``quasi_identifier``, ``sensitive``, ``date``, ``none``): pseudonymized
extracts, k-anonymity checks and the feasibility limits of mart filters read that field (with
``date_grain``, the finest grain a feasibility filter may use on a date: ``year`` unless ``month``).

The SQL lives beside the words: *sources* are person-level queries in the house dialect (DuckDB's),
and a variable is an expression over the columns of one source.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlglot import exp

from massalia.engine import HOUSE_DIALECT

CATALOGUE_RESOURCE = "catalogue.yaml"
SOURCE_PREFIX = "src_"
"""Sources read earlier sources as tables named ``src_<name>``."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the variable or source and the field."""


class VariableType(StrEnum):
    """Type of a mart column."""

    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"
    DATE = "date"
    BOOLEAN = "boolean"
    CATEGORY = "category"

    @property
    def sql_type(self) -> str:
        """The column's type in the house dialect."""
        return _SQL_TYPES[self]


_SQL_TYPES = {
    VariableType.INTEGER: "BIGINT",
    VariableType.NUMBER: "DOUBLE",
    VariableType.TEXT: "VARCHAR",
    VariableType.DATE: "DATE",
    VariableType.BOOLEAN: "BOOLEAN",
    VariableType.CATEGORY: "VARCHAR",
}


class Disclosure(StrEnum):
    """How disclosive a variable is (read by pseudonymization and k-anonymity checks)."""

    IDENTIFIER = "identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    DATE = "date"
    NONE = "none"


class DateGrain(StrEnum):
    """The finest grain at which callers without an approved project may filter on a date."""

    YEAR = "year"
    MONTH = "month"


class Provenance(StrEnum):
    """Where a variable's value comes from: structured OMOP records, or text (NLP findings in NOTE_NLP)."""

    STRUCTURED = "structured"
    TEXT = "text"


class Group(StrEnum):
    """Thematic group of a variable (the order of the documentation)."""

    DEMOGRAPHICS = "demographics"
    DIAGNOSIS = "diagnosis"
    STAGE = "stage"
    BIOMARKERS = "biomarkers"
    LABORATORY = "laboratory"
    PERFORMANCE_STATUS = "performance_status"
    COMORBIDITIES = "comorbidities"
    TREATMENT_LINES = "treatment_lines"
    SURGERY = "surgery"
    RADIOTHERAPY = "radiotherapy"
    RELAPSE = "relapse"
    SECOND_CANCER = "second_cancer"
    HOSPITALISATIONS = "hospitalisations"
    VITAL_STATUS = "vital_status"
    SURVIVAL = "survival"


class MissingRule(BaseModel):
    """What a null means, and the value that replaces it (``default``) when there is one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meaning: str = Field(min_length=3)
    default: bool | int | float | str | None = None


class Source(BaseModel):
    """A person-level query (house dialect) whose columns variables read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=10)
    sql: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"source name {value!r} must be lower-case letters, digits and '_'")
        return value

    @property
    def table(self) -> str:
        """The name other sources use to read this one."""
        return f"{SOURCE_PREFIX}{self.name}"

    def parsed(self) -> exp.Query:
        """The source's query as a SQLGlot tree (house dialect)."""
        try:
            tree = sqlglot.parse_one(self.sql, read=HOUSE_DIALECT)
        except sqlglot.errors.ParseError as error:
            raise CatalogueError(f"source {self.name!r}: SQL does not parse: {error}") from None
        if not isinstance(tree, exp.Query):
            raise CatalogueError(f"source {self.name!r}: SQL must be a SELECT query")
        return tree


class Variable(BaseModel):
    """One column of ``mart_patient``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label_fr: str = Field(min_length=2)
    label_en: str = Field(min_length=2)
    type: VariableType
    values: tuple[str, ...] | None = None
    unit: str | None = None
    group: Group
    source: str
    expression: str | None = None
    concepts: tuple[int, ...] = ()
    definition: str = Field(min_length=10)
    missing: MissingRule
    disclosure: Disclosure
    date_grain: DateGrain | None = None
    """Finest grain a feasibility filter may use on a date (default ``year``); see ``docs/disclosure.md``."""
    provenance: Provenance = Provenance.STRUCTURED
    """``text`` when the value is read from the clinical NLP pipeline's findings (NOTE_NLP), not from records."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"variable name {value!r} must be lower-case letters, digits and '_'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        if self.type is VariableType.CATEGORY:
            if not self.values:
                raise ValueError("a category variable needs its allowed 'values'")
            if len(set(self.values)) != len(self.values):
                raise ValueError("category 'values' repeat")
        elif self.values is not None:
            raise ValueError(f"'values' is only for category variables, not {self.type.value}")
        if self.date_grain is not None and self.type is not VariableType.DATE:
            raise ValueError("'date_grain' is only for date variables")
        if self.unit is not None and self.type not in (VariableType.INTEGER, VariableType.NUMBER):
            raise ValueError("'unit' is only for integer and number variables")
        default = self.missing.default
        if default is not None:
            kinds: dict[VariableType, type | tuple[type, ...]] = {
                VariableType.BOOLEAN: bool,
                VariableType.INTEGER: int,
                VariableType.NUMBER: (int, float),
            }
            expected = kinds.get(self.type, str)
            wrong_bool = self.type is not VariableType.BOOLEAN and isinstance(default, bool)
            if not isinstance(default, expected) or wrong_bool:
                raise ValueError(f"missing.default {default!r} does not fit type {self.type.value}")
            if self.type is VariableType.CATEGORY and default not in (self.values or ()):
                raise ValueError(f"missing.default {default!r} is not one of the category values")
        return self

    @property
    def label(self) -> str:
        """English label."""
        return self.label_en

    def label_in(self, lang: str) -> str:
        """The label in ``lang`` (``fr`` or ``en``)."""
        if lang == "fr":
            return self.label_fr
        if lang == "en":
            return self.label_en
        raise ValueError(f"unknown language {lang!r}: use 'fr' or 'en'")

    def sql_expression(self) -> str:
        """The expression over the source's columns (the column named like the variable by default)."""
        return self.expression or self.name


class Catalogue(BaseModel):
    """The whole catalogue: sources in dependency order, then variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    sources: tuple[Source, ...]
    variables: tuple[Variable, ...]

    @model_validator(mode="after")
    def _references(self) -> Catalogue:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"source {source.name!r} is defined twice")
            tree = source.parsed()
            ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
            for table in tree.find_all(exp.Table):
                name = table.name
                if name.startswith(SOURCE_PREFIX) and name not in ctes:
                    wanted = name[len(SOURCE_PREFIX) :]
                    if wanted not in seen:
                        raise ValueError(f"source {source.name!r} reads {name!r}, which is not an earlier source")
            seen.add(source.name)
        names: set[str] = set()
        for variable in self.variables:
            if variable.name in names:
                raise ValueError(f"variable {variable.name!r} is defined twice")
            names.add(variable.name)
            if variable.source not in seen:
                raise ValueError(f"variable {variable.name!r}: unknown source {variable.source!r}")
            try:
                sqlglot.parse_one(variable.sql_expression(), read=HOUSE_DIALECT)
            except sqlglot.errors.ParseError as error:
                raise ValueError(f"variable {variable.name!r}: expression does not parse: {error}") from None
        if not self.variables or self.variables[0].name != "person_id":
            raise ValueError("the first variable must be person_id (the mart's key)")
        return self

    def __len__(self) -> int:
        return len(self.variables)

    def variable(self, name: str) -> Variable:
        """The variable called ``name``; ``KeyError`` naming close names when absent."""
        for variable in self.variables:
            if variable.name == name:
                return variable
        close = [v.name for v in self.variables if name.lower() in v.name or v.name in name.lower()][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown mart variable {name!r}{hint}")

    def source(self, name: str) -> Source:
        """The source called ``name``."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"unknown mart source {name!r}")

    def disclosure_classes(self) -> dict[str, Disclosure]:
        """Disclosure class of every mart column (what pseudonymized extracts and k-anonymity read).

        Examples
        --------
        >>> load_catalogue().disclosure_classes()["birth_date"].value
        'date'
        """
        return {variable.name: variable.disclosure for variable in self.variables}

    def by_group(self) -> dict[Group, list[Variable]]:
        """Variables by group, groups in their documented order."""
        grouped: dict[Group, list[Variable]] = {group: [] for group in Group}
        for variable in self.variables:
            grouped[variable.group].append(variable)
        return {group: variables for group, variables in grouped.items() if variables}


def parse_catalogue(data: Any, *, origin: str = "catalogue") -> Catalogue:
    """Validate catalogue data (as read from YAML); errors name the offending entry.

    Examples
    --------
    >>> catalogue = load_catalogue()
    >>> catalogue.variable("sex").values
    ('female', 'male', 'unknown')
    """
    try:
        return Catalogue.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = list(problem["loc"])
            # Name the entry, not only its index: "variables[12] (stage_group).type".
            if len(where) >= 2 and where[0] in ("variables", "sources") and isinstance(where[1], int):
                entries = data.get(where[0]) if isinstance(data, dict) else None
                if isinstance(entries, list) and where[1] < len(entries) and isinstance(entries[where[1]], dict):
                    where[1] = f"{where[1]} ({entries[where[1]].get('name', '?')})"
            lines.append(f"  {'.'.join(str(part) for part in where)}: {problem['msg']}")
        raise CatalogueError(f"{origin} is not a valid mart catalogue:\n" + "\n".join(lines)) from None


def read_catalogue(path: Path) -> Catalogue:
    """Load and validate a catalogue from a YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogueError(f"{path}: not valid YAML: {error}") from None
    return parse_catalogue(data, origin=str(path))


@cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped with Massalia (``massalia/health/marts/catalogue.yaml``), loaded once."""
    text = resources.files("massalia.health.marts").joinpath(CATALOGUE_RESOURCE).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CatalogueError(f"{CATALOGUE_RESOURCE}: not valid YAML: {error}") from None
    return parse_catalogue(data, origin=CATALOGUE_RESOURCE)
