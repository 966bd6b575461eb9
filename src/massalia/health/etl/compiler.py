"""The OMOP compiler: the core's mapping compiler over the CDM tables, with health's transforms.

:class:`~massalia.pipelines.compiler.MappingCompiler` knows the mapping language; this subclass gives it the
OMOP CDM v5.4 tables as targets, the vocabulary transforms (:func:`~massalia.health.etl.transforms.omop_transforms`)
and the OMOP conventions: a concept id written in a mapping must exist in the vocabulary, and concept
fields left out of a mapping default to 0.
"""

from __future__ import annotations

from collections.abc import Callable

from massalia.health.etl.mapping import SiteMapping
from massalia.health.etl.transforms import omop_transforms
from massalia.health.omop.schema import cdm_table
from massalia.pipelines.compiler import Lookup, MappingCompiler, TargetField, TargetTable


class OmopMappingCompiler(MappingCompiler):
    """Compile the table mappings of one hospital site into OMOP CDM tables.

    Parameters
    ----------
    site
        The site mapping.
    lookup_table
        Callback giving the engine table that holds a :class:`~massalia.pipelines.compiler.Lookup`.
    staged_table
        Callback giving the staged table of a file kind of the site.
    known_concepts
        The concept ids of the warehouse's vocabulary (``None``: not checked).
    """

    def __init__(
        self,
        site: SiteMapping,
        lookup_table: Callable[[Lookup], str],
        staged_table: Callable[[str], str],
        *,
        known_concepts: set[int] | None = None,
    ) -> None:
        super().__init__(site, lookup_table, staged_table, target_table=cdm_table, transforms=omop_transforms())
        self.known_concepts = known_concepts

    def constant(self, column: str, value: object, where: str) -> object:
        """A concept id written in the mapping, or 0 (with a warning) when the vocabulary lacks it.

        Writing an id absent from CONCEPT would break every foreign-key check downstream; 0 is the
        OMOP "no matching concept" and the warning tells the data team which id to add. Other columns'
        literals are kept as written.
        """
        if not column.endswith("concept_id"):
            return value
        if self.known_concepts is None or value is None or not isinstance(value, int) or value == 0:
            return value
        if value not in self.known_concepts:
            message = f"{self.site.site}: {where}: concept {value} is not in the vocabulary; written as 0"
            if message not in self.warnings:
                self.warnings.append(message)
            return 0
        return value

    def auto_filled(self, target: TargetTable, target_field: TargetField) -> bool:
        """Fields the pipeline fills itself: the row id, and concept ids (0, OMOP's "no matching concept")."""
        return super().auto_filled(target, target_field) or target_field.name.endswith("concept_id")
