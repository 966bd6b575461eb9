"""The vocabulary browser's guarded service: search concepts, and one concept with its hierarchy and mappings.

The OMOP vocabulary (``concept``, ``concept_ancestor``, ``concept_relationship``) is reference metadata: codes
and names shared by every warehouse, no person in it. Reading it is still an act of the platform, checked
like any other (``health.vocabulary.read``: every signed-in role; anonymous visitors and ``public`` get
nothing, since the vocabulary loaded may be licensed, e.g. Athena's). It is not audited: nothing personal
is read, and audit entries for every keystroke of a search box would drown the trail.

Every query is a SQLGlot expression; the search text is matched literally (its ``%`` and ``_`` are no
wildcards) and every list is bounded and paginated here, sorted by a whitelisted column.

Examples
--------
>>> page = search_concepts(caller, warehouse, ConceptSearch(text="ovary"))  # doctest: +SKIP
>>> page.items[0]["concept_name"]  # doctest: +SKIP
'Malignant tumor of ovary'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest, NotFound
from massalia.health.cohorts.sqltext import LIKE_ESCAPE
from massalia.health.records import json_value

ACTION = "health.vocabulary.read"
MAX_PAGE = 500
"""Most concepts (or related concepts) one call returns."""
MAX_OFFSET = 1_000_000
MAX_TEXT = 200
CONCEPT_COLUMNS = (
    "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
    "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
)  # fmt: skip
ConceptSort = Literal["concept_name", "concept_id", "concept_code", "domain_id", "vocabulary_id"]
SORTS: tuple[str, ...] = ("concept_name", "concept_id", "concept_code", "domain_id", "vocabulary_id")
MAPPING_RELATIONSHIPS = ("Maps to", "Mapped from", "Maps to value", "Value mapped from")
"""Relationships shown first in a concept's detail: how source codes reach standard concepts."""


@dataclass(frozen=True)
class ConceptSearch:
    """What a concept search asks for: a name or code, filters, a sort and a page.

    ``text`` matches a concept's name (case-insensitive, anywhere) or its code (exactly, or as a prefix); a
    number also matches the concept id itself.
    """

    text: str | None = None
    domain: str | None = None
    vocabulary: str | None = None
    concept_class: str | None = None
    standard_only: bool = False
    sort: str = "concept_name"
    descending: bool = False
    offset: int = 0
    limit: int = 50

    def __post_init__(self) -> None:
        for name in ("text", "domain", "vocabulary", "concept_class"):
            value = getattr(self, name)
            if value is not None and (len(value) > MAX_TEXT or not value.isprintable()):
                raise InvalidRequest(f"{name} must be at most {MAX_TEXT} printable characters")
        if self.sort not in SORTS:
            raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1 to {MAX_PAGE}, got {self.limit}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise InvalidRequest(f"offset must be 0 to {MAX_OFFSET}, got {self.offset}")


@dataclass(frozen=True)
class ConceptPage:
    """One page of concepts and how many match in all."""

    items: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class ConceptDetail:
    """A concept, its ancestors and descendants (with their distance), and its relationships.

    Each list holds at most ``limit`` entries, closest first; ``totals`` says how many exist in all.
    """

    concept: dict[str, Any]
    ancestors: list[dict[str, Any]] = field(default_factory=list)
    descendants: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def _like(text: str) -> exp.Expr:
    """A pattern matching ``text`` literally anywhere (lowercased), with the house escape character."""
    escaped = text.lower().replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", f"{LIKE_ESCAPE}%")
    return exp.Literal.string("%" + escaped.replace("_", f"{LIKE_ESCAPE}_") + "%")


def _matches(column: exp.Expr, text: str, *, prefix: bool = False) -> exp.Expr:
    pattern = _like(text)
    if prefix:  # anchored at the start: drop the leading wildcard
        pattern = exp.Literal.string(pattern.this[1:])
    like = exp.Like(this=exp.Lower(this=column), expression=pattern)
    return exp.Escape(this=like, expression=exp.Literal.string(LIKE_ESCAPE))


def _conditions(search: ConceptSearch) -> list[exp.Expr]:
    c = "c"
    conditions: list[exp.Expr] = []
    text = (search.text or "").strip()
    if text:
        code = exp.column("concept_code", table=c)  # a code matches as a prefix: C50 finds C50.9
        found: list[exp.Expr] = [_matches(exp.column("concept_name", table=c), text), _matches(code, text, prefix=True)]
        if text.isdigit() and len(text) <= 18:
            found.append(exp.column("concept_id", table=c).eq(exp.Literal.number(int(text))))
        conditions.append(exp.paren(exp.or_(*found)))
    for column, value in (("domain_id", search.domain), ("vocabulary_id", search.vocabulary),
                          ("concept_class_id", search.concept_class)):  # fmt: skip
        if value:
            conditions.append(exp.column(column, table=c).eq(exp.Literal.string(value)))
    if search.standard_only:
        conditions.append(exp.column("standard_concept", table=c).eq(exp.Literal.string("S")))
    return conditions


def _rows(engine: Engine, query: exp.Select) -> list[dict[str, Any]]:
    return [{key: json_value(value) for key, value in row.items()} for row in engine.query(query).to_pylist()]


def _concepts() -> exp.Select:
    return exp.select(*(exp.column(name, table="c") for name in CONCEPT_COLUMNS)).from_(
        exp.to_table("concept").as_("c")
    )


