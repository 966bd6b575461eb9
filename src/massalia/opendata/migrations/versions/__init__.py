"""Open data's migration scripts, applied in order by :data:`massalia.opendata.tables.MIGRATIONS`."""
