"""The health domain's entry module: what health contributes when the API or the command line is created.

Health is a domain plug-in like any other (:mod:`massalia.plugins`): it is listed in
:data:`massalia.plugins.BUILTIN_DOMAINS` and registers exactly the way a third party's domain would. Nothing
is registered when this module is imported; :meth:`HealthDomain.contribute` does it when
:func:`massalia.plugins.load_domains` asks.

This module is the domain's seam with the interfaces: it is the one module of ``massalia.health`` that
imports the health routers and command groups (an ``ignore_imports`` entry of the import-linter layers
contract says so), so that the interfaces never name a domain themselves.

Examples
--------
>>> from massalia.plugins import load_domains
>>> contributions = load_domains(builtins=("massalia.health.plugin",))
>>> sorted(contributions.cli_groups)
['cohort', 'mart', 'patient']
>>> contributions.rights.get("health").name
'rights.yaml'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from massalia.api.routes import (
    analyses,
    cohorts,
    documents,
    etl,
    extracts,
    mart,
    patients,
    quality,
    saved_cohorts,
    vocabulary,
)
from massalia.api.routes.deidentified_notes import router as deidentified_notes_router
from massalia.api.routes.nlp import router as nlp_router
from massalia.cli.analysis import analysis_app
from massalia.cli.cohort import cohort_app
from massalia.cli.deid import deid_app
from massalia.cli.etl import etl_app
from massalia.cli.extract import extract_app
from massalia.cli.mart import mart_app
from massalia.cli.nlp import nlp_app
from massalia.cli.omop import omop_app
from massalia.cli.patient import patient_app
from massalia.cli.text import text_app
from massalia.governance import InvalidRequest
from massalia.health.analytics import ANALYSES
from massalia.health.cohorts import CirceImportError, UnsupportedConstruct, import_circe
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.quality.oncology import register_oncology_rules
from massalia.health.quality.registry import DQD_CHECK_TYPES, register_dqd_check
from massalia.plugins import Contributions, PortalPage
from massalia.quality.checks import CheckType
from massalia.quality.registry import CheckRegistry

RIGHTS_FILE = Path(__file__).with_name("rights.yaml")
"""Health's actions (``health.<area>.<verb>``), merged with the core's at start-up."""

PORTAL_ASSETS = Path(__file__).with_name("portal")
"""Health's portal pages (ES modules) and their message catalogues, served at ``/static/domains/health/``."""

PORTAL_PAGES: tuple[PortalPage, ...] = (
    PortalPage(
        "health.feasibility",
        "/portal/health/feasibility",
        "Faisabilité",
        "Feasibility",
        "feasibility.js",
        right="health.mart.count",
        group="research",
    ),
    PortalPage(
        "health.cohorts",
        "/portal/health/cohorts",
        "Cohortes",
        "Cohorts",
        "cohorts.js",
        right="health.cohort.count",
        group="research",
    ),
    PortalPage(
        "health.dashboard",
        "/portal/health/dashboard",
        "Tableau de bord",
        "Dashboard",
        "dashboard.js",
        right="health.mart.count",
        group="research",
    ),
    PortalPage(
        "health.analyses",
        "/portal/health/analyses",
        "Analyses",
        "Analyses",
        "analyses.js",
        right="health.analysis.run",
        group="research",
    ),
    PortalPage(
        "health.projects",
        "/portal/health/projects",
        "Projets et accès",
        "Projects and access",
        "projects.js",
        right="project.list",
        group="research",
    ),
    PortalPage(
        "health.requests",
        "/portal/health/requests",
        "Demandes d'accès",
        "Access requests",
        "requests.js",
        right="request.decide",
        group="governance",
    ),
    PortalPage(
        "health.audit",
        "/portal/health/audit",
        "Piste d'audit",
        "Audit trail",
        "audit.js",
        right="audit.read",
        group="governance",
    ),
    PortalPage(
        "health.timeline",
        "/portal/health/timeline",
        "Parcours patient",
        "Patient timeline",
        "timeline.js",
        right="health.patient.view",
        group="care",
    ),
    PortalPage(
        "health.search",
        "/portal/health/search",
        "Recherche documentaire",
        "Document search",
        "search.js",
        right="health.document.search",
        group="care",
    ),
    PortalPage(
        "health.vocabulary",
        "/portal/health/vocabulary",
        "Vocabulaire",
        "Vocabulary",
        "vocabulary.js",
        right="health.vocabulary.read",
        group="reference",
    ),
    PortalPage(
        "health.quality",
        "/portal/health/quality",
        "Qualité et ETL",
        "Quality and ETL",
        "quality.js",
        right="health.quality.read",
        group="operations",
    ),
)
"""Health's pages in the portal: the feasibility quick mode, the cohort builder and dashboard and the analyses
(survival, treatment comparison) over the research mart; projects, access requests
and extracts; the audit trail; a patient's timeline; the vocabulary browser; data quality and ETL runs."""


