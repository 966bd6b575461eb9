"""The mapping compiler is the core's: it compiles a domain's mapping against the domain's own tables and
transforms, and refuses what no registry provides (health's vocabulary lookups are health's, not the core's)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pytest

from massalia.engine import connect
from massalia.health.etl.transforms import omop_transforms
from massalia.pipelines.compiler import (
    Column,
    Lookup,
    MappingCompiler,
    TargetTable,
    Transform,
    core_transforms,
)
from massalia.pipelines.mapping import SourceMapping
from massalia.plugins import Registry, RegistryError


@dataclass(frozen=True)
class Field:
    name: str
    required: bool = False
    sql_type: str = "VARCHAR"
    max_length: int | None = None


@dataclass(frozen=True)
class Table:
    """A toy target model (not OMOP): a register of people with a country code."""

    fields: tuple[Field, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        return ("id",)

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


PEOPLE = Table(
    (
        Field("id", True, "BIGINT"),
        Field("name", True, max_length=5),
        Field("born", sql_type="DATE"),
        Field("country", sql_type="VARCHAR"),
        Field("kind"),
    )
)


def target(name: str) -> TargetTable:
    if name != "people":
        raise KeyError(name)
    return PEOPLE


def source_mapping(columns: dict[str, object]) -> SourceMapping:
    return SourceMapping.model_validate(
        {
            "site": "town",
            "files": {"people": {"pattern": "*.csv"}},
            "tables": [{"name": "people", "target": "people", "from": "people", "columns": columns}],
            "origin": "town.yaml",
        }
    )


def compiler(site: SourceMapping, transforms: Registry[Transform] | None = None) -> MappingCompiler:
    return MappingCompiler(
        site,
        lambda lookup: f"lookup_{lookup.kind}",
        lambda kind: f"staged_{kind}",
        target_table=target,
        transforms=transforms,
    )


def test_the_core_compiles_a_non_omop_mapping_and_the_sql_runs() -> None:
    site = source_mapping(
        {
            "name": "nom",
            "born": {"date": "ne_le", "format": "%d/%m/%Y"},
            "kind": {"map": "genre", "values": {"f": "woman", "m": "man"}, "default": "other"},
        }
    )
    compiled = compiler(site).compile(site.tables[0], own_id="CAST(7 AS BIGINT)")
    sql = "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in compiled.columns) + " FROM " + compiled.source_sql
    staged = pa.table(
        {
            "nom": ["Ada", "Bob"],
            "ne_le": ["10/12/1815", "31/02/1990"],
            "genre": ["f", "x"],
            "_file_no": [1, 1],
            "_source_line": [2, 3],
        }
    )
    with connect("duckdb") as engine:
        engine.create_table("staged_people", staged)
        rows = engine.query_native(sql + " ORDER BY _source_line").to_pylist()
    assert [(r["name"], str(r["born"]), r["kind"]) for r in rows] == [
        ("Ada", "1815-12-10", "woman"),
        ("Bob", "None", "other"),
    ]
    assert rows[0]["_row_id"] != rows[1]["_row_id"]
    kinds = [rule.kind for rule in compiled.rules]
    assert {"required", "too_long", "invalid_date", "date_before", "date_in_future"} <= set(kinds)


def test_a_vocabulary_transform_is_not_the_cores_and_the_error_names_the_known_ones() -> None:
    site = source_mapping({"name": "nom", "country": {"concept": "pays", "vocabulary": "ISO"}})
    with pytest.raises(RegistryError, match=r"unknown column transform 'concept' \(known: text, const, sql, date"):
        compiler(site).compile(site.tables[0])
    assert {"concept", "local", "operator"} <= set(omop_transforms())


def test_a_domain_brings_its_own_transform_for_a_name_of_the_language() -> None:
    def country_code(column: Column) -> str:
        alias, _ = column.compiler.join(column.compiled, Lookup("country"), f"upper(CAST({column.raw} AS VARCHAR))")
        return f"{alias}.iso"

    transforms = core_transforms()
    transforms.register("concept", Transform(country_code))
    site = source_mapping({"name": "nom", "country": {"concept": "pays", "vocabulary": "ISO"}})
    compiled = compiler(site, transforms).compile(site.tables[0])
    assert dict(compiled.columns)["country"] == "j0.iso"
    assert 'LEFT JOIN lookup_country AS j0 ON j0.code = upper(CAST(s."pays" AS VARCHAR))' in compiled.source_sql
    with pytest.raises(RegistryError, match="duplicate column transform 'concept'"):
        transforms.register("concept", Transform(country_code))


def test_an_unknown_target_table_names_the_mapping() -> None:
    site = SourceMapping.model_validate(
        {
            "site": "town",
            "files": {"people": {"pattern": "*.csv"}},
            "origin": "town.yaml",
            "tables": [{"name": "pets", "target": "pets", "from": "people", "columns": {"name": "nom"}}],
        }
    )
    with pytest.raises(ValueError, match=r"town\.yaml: mapping pets: unknown target table 'pets'"):
        compiler(site).compile(site.tables[0])
