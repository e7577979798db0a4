"""SIGKILL the projector at random moments while a producer writes; the result must equal a clean replay.

Runs with the embedded log and with the real Kafka broker. Zero lost, zero doubled: any event
applied twice would show up as a duplicate dead letter and change the checksums.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ledgerflow.ingest.log import open_log
from ledgerflow.projector import database_checksums, replay

KILLS = 22
SEEDS = 10
PRODUCER = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from workload import standard_workload
from ledgerflow.ingest.log import open_log
log = open_log(sys.argv[1])
for seed in range(int(sys.argv[3])):
    entries = standard_workload(seed=seed, runs=3, points_per_run=20000).entries()
    for start in range(0, len(entries), 7):
        log.append_batch(entries[start:start + 7])
        time.sleep(0.05)
log.close()
print("producer done", flush=True)
"""



def _projector(uri: str, db: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ledgerflow", "projector", "--log", uri, "--db", str(db), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _crash_loop(uri: str, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("LEDGERFLOW_CRASH_SEED", "20261123")))
    db = tmp_path / "live.duckdb"
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, uri, str(Path(__file__).parent), str(SEEDS)],
                                stdout=subprocess.PIPE, text=True)
    kills = 0
    try:
        while kills < KILLS:
            projector = _projector(uri, db)
            time.sleep(rng.uniform(0.4, 1.6))
            if projector.poll() is not None:  # it must not exit by itself
                pytest.fail(f"projector exited with {projector.returncode}: {projector.stderr.read()}")
            projector.send_signal(signal.SIGKILL)
            projector.wait()
            kills += 1
        assert producer.wait(timeout=300) == 0
    finally:
        if producer.poll() is None:
            producer.kill()
    finished = _projector(uri, db, "--once")
    _, errors = finished.communicate(timeout=300)
    assert finished.returncode == 0, errors
    clean = tmp_path / "clean.duckdb"
    log = open_log(uri)
    try:
        totals = replay(log, clean)
    finally:
        log.close()
    assert totals.dead_letters == 0
    live, reference = database_checksums(db), database_checksums(clean)
    assert live["metrics"]["rows"] == SEEDS * 3 * 20000 * 2
    assert live["dead_letters"]["rows"] == 0, "an event was applied twice or lost its context"
    assert live == reference


@pytest.mark.slow
def test_sigkilled_projector_on_the_embedded_log_equals_a_clean_replay(tmp_path: Path) -> None:
    _crash_loop(f"file:{tmp_path / 'home'}", tmp_path)


@pytest.mark.slow
def test_sigkilled_projector_on_kafka_equals_a_clean_replay(tmp_path: Path, kafka_bootstrap: str) -> None:
    _crash_loop(f"kafka://{kafka_bootstrap}/crash-{uuid.uuid4().hex[:8]}", tmp_path)
