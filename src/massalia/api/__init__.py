"""Massalia's HTTP API (FastAPI): a thin layer over the governance and health services."""

from massalia.api.app import API_PREFIX, RouteInfo, create_app, route_table
from massalia.api.settings import ApiSettings, SettingsError

__all__ = ["API_PREFIX", "ApiSettings", "RouteInfo", "SettingsError", "create_app", "route_table"]
