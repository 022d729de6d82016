"""opsguard: incident escalation and a release guard that live inside PostgreSQL.

The logic is SQL in schema `ops` (db/migrations); this package holds only the thin
Python around it: migrations runner, the ticker fallback, and (later) the API.
"""
