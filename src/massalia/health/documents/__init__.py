"""Clinical documents (OMOP NOTE): full-text search, guarded (:mod:`massalia.health.documents.search`)."""
