"""Projector figures: projection and replay rate, peak RSS over a long log, bytes per point on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.harness import Figure, figure
from ledgerflow.ingest.log import Entry
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.schemas import Event, encode, make_envelope, pack_series

POINTS_PER_EVENT = 1000


def _event(event_type: str, key: str, sequence: int, **fields) -> Event:
    return Event(event_type, {"envelope": make_envelope(actor="bench", producer_id="bench", sequence=sequence,
                                                        entity_key=key), **fields})


def build_log(directory: Path, points: int, runs: int = 10) -> FileLog:
    """A log of ``points`` metric points in 1,000-point MetricsLogged events over ``runs`` runs.

    Values are float32-rounded noisy decay curves, as a training loop's ``loss.item()`` gives.
    """
    import numpy

    log = FileLog(directory, fsync="never")
    run_ids = [uuid.uuid4().hex for _ in range(runs)]
    setup = [_event("ExperimentCreated", "experiment/bench", 0, experiment_id="bench", name="bench",
                    artifact_location=None, tags=[])]
    setup += [_event("RunStarted", f"run/{r}", i + 1, run_id=r, experiment_id="bench", run_name=f"run-{i}",
                     parent_run_id=None, start_time=1_763_000_000_000, status="RUNNING", user_id="bench",
                     artifact_uri=None, tags=[]) for i, r in enumerate(run_ids)]
    log.append_batch([Entry(e.entity_key, encode(e)) for e in setup])
    rng = numpy.random.default_rng(7)
    batch: list[Entry] = []
    for index in range(points // POINTS_PER_EVENT):
        run = run_ids[index % runs]
        first = (index // runs) * POINTS_PER_EVENT
        steps = numpy.arange(first, first + POINTS_PER_EVENT, dtype="<i8")
        values = (1.0 / (1.0 + steps * 1e-4) + rng.normal(0, 0.01, POINTS_PER_EVENT)).astype(numpy.float32)
        event = _event("MetricsLogged", f"run/{run}", index, run_id=run,
                       series=[pack_series("loss", steps, 1_763_000_000_000 + steps * 50, values.astype("<f8"))])
        batch.append(Entry(event.entity_key, encode(event)))
        if len(batch) == 200:
            log.append_batch(batch)
            batch = []
    log.append_batch(batch)
    return log


def projection_figures(repetitions: int, points: int) -> list[Figure]:
    from ledgerflow.projector import ProjectionStore, Projector, replay

    work = Path(tempfile.mkdtemp(prefix="lf-bench-projector-"))
    try:
        log = build_log(work / "events", points)
        sizes: list[float] = []

        def projection() -> float:
            db = work / f"live-{uuid.uuid4().hex}.duckdb"
            store = ProjectionStore(db)
            projector = Projector(log, store)
            start = time.perf_counter()
            totals = projector.run_until_caught_up()
            store.connection.execute("CHECKPOINT")
            elapsed = time.perf_counter() - start
            projector.close()
            store.close()
            sizes.append(db.stat().st_size / totals.points)
            db.unlink()
            return totals.points / elapsed

        def full_replay() -> float:
            db = work / f"replay-{uuid.uuid4().hex}.duckdb"
            start = time.perf_counter()
            totals = replay(log, db)
            elapsed = time.perf_counter() - start
            db.unlink()
            return totals.points / elapsed

        figures = [
            figure("projector: catch up on 1,000-point MetricsLogged events into DuckDB", "points/s", "higher",
                   projection, repetitions, goal=1_000_000, notes=f"{points:,} points over 10 runs, incl. CHECKPOINT"),
            figure("replay: rebuild a new database from the start of the log", "points/s", "higher", full_replay,
                   repetitions, goal=1_000_000),
        ]
        sizes.sort()
        figures.append(Figure("DuckDB bytes on disk per metric point (whole database file)", "bytes", "lower",
                              sizes[len(sizes) // 2], sizes[0], sizes[-1], len(sizes), goal=10,
                              notes="float32-rounded loss curves with noise; events and latest_metrics included"))
        log.close()
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss_figures(points: int) -> list[Figure]:
    """Peak RSS of a projector process (the real CLI) while it projects ``points`` points."""
    work = Path(tempfile.mkdtemp(prefix="lf-bench-rss-"))
    try:
        build_log(work / "home" / "events", points).close()
        process = subprocess.Popen([sys.executable, "-m", "ledgerflow", "projector", "--once", "--log",
                                    f"file:{work / 'home'}", "--db", str(work / "rss.duckdb")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, int]] = []
        start = time.perf_counter()
        while process.poll() is None:
            try:
                samples.append((time.perf_counter() - start, _rss_kib(process.pid)))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.2)
        if process.returncode not in (0, None):
            raise RuntimeError(f"projector failed: {process.stderr.read()}")
        rss = [kib / 1024 for _, kib in samples if kib]
        quarter = [rss[min(len(rss) - 1, int(len(rss) * q))] for q in (0.25, 0.5, 0.75)] if rss else []
        notes = (f"{points:,} points; RSS at 25/50/75% of the run: " + ", ".join(f"{m:.0f}" for m in quarter)
                 + f" MiB; {len(rss)} samples over {samples[-1][0] if samples else 0:.0f} s")
        peak = max(rss) if rss else None
        # min is the RSS a quarter into the run (after start-up), so min..max shows how flat it stays
        return [Figure("projector peak RSS while projecting", "MiB", "lower", peak, quarter[0] if quarter else None,
                       peak, 1, goal=512, notes=notes)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # a quick manual run: python -m bench.projector [points]
    for f in projection_figures(3, int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000):
        print(f.name, f.ledgerflow, f.unit, os.linesep, f.notes)
