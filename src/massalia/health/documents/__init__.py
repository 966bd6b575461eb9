"""Clinical documents (OMOP NOTE text): full-text search and de-identification, guarded."""
