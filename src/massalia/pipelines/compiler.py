"""Compile a source's table mapping into set-based SQL: column expressions, lookups and rules.

Every transform of :class:`~massalia.pipelines.mapping.ColumnSpec` becomes one SQL expression over
the staged source rows (alias ``s``) and, where it needs one, a ``LEFT JOIN`` on a small lookup
table (codes → concepts, source keys → ids). Each transform also contributes the validation rules
that catch its bad input (unparsable date, unknown code, missing required value, over-long text),
so the rules are data derived from the mapping and the target specification, never ad-hoc checks.

Transforms are small functions in a :class:`~massalia.plugins.Registry` (:func:`core_transforms` gives
the generic ones); a domain adds its own before it builds its pipeline (health: vocabulary lookups, see
:mod:`massalia.health.etl.transforms`). The target tables are the domain's, reached through the
``target_table`` callback and described by the :class:`TargetTable` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from massalia.pipelines.mapping import ColumnSpec, FileFormat, OnUnmapped, SourceMapping, TableMapping
from massalia.pipelines.rules import Rule
from massalia.pipelines.runner import FILE_NO
from massalia.plugins import Registry
from massalia.sources import SOURCE_LINE

LINE_BITS = 31
SLOT_BITS = 10
"""Row ids: ``((file_no << 31) + line) << 10 | mapping slot << 4 | unpivot index`` — stable, unique."""


class TargetField(Protocol):
    """What the compiler needs to know of one field of a target table."""

    @property
    def name(self) -> str:
        """The field's name."""

    @property
    def required(self) -> bool:
        """Whether a row needs a value in this field."""

    @property
    def sql_type(self) -> str:
        """The field's type in the house dialect (``DATE``, ``BIGINT``...)."""

    @property
    def max_length(self) -> int | None:
        """The longest text the field holds, when bounded."""


class TargetTable(Protocol):
    """What the compiler needs to know of one target table (health: an OMOP CDM table)."""

    @property
    def fields(self) -> Sequence[TargetField]:
        """The table's fields, in order."""

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The fields of the table's key (filled by the pipeline)."""

    def field(self, name: str) -> TargetField:
        """The field named ``name``; an unknown one raises ``KeyError``."""


