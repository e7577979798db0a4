"""SDK figures: the cost of one log_metric call on the training loop's hot path, and end-to-end ingest."""

from __future__ import annotations

import shutil
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from bench.harness import Figure, figure


def sdk_figures(repetitions: int, calls: int) -> list[Figure]:
    import ledgerflow as lf

    home = Path(tempfile.mkdtemp(prefix="lf-bench-sdk-"))
    try:
        lf.set_tracking_uri(f"file:{home}")
        lf.set_experiment("bench")
        with lf.start_run(run_name="hot-path"):
            log_metric = lf.log_metric

            def hot_path() -> float:
                start = time.perf_counter_ns()
                for step in range(calls):
                    log_metric("loss", 0.5, step=step)
                elapsed = time.perf_counter_ns() - start
                lf.flush()  # outside the timed loop: keeps the buffer from filling across repetitions
                return elapsed / calls / 1000

            hot = figure("SDK: one log_metric call (hot path, buffered)", "microseconds", "lower", hot_path,
                         repetitions, goal=2.0, notes=f"median over repetitions of {calls:,} calls each")

            def end_to_end() -> float:
                start = time.perf_counter()
                for step in range(calls):
                    log_metric("acc", 0.25, step=step)
                lf.flush()
                return calls / (time.perf_counter() - start)

            e2e = figure("SDK: log_metric calls made durable in the embedded log (incl. flush)", "points/s",
                         "higher", end_to_end, repetitions,
                         notes="single training thread; the background flusher shares its GIL")
        return [hot, e2e]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def sdk_throughput(tracking_uri: str, repetitions: int, calls: int) -> list[float]:
    """Points/s of ``calls`` log_metric calls made durable (incl. flush) through any tracking URI, e.g. a server."""
    import ledgerflow as lf

    client = lf.TrackingClient(tracking_uri)
    try:
        run_id = client.create_run(client.create_experiment("bench-sdk-transport"), run_name="throughput").info.run_id
        first = [0]

        def once() -> float:
            start = time.perf_counter()
            for step in range(first[0], first[0] + calls):
                client.log_metric(run_id, "loss", 0.5, step=step)
            client.flush()
            first[0] += calls
            return calls / (time.perf_counter() - start)

        once()  # warm-up
        return [once() for _ in range(repetitions)]
    finally:
        client.close()


BASE_TIMESTAMP_MS = 1_763_000_000_000
IngestCall = Literal["log_batch", "log_metric_series"]


def ingest_end_to_end(repetitions: int, points: int, call: IngestCall, points_per_call: int = 1000) -> list[float]:
    """Points/s from the first SDK call until every point is a row in DuckDB, one sample per repetition.

    Each sample times, back to back and never overlapped (a pipelined projector would only be
    faster): ``points`` points logged in calls of ``points_per_call`` (``log_batch`` of Metric
    objects, the peers' call; or ``log_metric_series`` of arrays, ledgerflow's bulk call), the
    flush that makes them durable in the embedded log, the projector catching up into a DuckDB
    file, and a query that counts the rows. The inputs are built before the clock starts, as
    the peers' driver does for its log_batch calls.
    """
    import ledgerflow as lf
    from ledgerflow.ingest.log import open_log
    from ledgerflow.projector import ProjectionStore, Projector

    def once() -> float:
        home = Path(tempfile.mkdtemp(prefix="lf-bench-e2e-"))
        try:
            with lf.TrackingClient(f"file:{home}", flush_interval=60) as client:
                run_id = client.create_run(client.create_experiment("e2e"), run_name=call).info.run_id
                client.flush()
                log = open_log(f"file:{home}")
                store = ProjectionStore(home / "projection.duckdb")
                projector = Projector(log, store)
                try:
                    projector.run_until_caught_up()  # the experiment and run, before the clock starts
                    send = _prepared_calls(client, run_id, call, points, points_per_call)
                    start = time.perf_counter()
                    for log_call in send:
                        log_call()
                    client.flush()
                    projector.run_until_caught_up()
                    rows = store.connection.execute("SELECT count(*) FROM metrics WHERE run_id = ?",
                                                    [run_id]).fetchone()[0]
                    elapsed = time.perf_counter() - start
                finally:
                    projector.close()
                    store.close()
                    log.close()
            if rows != points:
                raise RuntimeError(f"end-to-end ingest lost points: {rows:,} rows in DuckDB, {points:,} logged")
            return points / elapsed
        finally:
            shutil.rmtree(home, ignore_errors=True)

    once()  # warm-up
    return [once() for _ in range(repetitions)]


def _prepared_calls(client: object, run_id: str, call: IngestCall, points: int,
                    per_call: int) -> list[Callable[[], None]]:
    """The SDK calls of one end-to-end sample, with their arguments built ahead of time."""
    import ledgerflow as lf

    calls: list[Callable[[], None]] = []
    for first in range(0, points, per_call):
        steps = range(first, min(points, first + per_call))
        if call == "log_batch":
            metrics = [lf.Metric("loss", 1.0 / (1 + step), BASE_TIMESTAMP_MS + step, step) for step in steps]
            calls.append(lambda metrics=metrics: client.log_batch(run_id, metrics=metrics))
        else:
            values = array("d", [1.0 / (1 + step) for step in steps])
            step_column = array("q", steps)
            stamps = array("q", [BASE_TIMESTAMP_MS + step for step in steps])
            calls.append(lambda v=values, s=step_column, t=stamps:
                         client.log_metric_series(run_id, "loss", v, s, t))
    return calls
