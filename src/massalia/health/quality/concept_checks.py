"""DQD concept-level check types: each runs once per table for all its concepts.

The per-concept rules of a table (hundreds for CONDITION_OCCURRENCE) travel as an inline
``VALUES`` relation joined to the table, so a single grouped scan answers all of them; a concept
with no record comes back with no row and is reported 'not applicable', as DQD does.
"""

from __future__ import annotations

from collections.abc import Sequence

from massalia.health.quality.checks import (
    GENDER_CONCEPTS,
    CheckDefinitionError,
    QueryCheck,
    concept_ids,
    count_if,
    dqd_value,
    ident,
    values_table,
)
from massalia.health.quality.definitions import CheckInstance


class _ConceptLevelCheck(QueryCheck):
    level = "CONCEPT"

    def batch_key(self, instance: CheckInstance) -> tuple[str, ...]:
        """All concepts of one table and field run together."""
        return (self.name, instance.table, instance.field or "")

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The table and its concept field."""
        return {instance.table: (ident(instance.field or ""),)}


class PlausibleGender(_ConceptLevelCheck):
    """Records of a sex-specific concept on persons of the other gender."""

    name = "plausibleGender"
    use_descendants = False

    def _gender(self, instance: CheckInstance) -> int:
        value = instance.param(self.name)
        if value not in GENDER_CONCEPTS:
            raise CheckDefinitionError(f"unknown plausible gender {value!r}")
        return GENDER_CONCEPTS[value]

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The table, its person and PERSON's gender (and CONCEPT_ANCESTOR for descendants)."""
        needs: dict[str, tuple[str, ...]] = {
            instance.table: (ident(instance.field or ""), "person_id"),
            "person": ("person_id", "gender_concept_id"),
        }
        if self.use_descendants:
            needs["concept_ancestor"] = ("ancestor_concept_id", "descendant_concept_id")
        return needs

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """Records per rule, and those whose person's gender differs (unknown gender included)."""
        rows = [(k, concept, self._gender(i)) for k, i in enumerate(instances) for concept in concept_ids(i)]
        rules = values_table("r", ("k", "concept_id", "gender_concept_id"), rows)
        field = ident(instances[0].field or "")
        if self.use_descendants:
            link = (
                f"JOIN concept_ancestor AS ca ON ca.descendant_concept_id = t.{field} "
                f"JOIN {rules} ON r.concept_id = ca.ancestor_concept_id"
            )
        else:
            link = f"JOIN {rules} ON r.concept_id = t.{field}"
        return (
            f"SELECT r.k, {count_if('p.gender_concept_id <> r.gender_concept_id')} AS num_violated_rows, "
            f"COUNT(*) AS num_denominator_rows FROM {ident(instances[0].table)} AS t {link} "
            f"JOIN person AS p ON p.person_id = t.person_id GROUP BY r.k"
        )


class PlausibleGenderUseDescendants(PlausibleGender):
    """:class:`PlausibleGender` for every descendant of the listed concepts."""

    name = "plausibleGenderUseDescendants"
    use_descendants = True


class PlausibleUnitConceptIds(_ConceptLevelCheck):
    """Numeric results of a measurement concept in a unit outside its plausible units."""

    name = "plausibleUnitConceptIds"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Concept, unit and numeric value fields."""
        return {instance.table: (ident(instance.field or ""), "unit_concept_id", "value_as_number")}

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """DQD lists -1 among the units where a missing unit is plausible."""
        field = ident(instances[0].field or "")
        rules = values_table("r", ("k", "concept_id"), [(k, i.concept_id or 0) for k, i in enumerate(instances)])
        allowed_rows = [
            (k, int(unit))
            for k, i in enumerate(instances)
            for unit in i.param(self.name).replace(" ", "").split(",")
            if unit
        ]
        allowed = values_table("a", ("k", "unit_concept_id"), allowed_rows)
        return (
            f"SELECT r.k, {count_if('a.k IS NULL')} AS num_violated_rows, COUNT(*) AS num_denominator_rows "
            f"FROM {ident(instances[0].table)} AS t JOIN {rules} ON r.concept_id = t.{field} "
            f"LEFT JOIN {allowed} ON a.k = r.k AND a.unit_concept_id = COALESCE(t.unit_concept_id, -1) "
            f"WHERE t.value_as_number IS NOT NULL GROUP BY r.k"
        )


class ConceptPlausibleValueLow(_ConceptLevelCheck):
    """Numeric results of a concept in a given unit below the plausible minimum."""

    name = "plausibleValueLow"
    operator = "<"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Concept, unit and numeric value fields."""
        return {instance.table: (ident(instance.field or ""), "unit_concept_id", "value_as_number")}

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """Over records of the concept and unit with a numeric value."""
        field = ident(instances[0].field or "")
        rows = [
            (k, i.concept_id or 0, i.unit_concept_id or 0, float(dqd_value(i.param(self.name))))
            for k, i in enumerate(instances)
        ]
        rules = values_table("r", ("k", "concept_id", "unit_concept_id", "bound"), rows)
        return (
            f"SELECT r.k, {count_if(f't.value_as_number {self.operator} r.bound')} AS num_violated_rows, "
            f"COUNT(*) AS num_denominator_rows FROM {ident(instances[0].table)} AS t "
            f"JOIN {rules} ON r.concept_id = t.{field} AND r.unit_concept_id = t.unit_concept_id "
            f"WHERE t.value_as_number IS NOT NULL GROUP BY r.k"
        )


class ConceptPlausibleValueHigh(ConceptPlausibleValueLow):
    """Numeric results of a concept in a given unit above the plausible maximum."""

    name = "plausibleValueHigh"
    operator = ">"
