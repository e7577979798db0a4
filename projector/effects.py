"""What applying an event produces: row operations, as plain data. The store executes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ledgerflow.errors import LedgerflowError


@dataclass(frozen=True, slots=True)
class Put:
    """Insert the row, or replace the row with the same primary key."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Remove:
    """Delete the row with this primary key (only for current-state tables like tags; history stays in events)."""

    table: str
    key: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Append:
    """Append a row to an append-only table (lineage, alias history)."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppendMetrics:
    """Append the points of a MetricsLogged event; kept packed so the store can bulk-load them."""

    run_id: str
    series: list[dict[str, Any]]


Effect = Put | Remove | Append | AppendMetrics


class Rejected(LedgerflowError):
    """The event cannot be applied to the current state; it goes to dead_letters with this reason."""


class StateView(Protocol):
    """Read access to current state that applying an event needs (existence, current rows)."""

    def row(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The current row with this primary key, or None."""

    def rows(self, table: str, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Current rows whose primary key starts with ``prefix``."""