def sql_text(value: object) -> str:
    """A SQL literal for ``value`` (strings quoted, numbers as they are, ``None`` as NULL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def column_ref(name: str) -> str:
    """Quoted reference to a source column of the staged rows (names come from site files)."""
    return 's."' + name.replace('"', '""') + '"'


def row_id_sql(slot: int, sub: str = "0") -> str:
    """Stable row id of the row made by mapping ``slot`` from the current source row."""
    return (
        f"((CAST(s.{FILE_NO} AS BIGINT) * {1 << LINE_BITS} + s.{SOURCE_LINE}) * {1 << SLOT_BITS} + {slot * 16} + {sub})"
    )


@dataclass(frozen=True)
class Lookup:
    """A lookup table the compiled SQL joins (created once per run by the pipeline)."""

    kind: str
    """``concept``, ``local`` (SOURCE_TO_CONCEPT_MAP), ``local_attribute`` or ``id``."""
    vocabularies: tuple[str, ...] = ()
    relationship: str = "Maps to"
    id_kind: str = ""


@dataclass
class CompiledMapping:
    """SQL pieces of one table mapping, ready for :meth:`RunContext.validate`."""

    mapping: TableMapping
    target: TargetTable
    source_sql: str
    columns: list[tuple[str, str]]
    rules: list[Rule]
    joins: list[tuple[Lookup, str, str]] = field(default_factory=list)
    """``(lookup, alias, key expression)`` for each join of ``source_sql``."""


class MappingCompiler:
    """Compile the table mappings of one source.

    Parameters
    ----------
    site
        The source mapping.
    lookup_table
        Callback giving the engine table that holds a :class:`Lookup` (created on first request).
    staged_table
        Callback giving the staged table of a file kind of the site.
    target_table
        Callback giving the target table a mapping writes (its ``target:``); unknown names raise ``KeyError``.
    transforms
        The transforms a column may use (default: :func:`core_transforms`); a domain passes the core's
        plus its own.
    """

    def __init__(
        self,
        site: SourceMapping,
        lookup_table: Callable[[Lookup], str],
        staged_table: Callable[[str], str],
        *,
        target_table: Callable[[str], TargetTable],
        transforms: Registry[Transform] | None = None,
    ) -> None:
        self.site = site
        self.lookup_table = lookup_table
        self.staged_table = staged_table
        self.target_table = target_table
        self.transforms = core_transforms() if transforms is None else transforms
        self.warnings: list[str] = []

    def constant(self, column: str, value: object, where: str) -> object:
        """A literal written in the mapping for ``column``, as the target will hold it.

        The core keeps it as written; a domain overrides this to check it (health: a concept id absent
        from the vocabulary becomes 0 with a warning). ``where`` names the mapping and column for messages.
        """
        return value

    def auto_filled(self, target: TargetTable, target_field: TargetField) -> bool:
        """Whether the pipeline fills a required ``target_field`` itself (no column needed): its key."""
        return target_field.name in target.primary_key

    def compile(
        self, mapping: TableMapping, *, own_id: str | None = None, where: Sequence[str] = ()
    ) -> CompiledMapping:
        """Compile one mapping.

        ``own_id`` is the id expression of a mapping that defines records; ``where`` adds predicates
        on the source rows ``s`` (e.g. leave out rows the file checks refused).
        """
        try:
            target = self.target_table(mapping.target)
        except KeyError:
            raise ValueError(
                f"{self.site.origin}: mapping {mapping.name}: unknown target table {mapping.target!r}"
            ) from None
        fmt = self.site.file_format(mapping.source)
        compiled = CompiledMapping(mapping, target, "", [], [])
        unpivot_sub = "s._unpivot_index" if mapping.unpivot else "0"
        for name, spec in mapping.columns.items():
            try:
                target_field = target.field(name)
            except KeyError:
                raise ValueError(
                    f"{self.site.origin}: mapping {mapping.name}: {mapping.target} has no field {name!r}"
                ) from None
            if spec.transform == "id" and spec.id == mapping.defines:
                expression = own_id or "CAST(0 AS BIGINT)"
            else:
                expression = self._expression(compiled, name, spec, target_field, fmt, unpivot_sub)
            compiled.columns.append((name, expression))
        slot = self.site.slot(mapping.name)
        compiled.columns.append(("_row_id", row_id_sql(slot, unpivot_sub)))
        compiled.columns.append((FILE_NO, f"s.{FILE_NO}"))
        if mapping.key:
            compiled.columns.append(("_key", f"CAST({column_ref(mapping.key)} AS VARCHAR)"))
        declared = set(mapping.columns)
        for target_field in target.fields:
            if (
                target_field.required
                and target_field.name not in declared
                and not self.auto_filled(target, target_field)
            ):
                raise ValueError(
                    f"{self.site.origin}: mapping {mapping.name}: required field "
                    f"{mapping.target}.{target_field.name} has no column"
                )
        compiled.source_sql = self._from(compiled, where)
        compiled.rules = [r for r in compiled.rules if not self._covered(mapping, r)]
        return compiled

    def _covered(self, mapping: TableMapping, rule: Rule) -> bool:
        """Whether the file-level checks already refuse what ``rule`` would (no need to check twice)."""
        spec = self.site.files[mapping.source]
        column = rule.source_field
        if column is None or mapping.unpivot:
            return False
        if rule.kind == "required":
            return column in spec.required
        if rule.kind == "invalid_date":
            return column in spec.dates or column in spec.datetimes
        if rule.kind == "invalid_number":
            return column in spec.numbers
        return False

    def _from(self, compiled: CompiledMapping, where: Sequence[str]) -> str:
        mapping = compiled.mapping
        base = self.staged_table(mapping.source)
        if mapping.unpivot:
            unpivot = mapping.unpivot
            pairs = [(label, f"CAST({column_ref(column)} AS VARCHAR)") for column, label in unpivot.columns.items()]
            pairs += [(label, f"CAST(({sql}) AS VARCHAR)") for label, sql in unpivot.expressions.items()]
            parts = [
                f"SELECT s.*, {sql_text(label)} AS {unpivot.name}, {value} AS {unpivot.value}, "
                f"{index} AS _unpivot_index FROM {base} AS s WHERE nullif({value}, '') IS NOT NULL"
                for index, (label, value) in enumerate(pairs)
            ]
            if len(parts) > 16:
                raise ValueError(f"mapping {mapping.name}: at most 16 unpivoted columns")
            sql = "(" + " UNION ALL ".join(parts) + ") AS s"
        else:
            sql = f"{base} AS s"
        for lookup, alias, key in compiled.joins:
            sql += f" LEFT JOIN {self.lookup_table(lookup)} AS {alias} ON {alias}.code = {key}"
        predicates = ([f"({mapping.where})"] if mapping.where else []) + [f"({w})" for w in where]
        if predicates:
            sql += " WHERE " + " AND ".join(predicates)
        return sql

    def join(self, compiled: CompiledMapping, lookup: Lookup, key: str) -> tuple[str, bool]:
        """Alias of the join for ``(lookup, key)``; second value: whether it is new."""
        for existing, alias, existing_key in compiled.joins:
            if existing == lookup and existing_key == key:
                return alias, False
        alias = f"j{len(compiled.joins)}"
        compiled.joins.append((lookup, alias, key))
        return alias, True

    def _expression(
        self,
        compiled: CompiledMapping,
        name: str,
        spec: ColumnSpec,
        target_field: TargetField,
        fmt: FileFormat,
        unpivot_sub: str,
    ) -> str:
        transform = self.transforms.get(spec.transform)
        source = spec.key if spec.transform == "id" else spec.source
        raw = column_ref(source) if isinstance(source, str) and transform.reads_source else None
        if spec.or_else and raw is not None:
            raw = f"coalesce({raw}, {column_ref(spec.or_else)})"
        required = spec.required if spec.required is not None else target_field.required
        if raw is not None and required and transform.required_rule:
            compiled.rules.append(Rule("required", name, value=raw, source_field=source))
        column = Column(
            self,
            compiled,
            name,
            spec,
            target_field,
            fmt,
            unpivot_sub,
            source,
            raw,
            required,
            spec.on_unmapped or compiled.mapping.on_unmapped,
        )
        return transform.expression(column)

    def local_target(self, compiled: CompiledMapping, code: str, attribute: str) -> str:
        """What a local code stands for (``attribute`` of the site's local-code list)."""
        alias, _ = self.join(compiled, Lookup("local_attribute", (self.local_vocabulary(),)), code)
        return f"{alias}.{attribute}"

    def local_vocabulary(self) -> str:
        """The vocabulary name of the source's local codes; a source without ``local_codes:`` is refused."""
        if self.site.local_codes is None:
            raise ValueError(f"{self.site.origin}: a local transform needs local_codes: in the site mapping")
        return self.site.local_codes.vocabulary_id


@dataclass(frozen=True)
class Column:
    """One column being compiled: what a transform function receives."""

    compiler: MappingCompiler
    compiled: CompiledMapping
    name: str
    """The target field."""
    spec: ColumnSpec
    target_field: TargetField
    fmt: FileFormat
    """The effective format of the source file."""
    unpivot_sub: str
    """SQL of the unpivot index of the row (``0`` without unpivot), part of row ids."""
    source: Any
    """The transform's argument (the key column for ``id``)."""
    raw: str | None
    """SQL of the raw source value (``None`` for transforms that read no column)."""
    required: bool
    on_unmapped: OnUnmapped

    @property
    def where(self) -> str:
        """``<mapping>.<field>``, for messages."""
        return f"{self.compiled.mapping.name}.{self.name}"

    @property
    def raw_or_null(self) -> str:
        """The raw value's SQL, or ``NULL``."""
        return self.raw or "NULL"

    def rule(self, kind: str, **options: Any) -> None:
        """Add a validation rule on this column (see :class:`~massalia.pipelines.rules.Rule`)."""
        self.compiled.rules.append(Rule(kind, self.name, **options))

    def constant(self, value: object) -> object:
        """A literal of the mapping, as the target holds it (:meth:`MappingCompiler.constant`)."""
        return self.compiler.constant(self.name, value, self.where)


@dataclass(frozen=True)
class Transform:
    """A column transform: the function giving its SQL expression, and how the compiler prepares it.

    Parameters
    ----------
    expression
        Gives the SQL expression of the column (and adds its rules through :meth:`Column.rule`).
    reads_source
        The transform's argument is a source column (its raw value is ``Column.raw``); ``False`` for literals.
    required_rule
        The compiler adds the ``required`` rule itself when the target field is required; ``False`` when
        the transform adds its own (``map``).
    """

    expression: Callable[[Column], str]
    reads_source: bool = True
    required_rule: bool = True


def _text(column: Column) -> str:
    limit = column.target_field.max_length
    if limit:
        column.rule("too_long", value=column.raw_or_null, limit=str(limit), source_field=column.source)
    return f"CAST({column.raw} AS VARCHAR)"


def _const(column: Column) -> str:
    return sql_text(column.constant(column.spec.const))


def _sql(column: Column) -> str:
    return f"({column.spec.sql})"


def _date(column: Column) -> str:
    spec, raw = column.spec, column.raw_or_null
    pattern = spec.format or (column.fmt.date if spec.transform == "date" else column.fmt.datetime)
    parsed = parse_datetime(raw, pattern)
    if spec.part:
        expression = f"CAST(extract({spec.part} FROM {parsed}) AS INTEGER)"
    elif column.target_field.sql_type == "DATE":
        expression = f"CAST({parsed} AS DATE)"
    else:
        expression = parsed
    # Rules test the column itself, so the value is parsed once per row whatever the rules.
    detail = f"(expected {pattern})"
    column.rule("invalid_date", value=raw, result=expression, detail=detail, source_field=column.source)
    if not spec.part:
        column.rule("date_before", value=raw, result=expression, limit="1900-01-01", source_field=column.source)
        column.rule("date_in_future", value=raw, result=expression, source_field=column.source)
    return expression


def _number(column: Column) -> str:
    spec = column.spec
    parsed = parse_number(column.raw_or_null, column.fmt.decimal, "DOUBLE" if spec.transform == "number" else "BIGINT")
    if spec.scale_by_local:
        lookup = Lookup("local_attribute", (column.compiler.local_vocabulary(),))
        alias, _ = column.compiler.join(column.compiled, lookup, f"CAST({column_ref(spec.scale_by_local)} AS VARCHAR)")
        parsed = f"({parsed} * coalesce(TRY_CAST({alias}.factor AS DOUBLE), 1.0))"
    column.rule("invalid_number", value=column.raw_or_null, result=parsed, source_field=column.source)
    return parsed


def _map(column: Column) -> str:
    spec = column.spec
    values = {key: column.constant(value) for key, value in (spec.values or {}).items()}
    cases = " ".join(f"WHEN {sql_text(str(k))} THEN {sql_text(v)}" for k, v in values.items())
    result = f"CASE CAST({column.raw} AS VARCHAR) {cases} ELSE {sql_text(spec.default)} END"
    if column.required:
        column.rule("required", value=column.raw_or_null, source_field=column.source)
    if "default" not in spec.model_fields_set:
        allowed = ", ".join(str(k) for k in values)
        column.rule(
            "unknown_value",
            value=column.raw_or_null,
            result=result,
            detail=f"(allowed: {allowed})",
            source_field=column.source,
            action="reject" if column.required else "flag",
        )
    return result


def _local_attribute(column: Column) -> str:
    lookup = Lookup("local_attribute", (column.compiler.local_vocabulary(),))
    alias, _ = column.compiler.join(column.compiled, lookup, f"CAST({column.raw} AS VARCHAR)")
    return f"{alias}.{column.spec.attribute}"


def _id(column: Column) -> str:
    spec = column.spec
    lookup = Lookup("id", id_kind=spec.id or "")
    key = f"CAST({column_ref(spec.key or '')} AS VARCHAR)"
    alias, _ = column.compiler.join(column.compiled, lookup, key)
    result = f"{alias}.id"
    column.rule(
        "unknown_reference",
        value=column_ref(spec.key or ""),
        result=result,
        action="reject" if column.required else "flag",
        detail=f"(no {spec.id} with this key)",
        source_field=spec.key,
    )
    return result


def _row_id(column: Column) -> str:
    return row_id_sql(column.compiler.site.slot(column.spec.row_id or ""), column.unpivot_sub)


def core_transforms() -> Registry[Transform]:
    """A new registry holding the generic transforms; a domain registers its own into it.

    Examples
    --------
    >>> registry = core_transforms()
    >>> "date" in registry, "concept" in registry
    (True, False)
    >>> registry.get("concept")
    Traceback (most recent call last):
    ...
    massalia.plugins.RegistryError: unknown column transform 'concept' (known: text, const, sql, date, \
datetime, number, integer, map, local_attribute, id, row_id)
    """
    registry: Registry[Transform] = Registry("column transform")
    registry.register("text", Transform(_text))
    registry.register("const", Transform(_const, reads_source=False))
    registry.register("sql", Transform(_sql, reads_source=False))
    registry.register("date", Transform(_date))
    registry.register("datetime", Transform(_date))
    registry.register("number", Transform(_number))
    registry.register("integer", Transform(_number))
    registry.register("map", Transform(_map, required_rule=False))
    registry.register("local_attribute", Transform(_local_attribute))
    registry.register("id", Transform(_id))
    registry.register("row_id", Transform(_row_id, reads_source=False))
    return registry


def parse_number(raw: str, decimal: str, kind: str = "DOUBLE") -> str:
    """SQL parsing a number written with ``decimal`` as separator (NULL when it does not parse).

    A leading comparator (``<0.5``) is dropped (health's ``operator`` transform gives its concept).
    """
    text = f"CAST({raw} AS VARCHAR)"
    stripped = f"ltrim({text}, '<>= ')"
    if decimal != ".":
        text = f"replace({text}, {sql_text(decimal)}, '.')"
        stripped = f"replace({stripped}, {sql_text(decimal)}, '.')"
    # The comparator is stripped only when the plain cast fails (rare), a regex per value costs too much.
    return f"coalesce(TRY_CAST({text} AS {kind}), TRY_CAST({stripped} AS {kind}))"


def parse_datetime(raw: str, pattern: str) -> str:
    """SQL parsing ``raw`` written as ``pattern`` into a TIMESTAMP (NULL when it does not parse).

    ``pattern`` is a strftime pattern, or ``yyyymmdd-int`` (an integer such as 20230314) or
    ``epoch-s`` (seconds since 1970-01-01 UTC).
    """
    if pattern == "epoch-s":
        return f"(TIMESTAMP '1970-01-01 00:00:00' + to_seconds(TRY_CAST({raw} AS BIGINT)))"
    if pattern == "yyyymmdd-int":
        pattern = "%Y%m%d"
    return f"try_strptime(CAST({raw} AS VARCHAR), {sql_text(pattern)})"
