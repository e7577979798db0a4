"""A StateView over plain dicts: the pure handlers applied without a database.

Used to answer "as of" questions from the audit table (api/as_of.py) and to test the handlers.
"""

from __future__ import annotations

from typing import Any

from ledgerflow.projector.effects import Append, Effect, Put, Remove
from ledgerflow.projector.tables import TABLES_BY_NAME


class MemoryState:
    """Current rows per table keyed by primary key, plus the rows appended to append-only tables."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.appended: dict[str, list[dict[str, Any]]] = {}

    def row(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        return self.tables.get(table, {}).get(key)

    def rows(self, table: str, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        found = [(k, r) for k, r in self.tables.get(table, {}).items() if k[:len(prefix)] == prefix]
        return [r for _, r in sorted(found, key=lambda kr: repr(kr[0]))]

    def observe(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Put):
                key = tuple(effect.row[c] for c in TABLES_BY_NAME[effect.table].key)
                self.tables.setdefault(effect.table, {})[key] = effect.row
            elif isinstance(effect, Remove):
                self.tables.get(effect.table, {}).pop(effect.key, None)
            elif isinstance(effect, Append):
                self.appended.setdefault(effect.table, []).append(effect.row)
