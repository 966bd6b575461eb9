"""Clinical documents (OMOP NOTE text): de-identification, and search beside it."""
