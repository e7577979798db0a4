"""Each run's MLflow JSON, kept per server until an event touching that run is projected.

Why: a page of runs costs three scans of the params, tags and latest_metrics tables (their size, not
the page's), several times what finding the page's ids costs; the run JSON of most runs stops
changing once they end, and the same runs are searched again and again (the UI, sweeps, scripts).

Why it is never stale: every projected event is in the ``events`` table with its log position and,
for everything logged to a run, the run's id. The cache remembers the projector position it is valid
at; a read that finds the projection further along first evicts the runs named by the events since
(one narrow scan of the table's tail), so an entry only outlives events that did not touch its run.
A dataset's row is shared by every run that used it, so a ``DatasetInputLogged`` since also evicts
every run with that dataset as an input. A page built by a read started before an eviction is not
stored (``epoch``), so a slow read cannot put back what a newer one evicted.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import duckdb

from ledgerflow.api.runtime import Runtime
from ledgerflow.ingest.log import Position

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # ~45,000 runs of 10 params, 5 tags, 10 metrics


@dataclass(frozen=True)
class Snapshot:
    """What a read was handed: the cached JSON of some runs, and the epoch to store new ones under."""

    cached: dict[str, str]
    epoch: int


class RunJsonCache:
    """Run id -> JSON text of ``"info":{...},"data":{...}``; least recently used out past ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0
        self._position: Position | None = None
        self._epoch = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, cursor: duckdb.DuckDBPyConnection, position: Position, run_ids: list[str]) -> Snapshot:
        """The cached runs among ``run_ids``, once the entries are brought up to projector ``position``.

        ``position`` must be read before ``cursor`` reads the rows the caller builds new entries from."""
        with self._lock:  # held over the tail scan: concurrent reads then evict once, not once each
            if position != self._position:
                if self._position is not None and self._entries:
                    for run_id in _runs_changed_between(cursor, self._position, position):
                        self._discard(run_id)
                self._position = dict(position)
                self._epoch += 1
            cached = {}
            for run_id in run_ids:
                text = self._entries.get(run_id)
                if text is not None:
                    self._entries.move_to_end(run_id)
                    cached[run_id] = text
            return Snapshot(cached, self._epoch)

    def store(self, epoch: int, entries: dict[str, str]) -> None:
        """Keep ``entries`` (built by the read handed ``epoch``) unless the cache has moved on since."""
        with self._lock:
            if epoch != self._epoch:
                return
            for run_id, text in entries.items():
                self._discard(run_id)
                self._entries[run_id] = text
                self._bytes += len(text)
            while self._bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def _discard(self, run_id: str) -> None:
        text = self._entries.pop(run_id, None)
        if text is not None:
            self._bytes -= len(text)


def _runs_changed_between(cursor: duckdb.DuckDBPyConnection, old: Position, new: Position) -> set[str]:
    """Ids of the runs whose JSON events projected since ``old`` may have changed (a partition new since
    ``old``: all of its events). A partition in neither position has nothing committed yet: a later
    call covers it from 0."""
    starts = sorted((int(partition), int(old.get(partition, 0))) for partition in {*old, *new})
    if not starts:
        return set()
    # the lowest start lets DuckDB skip every row group wholly before it (offsets grow along the table)
    tail = (f"log_offset >= {min(o for _, o in starts)} AND ("
            + " OR ".join(f"(log_partition = {p} AND log_offset >= {o})" for p, o in starts) + ")")
    changed, datasets_changed = set(), False
    for run_id, dataset_input in cursor.execute(
            f"SELECT DISTINCT run_id, event_type = 'DatasetInputLogged' FROM events "
            f"WHERE run_id IS NOT NULL AND {tail}").fetchall():
        changed.add(run_id)
        datasets_changed = datasets_changed or dataset_input
    if datasets_changed:
        changed.update(row[0] for row in cursor.execute(
            "SELECT DISTINCT i.run_id FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id "
            "JOIN (SELECT DISTINCT payload->'dataset'->>'name' AS name, payload->'dataset'->>'digest' AS digest "
            f"      FROM events WHERE event_type = 'DatasetInputLogged' AND {tail}) e "
            "ON e.name = d.name AND e.digest = d.digest").fetchall())
    return changed


_caches: weakref.WeakKeyDictionary[Runtime, RunJsonCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def run_cache_of(runtime: Runtime) -> RunJsonCache:
    """The cache of this server's projection (one per runtime, dropped with it)."""
    with _caches_lock:
        cache = _caches.get(runtime)
        if cache is None:
            cache = _caches[runtime] = RunJsonCache()
        return cache
