"""The projector's commands, run as a user would: ledgerflow projector / replay / db checksum."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ledgerflow.ingest.log.file import FileLog

from .workload import DAY2, standard_workload


def _ledgerflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerflow", *args], capture_output=True, text=True, timeout=120)


def _home_with_workload(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    log = FileLog(home / "events")
    log.append_batch(standard_workload().entries())
    log.close()
    return home


def test_projector_once_and_replay_agree_on_every_checksum(tmp_path: Path) -> None:
    home = _home_with_workload(tmp_path)
    live, rebuilt = tmp_path / "live.duckdb", tmp_path / "replayed.duckdb"
    projected = _ledgerflow("projector", "--once", "--log", f"file:{home}", "--db", str(live))
    assert projected.returncode == 0, projected.stderr
    events = len(standard_workload().events)
    assert f"projected {events} events (18000 metric points), 0 dead letters" in projected.stdout
    replayed = _ledgerflow("replay", "--quiet", "--log", f"file:{home}", "--db", str(rebuilt))
    assert replayed.returncode == 0, replayed.stderr
    assert f"{events} events applied, 18,000 metric points" in replayed.stdout and "MetricsLogged" in replayed.stdout
    sums = [json.loads(_ledgerflow("db", "checksum", "--json", "--db", str(db)).stdout) for db in (live, rebuilt)]
    assert sums[0] == sums[1]
    assert sums[0]["tables"]["metrics"]["rows"] == 18000


def test_replay_until_reports_what_it_left_out(tmp_path: Path) -> None:
    home = _home_with_workload(tmp_path)
    result = _ledgerflow("replay", "--quiet", "--log", f"file:{home}", "--db", str(tmp_path / "asof.duckdb"),
                         "--until", DAY2.isoformat())
    assert result.returncode == 0, result.stderr
    assert "events after --until left out" in result.stdout


def test_bad_arguments_get_clear_errors_and_nothing_is_overwritten(tmp_path: Path) -> None:
    home = _home_with_workload(tmp_path)
    existing = tmp_path / "exists.duckdb"
    existing.write_bytes(b"precious")
    refused = _ledgerflow("replay", "--log", f"file:{home}", "--db", str(existing))
    assert refused.returncode == 1 and "exists; replay builds a new database" in refused.stderr
    assert existing.read_bytes() == b"precious"
    bad_time = _ledgerflow("replay", "--log", f"file:{home}", "--db", str(tmp_path / "x.duckdb"), "--until", "soon")
    assert bad_time.returncode == 2 and "'soon' is not an ISO 8601 time" in bad_time.stderr
    bad_position = _ledgerflow("replay", "--db", str(tmp_path / "y.duckdb"), "--until-position", "a:b")
    assert bad_position.returncode == 2 and "is not a position" in bad_position.stderr
    missing = _ledgerflow("db", "checksum", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 1 and "no database at" in missing.stderr
    other = tmp_path / "other"
    FileLog(other / "events").close()
    live = tmp_path / "live.duckdb"
    assert _ledgerflow("projector", "--once", "--log", f"file:{home}", "--db", str(live)).returncode == 0
    wrong = _ledgerflow("projector", "--once", "--log", f"file:{other}", "--db", str(live))
    assert wrong.returncode == 1 and "use a new --db" in wrong.stderr
