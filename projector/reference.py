"""docs/tables.md is generated from the table definitions, so the reference cannot drift from the code."""

from __future__ import annotations

from ledgerflow.projector.tables import TABLES

HEADER = """# Table reference

The projector maintains these DuckDB tables (generated from `projector/tables.py` by
`ledgerflow db reference`; a test fails when this file is out of date). Only the projector writes
them. Times named `*_time` are milliseconds since the Unix epoch (as MLflow), derived from event
times, never from the clock of the machine that projects, so every replay yields the same rows.
Soft-deleted rows stay with `lifecycle_stage = 'deleted'`; the full history of every entity is in
`events`.
"""


def tables_markdown() -> str:
    parts = [HEADER]
    for table in TABLES:
        key = f"primary key ({', '.join(table.key)})" if table.key else "append-only, no key"
        if table.indexes:
            key += "; indexed on " + ", ".join(f"({', '.join(cols)})" for cols in table.indexes)
        parts.append(f"\n## `{table.name}`\n\n{table.doc} ({key})\n\n| column | type |\n|---|---|")
        parts += [f"| `{name}` | {kind} |" for name, kind in table.columns]
    return "\n".join(parts) + "\n"
