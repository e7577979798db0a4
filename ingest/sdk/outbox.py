"""The ordered outbox of one producer: every event of a client goes through it, in call order.

``log_metric`` only appends to per-(run, key) column arrays under a lock (the hot path).
Any other event first seals the open metric segment, so the log receives metrics and other
events in the order they were logged: a run's RunStarted before its metrics, its metrics
before the RunStatusChanged that ends it. A background thread (and ``flush``) turns the
outbox into events, assigns the producer's sequence numbers in log order, and appends
everything with ONE ``append_batch`` per flush.

The buffer is bounded in points (each non-metric event counts as one): points leave the
bound only once their batch is durable. A full buffer blocks the caller until the flusher
drains it, or raises :class:`BufferFullError` when configured so. A failed append keeps its
encoded batch for the next attempt (same event ids, so a retry is idempotent) and the
failure is raised by the next SDK call, ``flush`` or ``end_run``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import uuid
import weakref
from array import array
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from ledgerflow.ingest.log.base import Entry, EventLog
from ledgerflow.ingest.sdk import validation
from ledgerflow.ingest.sdk.errors import (
    BufferFullError,
    ClientClosedError,
    DeliveryFailedError,
    InvalidMetricValueError,
)
from ledgerflow.schemas import Event, encode, make_envelope

#: (values float64, steps int64, timestamps int64) of one metric key of one run
Columns = tuple[array, array, array]
#: an open metric segment: (run_id, key) -> columns, in first-logged order
Segment = dict[tuple[str, str], Columns]

_I64_MIN = validation.INT64_MIN
_I64_MAX = validation.INT64_MAX
_time_ns = time.time_ns


def _append_point(columns: Columns, key: str, value: Any, step: Any, timestamp: Any) -> None:
    """Check one point (plain floats and ints skip the slow checks) and append it to ``columns``.

    A point that fails a check leaves ``columns`` as they were: everything is checked before the
    first append, and only the value's append can still fail (an int too large for a float64).
    """
    tv = type(value)
    if tv is not float and tv is not int:
        value = validation.metric_value(key, value)
    if step is None:
        step = 0
    elif type(step) is not int or not _I64_MIN <= step <= _I64_MAX:
        step = validation.integer(key, "step", step)
    if timestamp is None:
        timestamp = _time_ns() // 1_000_000
    elif type(timestamp) is not int or not _I64_MIN <= timestamp <= _I64_MAX:
        timestamp = validation.integer(key, "timestamp", timestamp)
    try:
        columns[0].append(value)
    except OverflowError:
        raise InvalidMetricValueError(f"metric {key!r}: value {value!r} does not fit a float64") from None
    columns[1].append(step)
    columns[2].append(timestamp)


class StagedPoints(NamedTuple):
    """Checked points of one batch, per key, not yet buffered (see Outbox.stage_points)."""

    columns: dict[str, Columns]

    @property
    def count(self) -> int:
        return sum(len(values) for values, _, _ in self.columns.values())


_OUTBOXES: weakref.WeakSet[Outbox] = weakref.WeakSet()


class Outbox:
    """Buffer, order and deliver the events of one producer (one TrackingClient)."""

    def __init__(self, open_log: Callable[[], EventLog], *, actor: str, max_points: int = 1_000_000,
                 buffer_full: str = "block", flush_interval: float = 1.0,
                 max_points_per_event: int = 10_000) -> None:
        if buffer_full not in ("block", "raise"):
            raise ValueError(f"buffer_full must be 'block' or 'raise', not {buffer_full!r}")
        if max_points < 1 or max_points_per_event < 1 or flush_interval <= 0:
            raise ValueError("max_points, max_points_per_event and flush_interval must be positive")
        self._open_log = open_log
        self._log: EventLog | None = open_log()
        self.actor = actor
        self.max_points = max_points
        self.max_points_per_event = max_points_per_event
        self.flush_interval = flush_interval
        self._raise_when_full = buffer_full == "raise"
        self._wake_at = max(1, min(max_points // 2, 50_000))
        self._valid_keys: set[str] = set()
        self._init_state()
        _OUTBOXES.add(self)

    def _init_state(self) -> None:
        """Fresh locks, buffers and flusher thread (also in a forked child, which owns none of the parent's)."""
        self.producer_id = uuid.uuid4().hex
        self._sequence = 0  # next sequence number; only touched while holding _io_lock
        self._lock = threading.Lock()  # guards the buffer and the counters below
        self._space = threading.Condition(self._lock)
        self._io_lock = threading.Lock()  # one delivery at a time, so batches land in order
        self._series: Segment = {}
        self._items: list[Segment | tuple[Event, int]] = []
        self._count = 0  # points and events in memory that are not durable yet
        self._error: DeliveryFailedError | None = None
        self._retry: list[Entry] = []
        self._retry_weight = 0
        self._closed = False
        self._stopping = False
        self._wake = threading.Event()
        self._wake_pending = False
        self._thread = threading.Thread(target=self._run, name=f"ledgerflow-flusher-{self.producer_id[:8]}",
                                        daemon=True)
        self._thread.start()

    # -- adding ---------------------------------------------------------------------------

    def add_point(self, run_id: str, key: str, value: Any, step: Any, timestamp: Any) -> None:
        """Buffer one metric point; the hot path of log_metric (key checked once per client, then a short lock)."""
        if key not in self._valid_keys:
            self._check_key(key)
        with self._lock:
            if self._error is not None or self._count >= self.max_points or self._closed:
                self._make_room(1)
            columns = self._series.get((run_id, key))
            if columns is None:
                columns = (array("d"), array("q"), array("q"))
                _append_point(columns, key, value, step, timestamp)  # a bad first point leaves no empty series
                self._series[(run_id, key)] = columns
            else:
                _append_point(columns, key, value, step, timestamp)
            self._count += 1
            self._wake_if_due()

    def stage_points(self, points: Iterable[tuple[Any, Any, Any, Any]]) -> StagedPoints:
        """Check (key, value, step, timestamp) points into private columns; raises on the first bad one.

        Staging buffers nothing, so a caller can check a whole batch before it logs any of it.
        """
        staged: dict[str, Columns] = {}
        for key, value, step, timestamp in points:
            if type(key) is not str:
                validation.check_key(key, "metric key")
            columns = staged.get(key)
            if columns is None:
                if key not in self._valid_keys:
                    self._check_key(key)
                columns = staged[key] = (array("d"), array("q"), array("q"))
            _append_point(columns, key, value, step, timestamp)
        return StagedPoints(staged)

    def add_staged(self, run_id: str, staged: StagedPoints) -> None:
        """Buffer staged points for ``run_id`` under one short lock: far cheaper per point than add_point."""
        count = staged.count
        if not count:
            return
        with self._lock:
            self._make_room(count)
            for key, (values, steps, timestamps) in staged.columns.items():
                columns = self._series.get((run_id, key))
                if columns is None:
                    self._series[(run_id, key)] = (values, steps, timestamps)
                else:
                    columns[0].extend(values)
                    columns[1].extend(steps)
                    columns[2].extend(timestamps)
            self._count += count
            self._wake_if_due()

    def _check_key(self, key: Any) -> None:
        """Check a metric key once per client: the set of known-good keys keeps it off the hot path."""
        validation.check_key(key, "metric key")
        if len(self._valid_keys) < 100_000:
            self._valid_keys.add(key)

    def _wake_if_due(self) -> None:
        """Lock held. Wake the flusher once enough is buffered, rather than waiting for its interval."""
        if self._count >= self._wake_at and not self._wake_pending:
            self._wake_pending = True
            self._wake.set()

    def add_event(self, event: Event, weight: int = 1) -> None:
        """Queue a non-metric event (or a pre-packed MetricsLogged) after everything logged so far."""
        encode(event)  # a trial encode: a malformed event fails here, at the call, not in the flusher
        with self._lock:
            self._make_room(weight)
            if self._series:
                self._items.append(self._series)
                self._series = {}
            self._items.append((event, weight))
            self._count += weight
            self._wake_if_due()

    def _make_room(self, weight: int) -> None:
        """Lock held. Raise a pending delivery failure; wait (or raise) while the buffer is full."""
        while True:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._closed:
                raise ClientClosedError("this TrackingClient is closed; create a new one")
            if self._count == 0 or self._count + weight <= self.max_points:
                return
            if self._raise_when_full:
                raise BufferFullError(
                    f"the metric buffer holds {self._count} of {self.max_points} points not yet durable in "
                    f"{self.uri}; retry later, raise LEDGERFLOW_BUFFER_MAX_POINTS or set LEDGERFLOW_BUFFER_FULL=block"
                )
            self._wake_pending = True
            self._wake.set()
            self._space.wait()

    # -- delivering -----------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._log.uri if self._log is not None else "the event log"

    @property
    def pending(self) -> int:
        """Points and events held in memory that are not durable yet."""
        return self._count

    def flush(self) -> None:
        """Return once everything added before the call is durable; raise DeliveryFailedError if not."""
        with self._io_lock:
            with self._lock:
                if self._closed and not self._stopping:
                    raise ClientClosedError("this TrackingClient is closed; create a new one")
                self._error = None  # this delivery attempt reports the current state itself
            self._deliver(report_later=False)

    def _next_sequence(self) -> int:
        sequence = self._sequence
        self._sequence += 1
        return sequence

    def _deliver(self, report_later: bool = True) -> None:
        """_io_lock held. Encode the outbox (plus any failed batch) and append it as one batch.

        On failure the error is raised; with ``report_later`` (the background flusher) it is also kept
        for the next SDK call, since nobody is waiting for this attempt.
        """
        with self._lock:
            items = self._items
            if self._series:
                items.append(self._series)
                self._series = {}
            self._items = []
        entries, weight = self._retry, self._retry_weight
        self._retry, self._retry_weight = [], 0
        prior_entries, prior_weight = len(entries), weight
        try:
            for item in items:
                if isinstance(item, dict):
                    weight += self._encode_segment(item, entries)
                else:
                    event, item_weight = item
                    event.body["envelope"]["sequence"] = self._next_sequence()
                    entries.append(Entry(event.entity_key, encode(event)))
                    weight += item_weight
        except Exception as e:  # a bug: report it loudly and free the buffer rather than wedge it
            lost = sum(sum(len(c[0]) for c in i.values()) if isinstance(i, dict) else i[1] for i in items)
            with self._lock:
                self._count -= lost
            self._fail(entries[:prior_entries], prior_weight, DeliveryFailedError(
                f"internal error encoding events, {lost} points/events lost: {type(e).__name__}: {e}"), e,
                report_later)
        if not entries:
            return
        if self._log is None:
            self._log = self._open_log()
        try:
            self._log.append_batch(entries)
        except Exception as e:
            self._fail(entries, weight, DeliveryFailedError(
                f"{len(entries)} events logged earlier are not durable in {self.uri}: {e}. They are kept in "
                "memory and retried at the next flush"), e, report_later)
        with self._lock:
            self._count -= weight
            self._space.notify_all()

    def _fail(self, entries: list[Entry], weight: int, error: DeliveryFailedError, cause: BaseException,
              report_later: bool) -> None:
        """Keep the unacknowledged batch for the next attempt; record the error for the next call if asked."""
        error.__cause__ = cause
        self._retry, self._retry_weight = entries, weight
        with self._lock:
            if report_later:
                self._error = error
            self._space.notify_all()
        raise error

    def _encode_segment(self, segment: Segment, entries: list[Entry]) -> int:
        """MetricsLogged events of one segment: per run, keys packed, at most max_points_per_event points each."""
        from ledgerflow.schemas.metric_columns import pack_series

        by_run: dict[str, list[tuple[str, Columns]]] = {}
        total = 0
        for (run_id, key), columns in segment.items():
            by_run.setdefault(run_id, []).append((key, columns))
            total += len(columns[0])
        cap = self.max_points_per_event
        for run_id, keyed in by_run.items():
            series: list[dict[str, Any]] = []
            room = cap
            for key, (values, steps, timestamps) in keyed:
                start, n = 0, len(values)
                while start < n:
                    take = min(room, n - start)
                    stop = start + take
                    if start == 0 and stop == n:
                        series.append(pack_series(key, steps, timestamps, values))
                    else:
                        series.append(pack_series(key, steps[start:stop], timestamps[start:stop], values[start:stop]))
                    start, room = stop, room - take
                    if room == 0:
                        entries.append(self._metrics_entry(run_id, series))
                        series, room = [], cap
            if series:
                entries.append(self._metrics_entry(run_id, series))
        return total

    def _metrics_entry(self, run_id: str, series: list[dict[str, Any]]) -> Entry:
        key = f"run/{run_id}"
        envelope = make_envelope(actor=self.actor, producer_id=self.producer_id, sequence=self._next_sequence(),
                                 entity_key=key)
        return Entry(key, encode(Event("MetricsLogged", {"envelope": envelope, "run_id": run_id, "series": series})))

    def _run(self) -> None:
        """The flusher thread: deliver every flush interval, or sooner when the buffer fills up."""
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._wake_pending = False
            if self._stopping:
                return
            try:
                with self._io_lock:
                    self._deliver()
            except DeliveryFailedError:
                pass  # recorded in self._error: the next call raises it
            except Exception as e:  # never let the flusher die silently
                with self._lock:
                    self._error = DeliveryFailedError(f"the background flusher failed: {type(e).__name__}: {e}")
                    self._error.__cause__ = e
                    self._space.notify_all()

    def close(self) -> None:
        """Flush, stop the flusher and close the log. Raises if the final flush fails (the log is closed anyway)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = self._stopping = True
                self._space.notify_all()
            self._wake.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=10)
            if self._log is not None:
                self._log.close()

    def _after_fork_in_child(self) -> None:
        """The child neither owns the parent's buffered events nor may share its log handles or locks."""
        self._log = None
        self._init_state()


def flush_all() -> None:
    """Flush every live outbox (used at interpreter exit)."""
    for outbox in list(_OUTBOXES):
        if outbox._closed:
            continue
        try:
            outbox.flush()
        except Exception as e:  # at exit there is nobody left to raise to: say it loudly
            print(f"ledgerflow: events not stored at exit ({outbox.pending} points/events pending in "
                  f"{outbox.uri}): {e}", file=sys.stderr)


def _after_fork_in_child() -> None:
    for outbox in list(_OUTBOXES):
        outbox._after_fork_in_child()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
