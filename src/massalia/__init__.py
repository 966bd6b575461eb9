"""Massalia: a self-hostable, secure data platform for public-interest institutions."""

from __future__ import annotations

__version__ = "0.1.0"
