"""The open-data domain's HTTP routes: the CKAN-compatible Action API and resource downloads."""
