"""Fixtures of the SDK tests: a data home the fluent API writes to, and readers of its real file log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.ingest.log.file import FileLog
from ledgerflow.schemas import Event, decode, unpack_series


@pytest.fixture
def lf_home(data_home: Path) -> Iterator[Path]:
    """A fresh data home set as the fluent tracking URI; the fluent state is reset afterwards."""
    import ledgerflow as lf
    from ledgerflow.ingest.sdk import fluent

    fluent._reset_for_tests()
    lf.set_tracking_uri(f"file:{data_home}")
    yield data_home
    try:
        fluent._reset_for_tests()
    except Exception:  # a test that broke delivery on purpose; its assertions already ran
        pass


def read_events(home: Path) -> list[Event]:
    """Every event in the embedded log of ``home``, decoded, in log order."""
    with FileLog(home / "events") as log:
        return [decode(record.value) for record in log.read_all()]


def metric_points(events: list[Event], run_id: str | None = None) -> dict[str, list[tuple[int, int, float]]]:
    """key -> [(step, timestamp, value)] of all MetricsLogged events (of one run if given), in log order."""
    points: dict[str, list[tuple[int, int, float]]] = {}
    for event in events:
        if event.type != "MetricsLogged" or (run_id is not None and event.body["run_id"] != run_id):
            continue
        for series in event.body["series"]:
            steps, timestamps, values = unpack_series(series)
            points.setdefault(series["key"], []).extend(zip(steps, timestamps, values, strict=True))
    return points


def of_type(events: list[Event], event_type: str) -> list[Event]:
    return [e for e in events if e.type == event_type]