class CohortScopeError(InvalidRequest):
    """A project's cohort is not a valid definition; ``problems`` lists (JSON path, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class CohortScope:
    """Health's part of a project's scope: the cohort definition a project is restricted to.

    The core's :class:`~massalia.governance.model.ProjectScope` keeps the generic part (sites, period,
    variables) and stores this part as JSON with its hash; the hash is the cohort definition's own
    (:meth:`CohortDefinition.definition_hash`), the one the guarded services compare a query's definition to.
    """

    field: str = "cohort"

    def canonical(self, raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The validated definition as stored JSON, and its hash; a malformed one raises ``ValueError``.

        Examples
        --------
        >>> stored, digest = CohortScope().canonical({"title": "any condition", "concept_sets": [],
        ...     "primary_criteria": {"criteria_list": [{"kind": "ConditionOccurrence"}]}})
        >>> CohortScope().canonical(stored)[1] == digest
        True
        """
        definition = CohortDefinition.model_validate(raw)
        # Stored as the model dumps it, so that the stored JSON parses back to the same definition and hash.
        stored: dict[str, Any] = json.loads(definition.to_json())
        return stored, definition.definition_hash()

    def digest(self, raw: Any, where: str = "scope.cohort") -> str:
        """The hash a project's cohort is compared with: its definition's, from Massalia or ATLAS/Circe JSON.

        Raises
        ------
        CohortScopeError
            The definition is not valid (an :class:`InvalidRequest`: a 422 over HTTP, naming the paths).

        Examples
        --------
        >>> raw = {"title": "any", "concept_sets": [], "primary_criteria": {"criteria_list": [{"kind": "Death"}]}}
        >>> CohortScope().digest(raw) == CohortDefinition.model_validate(raw).definition_hash()
        True
        """
        try:
            if isinstance(raw, dict) and "PrimaryCriteria" in raw:
                return import_circe(raw).definition_hash()
            return CohortDefinition.model_validate(raw).definition_hash()
        except ValidationError as error:
            problems = [
                (".".join([where, *(str(part) for part in item.get("loc", ()))]), str(item.get("msg", "invalid")))
                for item in error.errors()
            ]
            raise CohortScopeError("The project's cohort definition is not valid.", problems) from None
        except CirceImportError as error:
            problems = [(f"{where}.{path}", str(message)) for path, message in getattr(error, "problems", [])]
            raise CohortScopeError("The project's Circe definition cannot be imported.", problems) from None
        except (UnsupportedConstruct, ValueError) as error:
            raise CohortScopeError(f"The project's cohort definition is not valid: {error}", []) from None


def _register_dqd(registry: CheckRegistry) -> None:
    """Register every OHDSI Data Quality Dashboard check type (the OMOP CDM's own checks)."""
    check_type: type[CheckType]
    for check_type in DQD_CHECK_TYPES:
        register_dqd_check(registry, check_type())


@dataclass(frozen=True)
class HealthDomain:
    """The OMOP CDM oncology warehouse: cohorts, the research mart, extracts, patient views, quality, ETL."""

    name: str = "health"

    def contribute(self, contributions: Contributions) -> None:
        """Register health's routers, command groups, rights, scope model, quality checks, analyses and portal pages."""
        for module in (cohorts, saved_cohorts, patients, mart, extracts, quality, etl, vocabulary, analyses, documents):
            contributions.add_router(module.router)
        contributions.add_router(deidentified_notes_router)
        contributions.add_router(nlp_router)
        contributions.add_cli_group("omop", omop_app)
        contributions.add_cli_group("etl", etl_app)
        contributions.add_cli_group("cohort", cohort_app)
        contributions.add_cli_group("mart", mart_app)
        contributions.add_cli_group("extract", extract_app)
        contributions.add_cli_group("patient", patient_app)
        contributions.add_cli_group("analysis", analysis_app)
        contributions.add_cli_group("text", text_app)
        contributions.add_cli_group("deid", deid_app)
        contributions.add_cli_group("nlp", nlp_app)
        contributions.add_rights(RIGHTS_FILE)
        contributions.add_scope_model("health.cohort", CohortScope())
        contributions.add_quality_check("omop.dqd", _register_dqd)
        contributions.add_quality_check("health.oncology", register_oncology_rules)
        for analysis in ANALYSES:
            contributions.add_analysis(analysis.name, analysis)
        contributions.add_portal_assets(PORTAL_ASSETS)
        for page in PORTAL_PAGES:
            contributions.add_portal_page(page)


DOMAIN = HealthDomain()
