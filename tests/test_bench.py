"""``python -m bench --quick`` runs every benchmark group and produces a number for every figure.

The benchmark is a product of this repository like any other: a group that crashes, a figure left
empty, or a peer (MLflow, FastTrackML) that silently stopped being measured fails here. Timings are
never asserted: this machine is shared and the numbers are the benchmark's business, not the test's.
The first run creates the peers' virtualenv (MLflow and FastTrackML from PyPI, about a minute).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEERS = ("mlflow", "fasttrackml")
#: side-by-side figures that have no peer column by nature
LEDGERFLOW_ONLY = ("ledgerflow SDK through ledgerflow server's HTTP ingest endpoint",)


def _bench(*arguments: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-u", "-m", "bench", *arguments], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quick_bench_runs_every_group_and_measures_every_figure(tmp_path: Path, kafka_bootstrap: str) -> None:
    groups = _bench("--list").stdout.split()
    assert "side-by-side" in groups and "api" in groups, groups

    result = _bench("--quick", "--out", str(tmp_path), timeout=1700,
                    env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    output = f"stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
    assert result.returncode == 0, output

    document = json.loads((tmp_path / "quick.json").read_text())
    assert document["quick"] is True and document["failed_groups"] == [], output
    assert document["versions"] == {"mlflow": "3.17.0", "fasttrackml": "0.6.0"}
    assert document["machine"]["cpus"] >= 1
    figures = document["figures"]
    assert {f["group"] for f in figures} == set(groups), output

    for f in figures:
        assert f["better"] in ("higher", "lower"), f
        assert _number(f["ledgerflow"]), f"no ledgerflow value: {f['name']}: {f['notes']}"
        if f["min"] is not None:
            assert f["min"] <= f["ledgerflow"] <= f["max"], f
    side_by_side = [f for f in figures if f["group"] == "side-by-side"]
    assert len(side_by_side) >= 15
    for f in side_by_side:
        if f["name"].startswith(LEDGERFLOW_ONLY):
            assert f["mlflow"] is None and f["fasttrackml"] is None, f
            continue
        for peer in PEERS:
            if f[peer] is None:
                # a peer may lack an endpoint (FastTrackML has no get-history-bulk-interval), never silently
                assert f"{peer}: does not serve this endpoint" in f["notes"], f"{peer} not measured: {f}"
            else:
                assert _number(f[peer]) and f[peer] > 0, f
                assert _number(f[f"ratio_{peer}"]), f

    by_name = {f["name"]: f for f in side_by_side}
    search = next(f for name, f in by_name.items() if name.startswith("search_runs with a filter"))
    assert all(_number(search[column]) for column in ("ledgerflow", "mlflow", "fasttrackml")), search
    assert "every system returned the expected page" in search["notes"], search["notes"]
    batch = next(f for name, f in by_name.items() if name.startswith("log_batch of 1,000 metrics"))
    assert all(_number(batch[column]) for column in ("ledgerflow", "mlflow", "fasttrackml")), batch
    # the ingest goals sit on the end-to-end figure: ledgerflow timed until its points are rows in DuckDB
    ingest = [f for name, f in by_name.items() if name.startswith("ingest until queryable")]
    assert len(ingest) == 2 and all(_number(f[c]) for f in ingest for c in ("ledgerflow", "mlflow", "fasttrackml"))
    assert [(f["goal_ratio_mlflow"], f["goal_ratio_fasttrackml"]) for f in ingest] == [(100, 50), (None, None)]
    assert "count(*) in DuckDB" in ingest[0]["notes"], ingest[0]["notes"]

    table = (tmp_path / "quick.md").read_text()
    assert "| figure | unit | better | ledgerflow | MLflow | FastTrackML | vs MLflow | vs FastTrackML |" in table
    assert search["name"] in table
