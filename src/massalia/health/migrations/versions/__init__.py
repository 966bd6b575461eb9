"""Health's migration scripts, applied in order by :data:`massalia.health.saved_cohorts.MIGRATIONS`."""
