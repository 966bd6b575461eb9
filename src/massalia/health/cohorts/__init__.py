"""Cohorts: a typed definition model, OHDSI Circe import/export, a SQL compiler and counting services."""

from massalia.health.cohorts.circe import (
    CirceCompatibilityWarning,
    CirceExportError,
    CirceImportError,
    import_circe,
    import_circe_concept_sets,
    import_circe_report,
    to_circe,
)
from massalia.health.cohorts.compiler import CompiledCohort, compile_cohort, generated_sql
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.sqltext import UnsupportedConstruct

__all__ = [
    "CirceCompatibilityWarning",
    "CirceExportError",
    "CirceImportError",
    "CohortDefinition",
    "CompiledCohort",
    "UnsupportedConstruct",
    "compile_cohort",
    "generated_sql",
    "import_circe",
    "import_circe_concept_sets",
    "import_circe_report",
    "to_circe",
]
