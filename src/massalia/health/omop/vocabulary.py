"""The demo OMOP vocabulary shipped with Massalia, and look-ups that work on any vocabulary.

The demo vocabulary (``massalia/health/omop/vocab/``) is an excerpt of the real OMOP
vocabularies: every concept id, name, code, class and standard flag was copied from a public OHDSI
source (``vocab/SOURCES.md``, ``vocab/concept_sources.csv``). It is written in Athena's layout and
loaded with the Athena loader, so a real Athena download can replace it with no code change.

Examples
--------
>>> from massalia.engine import connect
>>> with connect("duckdb") as engine:
...     counts = load_demo_vocabulary(engine)
...     concept_lookup(engine, "ICD10", ["C61"])
{'C61': (45547509, 200962)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from massalia.engine import Engine
from massalia.health.omop.athena import ATHENA_TABLES, load_athena, read_athena_tables

VOCABULARY_VERSION = "Massalia demo vocabulary 2026.1 (excerpt of OMOP vocabularies, see SOURCES.md)"
"""Version string of the demo vocabulary, as in its VOCABULARY row ``None`` (for CDM_SOURCE)."""

DEMO_PACKAGE = "massalia.health.omop"
DEMO_FOLDER = "vocab"

VocabularySource = Engine | Mapping[str, pa.Table]
"""Where look-ups read the vocabulary: an engine holding the tables, or Arrow tables by name."""


@cache
def _demo_tables() -> dict[str, pa.Table]:
    with resources.as_file(resources.files(DEMO_PACKAGE).joinpath(DEMO_FOLDER)) as folder:
        return read_athena_tables(folder)


def demo_vocabulary_tables() -> dict[str, pa.Table]:
    """The demo vocabulary as Arrow tables typed like the CDM, by table name.

    Examples
    --------
    >>> tables = demo_vocabulary_tables()
    >>> tables["concept"].num_rows > 8000, sorted(tables)[:3]
    (True, ['concept', 'concept_ancestor', 'concept_class'])
    """
    return dict(_demo_tables())


def load_demo_vocabulary(engine: Engine) -> dict[str, int]:
    """Create or replace the vocabulary tables of ``engine`` with the demo vocabulary.

    All nine Athena tables (CONCEPT, CONCEPT_RELATIONSHIP, CONCEPT_ANCESTOR, VOCABULARY, DOMAIN,
    CONCEPT_CLASS, RELATIONSHIP, CONCEPT_SYNONYM, DRUG_STRENGTH) change together with the CDM
    column types; SOURCE_TO_CONCEPT_MAP is left alone. Returns the rows per table.
    """
    with resources.as_file(resources.files(DEMO_PACKAGE).joinpath(DEMO_FOLDER)) as folder:
        return load_athena(engine, folder)


def _literal_list(values: Iterable[object]) -> list[exp.Expr]:
    return [exp.convert(value) for value in values]


def concept_lookup(source: VocabularySource, vocabulary_id: str, codes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Resolve source codes of one vocabulary to ``(source_concept_id, standard_concept_id)``.

    The standard concept is the target of the valid ``Maps to`` relationship, the concept itself
    when it is standard and has no mapping row, and 0 (OMOP's "No matching concept") when a
    non-standard code maps to nothing. Where a code maps to several concepts, the smallest id is
    returned (a deterministic choice; ETLs that need all targets query CONCEPT_RELATIONSHIP).
    Codes absent from the vocabulary are absent from the result.

    Examples
    --------
    >>> concept_lookup(demo_vocabulary_tables(), "RxNorm", ["2555", "nope"])
    {'2555': (1397599, 1397599)}
    """
    wanted = sorted({str(code) for code in codes})
    if not wanted:
        return {}
    if isinstance(source, Engine):
        rows = _lookup_rows_sql(source, vocabulary_id, wanted)
    else:
        rows = _lookup_rows_arrow(source, vocabulary_id, wanted)
    flags: dict[tuple[str, int], str | None] = {}
    targets: dict[tuple[str, int], list[int]] = {}
    for code, concept_id, flag, target in rows:
        flags[(code, concept_id)] = flag
        if target is not None:
            targets.setdefault((code, concept_id), []).append(int(target))
    result: dict[str, tuple[int, int]] = {}
    for code, concept_id in sorted(flags):
        if code in result:  # the same code twice in one vocabulary: keep the smallest id
            continue
        mapped = targets.get((code, concept_id))
        if mapped:
            result[code] = (concept_id, min(mapped))
        else:
            result[code] = (concept_id, concept_id if flags[(code, concept_id)] == "S" else 0)
    return result