def _require_vocabulary(engine: Engine) -> None:
    if not engine.table_exists("concept"):
        raise NotFound("No vocabulary in the warehouse yet (massalia init loads the demo vocabulary).")


def search_concepts(caller: Caller, engine: Engine, search: ConceptSearch) -> ConceptPage:
    """Concepts matching ``search``, one page, sorted by a whitelisted column (``health.vocabulary.read``).

    Ties are broken by ``concept_id``, so pages never overlap or skip a concept.
    """
    caller.authorize(ACTION, detail={"channel": caller.channel} if caller.channel else None)
    _require_vocabulary(engine)
    conditions = _conditions(search)
    where = exp.and_(*conditions) if conditions else None
    counted = exp.select(exp.Count(this=exp.Star()).as_("n")).from_(exp.to_table("concept").as_("c"))
    total = engine.scalar_int(counted.where(where) if where is not None else counted)
    order = [exp.Ordered(this=exp.column(search.sort, table="c"), desc=search.descending)]
    if search.sort != "concept_id":
        order.append(exp.Ordered(this=exp.column("concept_id", table="c"), desc=search.descending))
    query = _concepts()
    if where is not None:
        query = query.where(where)
    query = query.order_by(*order).limit(search.limit).offset(search.offset)
    return ConceptPage(_rows(engine, query), total)


def _related(
    engine: Engine, want: Literal["ancestors", "descendants"], concept_id: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The ancestors or descendants of ``concept_id`` (itself left out), closest first, and how many in all."""
    other, this = ("ancestor_concept_id", "descendant_concept_id")
    if want == "descendants":
        other, this = this, other
    where = exp.and_(
        exp.column(this, table="ca").eq(exp.Literal.number(concept_id)),
        exp.column(other, table="ca").neq(exp.Literal.number(concept_id)),
    )
    base = exp.to_table("concept_ancestor").as_("ca")
    total = engine.scalar_int(exp.select(exp.Count(this=exp.Star())).from_(base).where(where))
    levels = [exp.column(name, table="ca") for name in ("min_levels_of_separation", "max_levels_of_separation")]
    order = [levels[0], exp.column("concept_name", table="c"), exp.column("concept_id", table="c")]
    query = (
        _concepts()
        .select(*levels)
        .join(base, on=exp.column(other, table="ca").eq(exp.column("concept_id", table="c")))
        .where(where)
        .order_by(*order)
        .limit(limit)
    )
    return _rows(engine, query), total


def _relationships(engine: Engine, concept_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Valid relationships of ``concept_id`` (mappings first), each with the related concept's name."""
    where = exp.and_(
        exp.column("concept_id_1", table="r").eq(exp.Literal.number(concept_id)),
        exp.column("invalid_reason", table="r").is_(exp.null()),
    )
    base = exp.to_table("concept_relationship").as_("r")
    total = engine.scalar_int(exp.select(exp.Count(this=exp.Star())).from_(base).where(where))
    mapping_first = exp.Case(
        ifs=[exp.If(this=exp.column("relationship_id", table="r").isin(*(exp.Literal.string(name) for name in
                                                                         MAPPING_RELATIONSHIPS)),
                    true=exp.Literal.number(0))],
        default=exp.Literal.number(1),
    )  # fmt: skip
    query = (
        _concepts()
        .select(exp.column("relationship_id", table="r"))
        .from_(base)
        .join(exp.to_table("concept").as_("c"), on="c.concept_id = r.concept_id_2")
        .where(where)
        .order_by(mapping_first, exp.column("relationship_id", table="r"), exp.column("concept_id", table="c"))
        .limit(limit)
    )
    return _rows(engine, query), total


def concept_detail(
    caller: Caller,
    engine: Engine,
    concept_id: int,
    *,
    limit: int = 100,
) -> ConceptDetail:
    """One concept with its ancestors, descendants and relationships, ``limit`` of each (``health.vocabulary.read``).

    Raises
    ------
    NotFound
        No concept ``concept_id`` (or no vocabulary loaded).
    """
    if isinstance(concept_id, bool) or not isinstance(concept_id, int) or not -(2**31) <= concept_id < 2**31:
        raise InvalidRequest("concept_id must be a 32-bit integer")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be 1 to {MAX_PAGE}, got {limit}")
    caller.authorize(ACTION, detail={"channel": caller.channel} if caller.channel else None)
    _require_vocabulary(engine)
    found = _rows(engine, _concepts().where(exp.column("concept_id", table="c").eq(exp.Literal.number(concept_id))))
    if not found:
        raise NotFound(f"No concept {concept_id}.")
    detail = ConceptDetail(concept=found[0])
    if engine.table_exists("concept_ancestor"):
        ancestors, n_ancestors = _related(engine, "ancestors", concept_id, limit)
        descendants, n_descendants = _related(engine, "descendants", concept_id, limit)
        detail.ancestors.extend(ancestors)
        detail.descendants.extend(descendants)
        detail.totals.update(ancestors=n_ancestors, descendants=n_descendants)
    if engine.table_exists("concept_relationship"):
        relationships, n_relationships = _relationships(engine, concept_id, limit)
        detail.relationships.extend(relationships)
        detail.totals["relationships"] = n_relationships
    return detail
