"""The projector: turns the event log into DuckDB tables, exactly once (issue 3 builds it).

Only this package writes the database; it reads events through ``ledgerflow.ingest.log``.
"""
