"""The open-data domain: a catalog, a CKAN-compatible Action API over it, and a datastore.

The catalog holds organizations, datasets, resources and their versions; the datastore turns CSV, JSON and
Excel resources into typed tables.

Anyone may read (the ``public`` role of the rights table, which anonymous callers hold); producers publish
in the organizations they are editors or admins of; platform admins moderate everything. See
``docs/opendata.md``.
"""
