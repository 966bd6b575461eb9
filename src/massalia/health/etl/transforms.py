"""Health's column transforms: codes looked up in the OMOP vocabularies, comparators as concepts.

The mapping language's generic transforms are the core's (:func:`massalia.pipelines.compiler.core_transforms`);
:func:`omop_transforms` adds those that only make sense against the OMOP vocabularies (``concept``,
``local``, ``operator``) when the OMOP pipeline builds its compiler, never at import.
"""

from __future__ import annotations

from massalia.pipelines.compiler import Column, Lookup, Transform, column_ref, core_transforms, sql_text
from massalia.plugins import Registry

OPERATORS = {"<": 4171756, "<=": 4171754, "=": 4172703, ">=": 4171755, ">": 4172704}
"""Meas Value Operator concepts for a comparator written before a number (``<0.5``)."""


def normalize_code(code: str, normalize: str) -> str:
    """SQL normalizing a code.

    ``icd10_dot`` turns ``C509`` into ``C50.9``; ``icdo3_site`` turns an ICD-10 site into an ICD-O-3
    topography (``C61`` → ``C61.9``, ``C509`` → ``C50.9``); ``upper`` upper-cases.

    Examples
    --------
    >>> normalize_code("s.code", "upper")
    'upper(trim(s.code))'
    """
    if normalize == "icd10_dot":
        trimmed = f"upper(trim({code}))"
        return (
            f"CASE WHEN length({trimmed}) > 3 AND strpos({trimmed}, '.') = 0 "
            f"THEN substr({trimmed}, 1, 3) || '.' || substr({trimmed}, 4) ELSE {trimmed} END"
        )
    if normalize == "icdo3_site":
        bare = f"replace(upper(trim({code})), '.', '')"
        return (
            f"CASE WHEN length({bare}) = 3 THEN {bare} || '.9' "
            f"ELSE substr({bare}, 1, 3) || '.' || substr({bare}, 4) END"
        )
    if normalize == "upper":
        return f"upper(trim({code}))"
    return code


def _operator(column: Column) -> str:
    text = f"CAST({column.raw} AS VARCHAR)"
    two = " ".join(f"WHEN {sql_text(op)} THEN {column.constant(cid)}" for op, cid in OPERATORS.items() if len(op) == 2)
    one = " ".join(f"WHEN {sql_text(op)} THEN {column.constant(cid)}" for op, cid in OPERATORS.items() if len(op) == 1)
    # Prefix tests instead of a regular expression: this runs on every lab value.
    return f"coalesce(CASE left({text}, 2) {two} END, CASE left({text}, 1) {one} END)"


def _code(column: Column) -> str:
    """``concept`` (a code of a vocabulary) and ``local`` (a local code through SOURCE_TO_CONCEPT_MAP)."""
    spec, compiler, compiled = column.spec, column.compiler, column.compiled
    code = spec.code_sql or f"CAST({column.raw} AS VARCHAR)"
    morphology = f"CAST({column_ref(spec.morphology)} AS VARCHAR)" if spec.morphology else None
    if spec.via_local:
        code = compiler.local_target(compiled, code, spec.local_field)
        morphology = compiler.local_target(compiled, morphology, spec.local_field) if morphology else None
    code = normalize_code(code, spec.normalize)
    if morphology:
        code = f"({morphology} || '-' || {code})"
    vocabularies: tuple[str, ...]
    if spec.transform == "concept":
        vocabularies = tuple(v.strip() for v in (spec.vocabulary or "").split(","))
    else:
        vocabularies = (compiler.local_vocabulary(),)
    # One lookup table serves both the standard and the source concept of a code.
    lookup = Lookup(spec.transform, vocabularies, relationship=spec.relationship)
    alias, new = compiler.join(compiled, lookup, code)
    result = f"{alias}.concept_id" if spec.standard else f"{alias}.source_concept_id"
    if new and column.on_unmapped != "keep":
        column.rule(
            "unmapped_code",
            value=code,
            result=f"{alias}.code",
            action=column.on_unmapped,
            detail=f"({', '.join(vocabularies)})",
            source_field=column.source if column.raw else None,
        )
    return f"coalesce({result}, 0)"


def omop_transforms() -> Registry[Transform]:
    """The core's transforms plus health's (``operator``, ``concept``, ``local``), in a new registry.

    Examples
    --------
    >>> sorted(set(omop_transforms()) - set(core_transforms()))
    ['concept', 'local', 'operator']
    """
    registry = core_transforms()
    registry.register("operator", Transform(_operator))
    registry.register("concept", Transform(_code))
    registry.register("local", Transform(_code))
    return registry
