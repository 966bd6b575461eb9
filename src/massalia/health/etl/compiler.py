"""Compile a site's table mapping into set-based SQL: column expressions, lookups and rules.

Every transform of :class:`~massalia.health.etl.mapping.ColumnSpec` becomes one SQL expression over
the staged source rows (alias ``s``) and, where it needs one, a ``LEFT JOIN`` on a small lookup
table (codes → concepts, source keys → ids). Each transform also contributes the validation rules
that catch its bad input (unparsable date, unknown code, missing required value, over-long text),
so the rules are data derived from the mapping and the CDM specification, never ad-hoc checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from massalia.health.etl.mapping import ColumnSpec, FileFormat, SiteMapping, TableMapping
from massalia.health.omop.schema import FieldSpec, TableSpec, cdm_table
from massalia.pipelines.rules import Rule
from massalia.pipelines.runner import FILE_NO
from massalia.sources import SOURCE_LINE

LINE_BITS = 31
SLOT_BITS = 10
"""Row ids: ``((file_no << 31) + line) << 10 | mapping slot << 4 | unpivot index`` — stable, unique."""

OPERATORS = {"<": 4171756, "<=": 4171754, "=": 4172703, ">=": 4171755, ">": 4172704}
"""Meas Value Operator concepts for a comparator written before a number (``<0.5``)."""

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
    return (f"((CAST(s.{FILE_NO} AS BIGINT) * {1 << LINE_BITS} + s.{SOURCE_LINE}) * {1 << SLOT_BITS}"
            f" + {slot * 16} + {sub})")


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
    target: TableSpec
    source_sql: str
    columns: list[tuple[str, str]]
    rules: list[Rule]
    joins: list[tuple[Lookup, str, str]] = field(default_factory=list)
    """``(lookup, alias, key expression)`` for each join of ``source_sql``."""


class MappingCompiler:
    """Compile the table mappings of one site.

    Parameters
    ----------
    site
        The site mapping.
    lookup_table
        Callback giving the engine table that holds a :class:`Lookup` (created on first request).
    staged_table
        Callback giving the staged table of a file kind of the site.
    """

    def __init__(
        self,
        site: SiteMapping,
        lookup_table: Callable[[Lookup], str],
        staged_table: Callable[[str], str],
        *,
        known_concepts: set[int] | None = None,
    ) -> None:
        self.site = site
        self.lookup_table = lookup_table
        self.staged_table = staged_table
        self.known_concepts = known_concepts
        self.warnings: list[str] = []

    def _concept_constant(self, value: object, where: str) -> object:
        """A concept id written in the mapping, or 0 (with a warning) when the vocabulary lacks it.

        Writing an id absent from CONCEPT would break every foreign-key check downstream; 0 is the
        OMOP "no matching concept" and the warning tells the data team which id to add.
        """
        if self.known_concepts is None or value is None or not isinstance(value, int) or value == 0:
            return value
        if value not in self.known_concepts:
            message = f"{self.site.site}: {where}: concept {value} is not in the vocabulary; written as 0"
            if message not in self.warnings:
                self.warnings.append(message)
            return 0
        return value

    def compile(
        self, mapping: TableMapping, *, own_id: str | None = None, where: Sequence[str] = ()
    ) -> CompiledMapping:
        """Compile one mapping.

        ``own_id`` is the id expression of a mapping that defines records; ``where`` adds predicates
        on the source rows ``s`` (e.g. leave out rows the file checks refused).
        """
        target = cdm_table(mapping.target)
        fmt = self.site.file_format(mapping.source)
        compiled = CompiledMapping(mapping, target, "", [], [])
        unpivot_sub = "s._unpivot_index" if mapping.unpivot else "0"
        for name, spec in mapping.columns.items():
            try:
                target_field = target.field(name)
            except KeyError:
                raise ValueError(f"{self.site.origin}: mapping {mapping.name}: {mapping.target} has no field "
                                 f"{name!r}") from None
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
            if target_field.required and target_field.name not in declared and not self._auto(target, target_field):
                raise ValueError(f"{self.site.origin}: mapping {mapping.name}: required field "
                                 f"{mapping.target}.{target_field.name} has no column")
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

    @staticmethod
    def _auto(target: TableSpec, target_field: FieldSpec) -> bool:
        """Fields the pipeline fills itself: the row id and concept ids defaulting to 0."""
        return target_field.name in target.primary_key or target_field.name.endswith("concept_id")

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

    def _join(self, compiled: CompiledMapping, lookup: Lookup, key: str) -> tuple[str, bool]:
        """Alias of the join for ``(lookup, key)``; second value: whether it is new."""
        for existing, alias, existing_key in compiled.joins:
            if existing == lookup and existing_key == key:
                return alias, False
        alias = f"j{len(compiled.joins)}"
        compiled.joins.append((lookup, alias, key))
        return alias, True

    def _expression(
        self, compiled: CompiledMapping, name: str, spec: ColumnSpec, target_field: FieldSpec, fmt: FileFormat,
        unpivot_sub: str,
    ) -> str:
        transform = spec.transform
        source = spec.source
        rules = compiled.rules
        if transform == "id":
            source = spec.key
        raw = column_ref(source) if isinstance(source, str) and transform not in ("const", "sql", "row_id") else None
        if spec.or_else and raw is not None:
            raw = f"coalesce({raw}, {column_ref(spec.or_else)})"
        required = spec.required if spec.required is not None else target_field.required
        if raw is not None and required and transform not in ("map",):
            rules.append(Rule("required", name, value=raw, source_field=source))
        on_unmapped = spec.on_unmapped or compiled.mapping.on_unmapped
        if transform == "text":
            limit = target_field.max_length
            if limit:
                rules.append(Rule("too_long", name, value=raw or "NULL", limit=str(limit), source_field=source))
            return f"CAST({raw} AS VARCHAR)"
        is_concept = name.endswith("concept_id")
        where = f"{compiled.mapping.name}.{name}"
        if transform == "const":
            return sql_text(self._concept_constant(spec.const, where) if is_concept else spec.const)
        if transform == "sql":
            return f"({spec.sql})"
        if transform in ("date", "datetime"):
            pattern = spec.format or (fmt.date if transform == "date" else fmt.datetime)
            parsed = parse_datetime(raw or "NULL", pattern)
            if spec.part:
                expression = f"CAST(extract({spec.part} FROM {parsed}) AS INTEGER)"
            elif target_field.sql_type == "DATE":
                expression = f"CAST({parsed} AS DATE)"
            else:
                expression = parsed
            # Rules test the column itself, so the value is parsed once per row whatever the rules.
            detail = f"(expected {pattern})"
            rules.append(Rule("invalid_date", name, value=raw or "NULL", result=expression, detail=detail,
                              source_field=source))
            if not spec.part:
                rules.append(Rule("date_before", name, value=raw or "NULL", result=expression, limit="1900-01-01",
                                  source_field=source))
                rules.append(Rule("date_in_future", name, value=raw or "NULL", result=expression,
                                  source_field=source))
            return expression
        if transform in ("number", "integer"):
            parsed = parse_number(raw or "NULL", fmt.decimal, "DOUBLE" if transform == "number" else "BIGINT")
            if spec.scale_by_local:
                lookup = Lookup("local_attribute", (self._local_vocabulary(),))
                alias, _ = self._join(compiled, lookup, f"CAST({column_ref(spec.scale_by_local)} AS VARCHAR)")
                parsed = f"({parsed} * coalesce(TRY_CAST({alias}.factor AS DOUBLE), 1.0))"
            rules.append(Rule("invalid_number", name, value=raw or "NULL", result=parsed, source_field=source))
            return parsed
        if transform == "operator":
            text = f"CAST({raw} AS VARCHAR)"
            two = " ".join(f"WHEN {sql_text(op)} THEN {self._concept_constant(cid, where)}"
                           for op, cid in OPERATORS.items() if len(op) == 2)
            one = " ".join(f"WHEN {sql_text(op)} THEN {self._concept_constant(cid, where)}"
                           for op, cid in OPERATORS.items() if len(op) == 1)
            # Prefix tests instead of a regular expression: this runs on every lab value.
            return f"coalesce(CASE left({text}, 2) {two} END, CASE left({text}, 1) {one} END)"
        if transform == "map":
            values = spec.values or {}
            if is_concept:
                values = {k: self._concept_constant(v, where) for k, v in values.items()}
            cases = " ".join(f"WHEN {sql_text(str(k))} THEN {sql_text(v)}" for k, v in values.items())
            result = f"CASE CAST({raw} AS VARCHAR) {cases} ELSE {sql_text(spec.default)} END"
            if required:
                rules.append(Rule("required", name, value=raw or "NULL", source_field=source))
            if "default" not in spec.model_fields_set:
                allowed = ", ".join(str(k) for k in values)
                rules.append(Rule("unknown_value", name, value=raw or "NULL", result=result,
                                  detail=f"(allowed: {allowed})", source_field=source,
                                  action="reject" if required else "flag"))
            return result
        if transform in ("concept", "local"):
            code = spec.code_sql or f"CAST({raw} AS VARCHAR)"
            morphology = f"CAST({column_ref(spec.morphology)} AS VARCHAR)" if spec.morphology else None
            if spec.via_local:
                code = self._local_target(compiled, code, spec.local_field)
                morphology = self._local_target(compiled, morphology, spec.local_field) if morphology else None
            code = normalize_code(code, spec.normalize)
            if morphology:
                code = f"({morphology} || '-' || {code})"
            if transform == "concept":
                vocabularies: tuple[str, ...] = tuple(v.strip() for v in (spec.vocabulary or "").split(","))
            else:
                vocabularies = (self._local_vocabulary(),)
            # One lookup table serves both the standard and the source concept of a code.
            lookup = Lookup(transform, vocabularies, relationship=spec.relationship)
            alias, new = self._join(compiled, lookup, code)
            result = f"{alias}.concept_id" if spec.standard else f"{alias}.source_concept_id"
            if new and on_unmapped != "keep":
                rules.append(Rule("unmapped_code", name, value=code, result=f"{alias}.code",
                                  action=on_unmapped, detail=f"({', '.join(vocabularies)})",
                                  source_field=source if raw else None))
            return f"coalesce({result}, 0)"
        if transform == "local_attribute":
            lookup = Lookup("local_attribute", (self._local_vocabulary(),))
            alias, _ = self._join(compiled, lookup, f"CAST({raw} AS VARCHAR)")
            return f"{alias}.{spec.attribute}"
        if transform == "id":
            lookup = Lookup("id", id_kind=spec.id or "")
            key = f"CAST({column_ref(spec.key or '')} AS VARCHAR)"
            alias, _ = self._join(compiled, lookup, key)
            result = f"{alias}.id"
            rules.append(Rule("unknown_reference", name, value=column_ref(spec.key or ""), result=result,
                              action="reject" if required else "flag", detail=f"(no {spec.id} with this key)",
                              source_field=spec.key))
            return result
        if transform == "row_id":
            return row_id_sql(self.site.slot(spec.row_id or ""), unpivot_sub)
        raise ValueError(f"unhandled transform {transform}")  # pragma: no cover - guarded by the model

    def _local_target(self, compiled: CompiledMapping, code: str, attribute: str) -> str:
        """What a local code stands for (``attribute`` of the site's local-code list)."""
        alias, _ = self._join(compiled, Lookup("local_attribute", (self._local_vocabulary(),)), code)
        return f"{alias}.{attribute}"

    def _local_vocabulary(self) -> str:
        if self.site.local_codes is None:
            raise ValueError(f"{self.site.origin}: a local transform needs local_codes: in the site mapping")
        return self.site.local_codes.vocabulary_id


def normalize_code(code: str, normalize: str) -> str:
    """SQL normalizing a code.

    ``icd10_dot`` turns ``C509`` into ``C50.9``; ``icdo3_site`` turns an ICD-10 site into an ICD-O-3
    topography (``C61`` → ``C61.9``, ``C509`` → ``C50.9``); ``upper`` upper-cases.
    """
    if normalize == "icd10_dot":
        trimmed = f"upper(trim({code}))"
        return (f"CASE WHEN length({trimmed}) > 3 AND strpos({trimmed}, '.') = 0 "
                f"THEN substr({trimmed}, 1, 3) || '.' || substr({trimmed}, 4) ELSE {trimmed} END")
    if normalize == "icdo3_site":
        bare = f"replace(upper(trim({code})), '.', '')"
        return (f"CASE WHEN length({bare}) = 3 THEN {bare} || '.9' "
                f"ELSE substr({bare}, 1, 3) || '.' || substr({bare}, 4) END")
    if normalize == "upper":
        return f"upper(trim({code}))"
    return code


def parse_number(raw: str, decimal: str, kind: str = "DOUBLE") -> str:
    """SQL parsing a number written with ``decimal`` as separator (NULL when it does not parse).

    A leading comparator (``<0.5``) is dropped; :data:`OPERATORS` gives its concept separately.
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