LookupRow = tuple[str, int, str | None, int | None]


def _lookup_rows_sql(engine: Engine, vocabulary_id: str, codes: list[str]) -> list[LookupRow]:
    query = (
        exp.select("c.concept_code", "c.concept_id", "c.standard_concept", "r.concept_id_2")
        .from_("concept AS c")
        .join(
            "concept_relationship AS r",
            on="r.concept_id_1 = c.concept_id AND r.relationship_id = 'Maps to' AND r.invalid_reason IS NULL",
            join_type="left",
        )
        .where(exp.column("vocabulary_id", table="c").eq(exp.convert(vocabulary_id)))
        .where(exp.column("concept_code", table="c").isin(*_literal_list(codes)))
    )
    table = engine.query(query)
    return list(
        zip(
            table.column(0).to_pylist(),
            table.column(1).to_pylist(),
            table.column(2).to_pylist(),
            table.column(3).to_pylist(),
            strict=True,
        )
    )


def _lookup_rows_arrow(tables: Mapping[str, pa.Table], vocabulary_id: str, codes: list[str]) -> list[LookupRow]:
    concept = tables["concept"]
    mask = pc.and_(
        pc.equal(concept["vocabulary_id"], vocabulary_id), pc.is_in(concept["concept_code"], pa.array(codes))
    )
    hits = concept.filter(mask).select(["concept_code", "concept_id", "standard_concept"])
    relationship = tables["concept_relationship"]
    maps_to = relationship.filter(
        pc.and_(
            pc.and_(pc.equal(relationship["relationship_id"], "Maps to"), pc.is_null(relationship["invalid_reason"])),
            pc.is_in(relationship["concept_id_1"], hits["concept_id"].combine_chunks()),
        )
    )
    targets: dict[int, list[int | None]] = {}
    for one, two in zip(maps_to["concept_id_1"].to_pylist(), maps_to["concept_id_2"].to_pylist(), strict=True):
        targets.setdefault(one, []).append(two)
    rows: list[LookupRow] = []
    for code, concept_id, flag in zip(
        hits["concept_code"].to_pylist(),
        hits["concept_id"].to_pylist(),
        hits["standard_concept"].to_pylist(),
        strict=True,
    ):
        for target in targets.get(concept_id, [None]):  # a code without a "Maps to" keeps a None target
            rows.append((code, concept_id, flag, target))
    return rows


def descendants(source: VocabularySource, concept_ids: Iterable[int]) -> set[int]:
    """Concepts below ``concept_ids`` in CONCEPT_ANCESTOR, the concepts themselves included.

    A standard concept is its own descendant (Athena's level-0 rows); a non-standard concept has
    no ancestor rows and yields nothing.

    Examples
    --------
    >>> 36528448 in descendants(demo_vocabulary_tables(), [200962])  # an ICDO3 prostate tumour
    True
    """
    ids = sorted({int(concept_id) for concept_id in concept_ids})
    if not ids:
        return set()
    if isinstance(source, Engine):
        query = (
            exp.select("descendant_concept_id")
            .distinct()
            .from_("concept_ancestor")
            .where(exp.column("ancestor_concept_id").isin(*_literal_list(ids)))
        )
        return {int(value) for value in source.query(query).column(0).to_pylist()}
    ancestor = source["concept_ancestor"]
    below = ancestor.filter(pc.is_in(ancestor["ancestor_concept_id"], pa.array(ids, pa.int32())))
    return {int(value) for value in below["descendant_concept_id"].to_pylist()}


__all__ = [
    "ATHENA_TABLES",
    "VOCABULARY_VERSION",
    "concept_lookup",
    "demo_vocabulary_tables",
    "descendants",
    "load_demo_vocabulary",
]
