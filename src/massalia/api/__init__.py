"""Massalia's HTTP API (FastAPI): a thin layer over the governance and health services."""

from massalia.api.app import API_PREFIX, create_app
from massalia.api.settings import ApiSettings, SettingsError

__all__ = ["API_PREFIX", "ApiSettings", "SettingsError", "create_app"]
