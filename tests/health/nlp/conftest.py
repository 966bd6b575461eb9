"""Fixtures of the NLP tests: one pipeline per test session (building the EDS-NLP pipes takes seconds)."""

from __future__ import annotations

import pytest

from massalia.health.nlp.pipeline import ClinicalPipeline


@pytest.fixture(scope="session")
def pipeline() -> ClinicalPipeline:
    """The clinical pipeline, built once."""
    return ClinicalPipeline()
