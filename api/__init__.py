"""The query API and server (FastAPI), reading the DuckDB state the projector maintains (issue 4)."""
