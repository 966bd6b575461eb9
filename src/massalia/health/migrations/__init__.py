"""Alembic migrations of health's own tables in the metadata database (saved cohort definitions)."""
