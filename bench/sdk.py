"""SDK figures: the cost of one log_metric call on the training loop's hot path, and end-to-end ingest."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

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
