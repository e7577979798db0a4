"""The changes of one batch, accumulated in memory and written in one transaction.

Puts and removes are last-write-wins per primary key, so a batch that sets a tag twice writes one
row. Metric points stay as packed columns until they are bulk-loaded through Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledgerflow.projector.effects import Append, AppendMetrics, Effect, Put, Remove
from ledgerflow.projector.tables import TABLES_BY_NAME

_REMOVED = object()


@dataclass
class UnitOfWork:
    keyed: dict[str, dict[tuple[Any, ...], Any]] = field(default_factory=dict)  # table -> key -> row | _REMOVED
    appends: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    points: int = 0

    def add(self, effect: Effect) -> None:
        if isinstance(effect, AppendMetrics):
            self.metrics.append((effect.run_id, effect.series))
            self.points += sum(len(s["values"]) // 8 for s in effect.series)
        elif isinstance(effect, Put):
            table = TABLES_BY_NAME[effect.table]
            self.keyed.setdefault(effect.table, {})[tuple(effect.row[c] for c in table.key)] = effect.row
        elif isinstance(effect, Remove):
            self.keyed.setdefault(effect.table, {})[effect.key] = _REMOVED
        elif isinstance(effect, Append):
            self.appends.setdefault(effect.table, []).append(effect.row)
        else:  # pragma: no cover - the Effect union is closed
            raise TypeError(f"unknown effect {effect!r}")

    def puts(self, table: str) -> list[dict[str, Any]]:
        return [row for row in self.keyed.get(table, {}).values() if row is not _REMOVED]

    def touched_keys(self, table: str) -> list[tuple[Any, ...]]:
        """Every key put or removed: their old rows are deleted before the puts are inserted."""
        return list(self.keyed.get(table, {}))
