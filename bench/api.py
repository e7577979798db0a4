"""Query API figures on a realistic store: search, compare, metric history, ingest-to-visible freshness.

The data goes in through the real ingest path (SDK -> embedded log -> the server's projector) and
every query goes over HTTP to a real `ledgerflow server` process on loopback.
"""

from __future__ import annotations

import math
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.harness import Figure


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_runs(home: Path, runs: int, params: int = 10, metrics: int = 10, steps: int = 100) -> list[str]:
    """``runs`` finished runs, each with ``params`` params and ``metrics`` x ``steps`` points, via the SDK."""
    import ledgerflow as lf

    client = lf.TrackingClient(f"file:{home}")
    experiment = client.create_experiment("bench-search")
    run_ids = []
    step_column = list(range(steps))
    for n in range(runs):
        run = client.create_run(experiment, run_name=f"run-{n}")
        run_id = run.info.run_id
        client.log_batch(run_id, params=[lf.Param(f"p{k}", f"v{(n + k) % 7}") for k in range(params)])
        for k in range(metrics):
            base = ((n * 7919 + k * 104729) % 1000) / 1000
            client.log_metric_series(run_id, f"m{k}", [base + 1 / (s + 1) for s in step_column], steps=step_column)
        client.set_terminated(run_id)
        run_ids.append(run_id)
    client.flush()
    client.close()
    return run_ids


def load_long_series(home: Path, points: int) -> str:
    import ledgerflow as lf

    client = lf.TrackingClient(f"file:{home}")
    run = client.create_run(client.create_experiment("bench-history"), run_name="long")
    chunk = 100_000
    for start in range(0, points, chunk):
        steps = list(range(start, min(points, start + chunk)))
        client.log_metric_series(run.info.run_id, "loss", [math.sin(s / 1000) + (5 if s % 99_991 == 0 else 0)
                                                           for s in steps], steps=steps)
    client.flush()
    client.close()
    return run.info.run_id


class Server:
    """`ledgerflow server` as a subprocess on a free loopback port."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # stderr to a file, never an unread pipe: a chatty server would block once the pipe filled
        self.log_path = home / "server.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "ledgerflow", "server", "--home", str(home),
                                         "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=self._log)
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def wait_ready(self, timeout: float = 3600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server not ready in time")

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def _latency_ms(send, repetitions: int) -> tuple[float, float, float, list[float]]:
    send()  # warm-up
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        send()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), max(samples), samples


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}")
    return response


def api_figures(runs: int, history_points: int, repetitions: int, freshness_seconds: float) -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="lf-bench-api-"))
    server: Server | None = None
    try:
        started = time.perf_counter()
        run_ids = load_runs(home, runs)
        long_run = load_long_series(home, history_points)
        logged = time.perf_counter() - started
        server = Server(home)
        server.wait_ready()
        loaded = time.perf_counter() - started
        points = runs * 1000 + history_points
        note = f"{runs:,} runs x (10 params, 10 metrics x 100 steps) + one {history_points:,}-point series; " \
               f"logged in {logged:.0f} s, projected and ready after {loaded:.0f} s"
        figures = []

        search = {"filter": "metrics.m0 < 0.5 AND params.p0 = 'v3'", "order_by": ["metrics.m1 ASC"], "max_results": 100}
        med, low, high, _ = _latency_ms(lambda: _ok(server.http.post("/api/v1/runs/search", json=search)), repetitions)
        figures.append(Figure(f"search runs with a filter and an order, {runs:,} runs (HTTP, 100 results)", "ms", "lower",
                              med, low, high, repetitions, goal=50, notes=note))

        ten = run_ids[:10]
        med, low, high, _ = _latency_ms(lambda: _ok(server.http.post("/api/v1/runs/compare", json={
            "run_ids": ten, "max_points": 1000})), repetitions)
        figures.append(Figure("compare 10 runs (params diff, latest metrics, aligned series)", "ms", "lower",
                              med, low, high, repetitions, goal=50))

        med, low, high, _ = _latency_ms(lambda: _ok(server.http.get(
            f"/api/v1/runs/{long_run}/metric-history", params={"key": "loss", "max_points": 1000})), repetitions)
        figures.append(Figure(f"metric history of {history_points:,} points downsampled to 1,000", "ms", "lower",
                              med, low, high, repetitions, goal=100))

        figures.append(_freshness(home, server, freshness_seconds))
        figures.append(Figure("points loaded for the query figures", "points", "higher", float(points), notes=note))
        return figures
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _freshness(home: Path, server: Server, seconds: float, rate: int = 200_000) -> Figure:
    """While a writer appends `rate` points/s to the log, time from a probe's flush to visible in a query."""
    import ledgerflow as lf

    stop = threading.Event()
    written = [0]

    def writer() -> None:
        client = lf.TrackingClient(f"file:{home}")
        run = client.create_run(client.create_experiment("bench-load"), run_name="load").info.run_id
        chunk, step = 10_000, 0
        start = time.perf_counter()
        while not stop.is_set():
            client.log_metric_series(run, "load", [0.5] * chunk, steps=range(step, step + chunk))
            client.flush()
            step += chunk
            written[0] += chunk
            ahead = written[0] / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        client.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    probe = lf.TrackingClient(f"file:{home}")
    run = probe.create_run(probe.create_experiment("bench-probe"), run_name="probe").info.run_id
    probe.flush()
    lags: list[float] = []
    deadline = time.monotonic() + seconds
    step = 0
    begun = time.perf_counter()
    while time.monotonic() < deadline:
        step += 1
        probe.log_metric(run, "probe", 1.0, step=step)
        sent = time.perf_counter()
        probe.flush()
        query = {"sql": f"SELECT max(step) FROM metrics WHERE run_id = '{run}' AND key = 'probe'"}
        while True:  # eventual reads: measures when the projection shows it, not the read-your-writes wait
            rows = _ok(server.http.post("/api/v1/sql", params={"consistency": "eventual"}, json=query)).json()["rows"]
            if rows and rows[0][0] is not None and rows[0][0] >= step:
                break
            time.sleep(0.005)
        lags.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.1)
    elapsed = time.perf_counter() - begun
    stop.set()
    thread.join(timeout=60)
    probe.close()
    lags.sort()
    p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return Figure("ingest-to-visible freshness p99 under load (flush to visible in SQL)", "ms", "lower", p99,
                  lags[0], lags[-1], len(lags), goal=1000,
                  notes=f"p50 {p50:.0f} ms; background writer achieved {written[0] / elapsed:,.0f} points/s "
                        f"(target {rate:,}); {len(lags)} probes")
