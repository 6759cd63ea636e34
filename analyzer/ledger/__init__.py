"""The append-only, hash-chained audit ledger.

``chain`` is the pure part (canonical payloads, hashes, verification); ``tables`` describes the
schema that Alembic creates; ``store`` appends and queries through SQLAlchemy connections.
"""
