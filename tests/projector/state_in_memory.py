"""A StateView over plain dicts, for testing the pure apply functions without a database."""

from __future__ import annotations

from typing import Any

from ledgerflow.projector.effects import Effect, Put, Remove
from ledgerflow.projector.tables import TABLES_BY_NAME


class InMemoryState:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}

    def row(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        return self.tables.get(table, {}).get(key)

    def rows(self, table: str, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [r for k, r in sorted(self.tables.get(table, {}).items(), key=repr) if k[:len(prefix)] == prefix]

    def observe(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Put):
                key = tuple(effect.row[c] for c in TABLES_BY_NAME[effect.table].key)
                self.tables.setdefault(effect.table, {})[key] = effect.row
            elif isinstance(effect, Remove):
                self.tables.get(effect.table, {}).pop(effect.key, None)
