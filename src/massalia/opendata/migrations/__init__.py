"""Alembic migrations of the open-data catalog's tables in the metadata database."""
