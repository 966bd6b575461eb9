"""Per-site export layouts and writers: three hospitals whose extracts differ as real silos do."""

from __future__ import annotations

from massalia.health.synth.sites.ch_est_layout import LAYOUT as CH_EST
from massalia.health.synth.sites.chu_nord_layout import LAYOUT as CHU_NORD
from massalia.health.synth.sites.clcc_sud_layout import LAYOUT as CLCC_SUD
from massalia.health.synth.sites.layout import Column, FileLayout, SiteLayout

SITES: dict[str, SiteLayout] = {s.name: s for s in (CHU_NORD, CLCC_SUD, CH_EST)}
"""Every site the generator knows, by folder name, with its declared file layouts."""

__all__ = ["SITES", "Column", "FileLayout", "SiteLayout"]
