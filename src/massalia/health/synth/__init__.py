"""Synthetic multi-site oncology data with ground truth (see ``docs/synthetic-data.md``)."""

from __future__ import annotations

from massalia.health.synth.generate import GenerationSummary, generate
from massalia.health.synth.sites import SITES

__all__ = ["SITES", "GenerationSummary", "generate"]
