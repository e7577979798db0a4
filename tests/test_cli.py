"""The ``ledgerflow`` command: --version, ``events tail`` on real logs (good, damaged, growing), ``demo``."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow import __version__
from ledgerflow.cli import main
from ledgerflow.cli.events import EventFormatter
from ledgerflow.ingest.log import Entry
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.ingest.log.uri import log_directory
from ledgerflow.schemas import Event, default_catalog, encode, make_envelope, pack_series
from ledgerflow.schemas.examples import example_record

EXPERIMENT_ID = "exp-0001"
RUN_ID = "0f3c9a7e5b2d4c1e8a6f4b3d2c1e0a9b"
CHILD_RUN_ID = "7a1b2c3d4e5f60718293a4b5c6d7e8f9"


def cli_script() -> str:
    """The installed ``ledgerflow`` console script of the interpreter running the tests."""
    script = Path(sys.executable).parent / "ledgerflow"
    if not script.exists():
        pytest.fail(f"no ledgerflow console script next to {sys.executable}: is the package installed?")
    return str(script)


class Events:
    """Builds encoded events with increasing sequence numbers, as one producer would."""

    def __init__(self, actor: str = "alice") -> None:
        self.actor = actor
        self.sequence = 0

    def __call__(self, type_: str, entity_key: str, **payload: object) -> Entry:
        envelope = make_envelope(actor=self.actor, producer_id="test-producer", sequence=self.sequence,
                                 entity_key=entity_key)
        self.sequence += 1
        defaults = default_catalog().latest(type_).defaults  # optional fields need not be spelled out
        return Entry(entity_key, encode(Event(type_, {"envelope": envelope, **defaults, **payload})))


def training_events(make: Events) -> list[Entry]:
    """An experiment, a run with params and metrics, a nested run, tags, the end, and a rename."""
    exp_key, run_key = f"experiment/{EXPERIMENT_ID}", f"run/{RUN_ID}"
    steps = list(range(5, 105))
    return [
        make("ExperimentCreated", exp_key, experiment_id=EXPERIMENT_ID, name="mnist-baselines", tags=[]),
        make("RunStarted", run_key, run_id=RUN_ID, experiment_id=EXPERIMENT_ID, run_name="baseline",
             start_time=1_700_000_000_000, status="RUNNING", user_id="alice", tags=[]),
        make("ParamsLogged", run_key, run_id=RUN_ID,
             params=[{"key": "learning_rate", "value": "0.01"}, {"key": "batch_size", "value": "64"}]),
        make("MetricsLogged", run_key, run_id=RUN_ID, series=[
            pack_series("train_loss", steps, [1_700_000_000_000 + s for s in steps], [1 / (s + 1) for s in steps]),
            pack_series("val_accuracy", [0, 50], [1_700_000_000_000, 1_700_000_000_050], [0.5, 0.9]),
        ]),
        make("RunStarted", f"run/{CHILD_RUN_ID}", run_id=CHILD_RUN_ID, experiment_id=EXPERIMENT_ID,
             run_name="eval", parent_run_id=RUN_ID, start_time=1_700_000_001_000, status="RUNNING",
             user_id="alice", tags=[]),
        make("RunTagsSet", run_key, run_id=RUN_ID, tags=[{"key": "team", "value": "vision"}]),
        make("RunStatusChanged", run_key, run_id=RUN_ID, status="FINISHED", end_time=1_700_000_002_000),
        make("ExperimentRenamed", exp_key, experiment_id=EXPERIMENT_ID, new_name="mnist-final"),
        make("ExperimentTagSet", exp_key, experiment_id=EXPERIMENT_ID, key="owner", value="vision"),
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home whose embedded log holds :func:`training_events`."""
    home = tmp_path / "home"
    with FileLog(log_directory(home)) as log:
        log.append_batch(training_events(Events()))
    return home


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LEDGERFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LEDGERFLOW_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("LEDGERFLOW_FSYNC", "never")


def tail(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["events", "tail", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_from_the_console_script() -> None:
    result = subprocess.run([cli_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ledgerflow {__version__}"


def test_tail_prints_one_line_per_event_with_names_runs_and_metrics(home: Path, capsys) -> None:
    code, out, err = tail(capsys, "--log", f"file:{home}")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 9, out
    assert err == ""
    assert "ExperimentCreated" in lines[0] and "mnist-baselines" in lines[0] and "alice" in lines[0]
    assert RUN_ID in lines[1] and "'baseline'" in lines[1] and "mnist-baselines" in lines[1]
    assert "learning_rate" in lines[2] and "batch_size" in lines[2]
    metrics = lines[3]
    assert "MetricsLogged" in metrics and RUN_ID in metrics
    assert "train_loss: 100 pts steps 5..104" in metrics
    assert "val_accuracy: 2 pts steps 0..50" in metrics
    assert CHILD_RUN_ID in lines[4] and f"parent={RUN_ID}('baseline')" in lines[4]
    assert "team" in lines[5]
    assert "FINISHED" in lines[6]
    assert "mnist-final" in lines[7]
    assert "experiment='mnist-final'" in lines[8], "a rename must annotate later events with the new name"


def test_tail_last_n_still_learns_names_from_earlier_events(home: Path, capsys) -> None:
    code, out, _ = tail(capsys, "--log", f"file:{home}", "-n", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert "ExperimentRenamed" in lines[0] and "mnist-baselines" in lines[0]


def test_tail_reads_the_default_log_of_ledgerflow_home(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_HOME", str(home))
    code, out, _ = tail(capsys)
    assert code == 0 and len(out.splitlines()) == 9


def test_tail_json_lines(home: Path, capsys) -> None:
    code, out, _ = tail(capsys, "--log", str(home), "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["type"] for r in records][:2] == ["ExperimentCreated", "RunStarted"]
    assert records[1]["experiment_name"] == "mnist-baselines"
    metrics = records[3]
    assert metrics["series"][0] == {"key": "train_loss", "points": 100, "steps": [5, 104]}
    assert metrics["envelope"]["actor"] == "alice"


def test_tail_warns_about_a_torn_record_and_keeps_earlier_events(home: Path, capsys) -> None:
    with FileLog(log_directory(home)) as log:
        end = log.end_position()[0]
        log.append_batch([Events()("RunDeleted", f"run/{RUN_ID}", run_id=RUN_ID)])
        segment = log.segment_path(log.segment_bases()[-1])
    with open(segment, "r+b") as f:
        f.truncate(end + 12)  # the frame header is there, most of the payload is not
    code, out, err = tail(capsys, "--log", f"file:{home}")
    assert code == 0
    assert len(out.splitlines()) == 9, "every event before the damage is still shown"
    assert "warning: damaged record" in err and "torn record" in err


def test_tail_warns_about_undecodable_events_and_goes_on(home: Path, capsys) -> None:
    with FileLog(log_directory(home)) as log:
        log.append_batch([Entry("x", b"not an avro event"), Entry("x", b"\xc3\x01" + bytes(8) + b"body")])
        log.append_batch([Events()("RunDeleted", f"run/{RUN_ID}", run_id=RUN_ID)])
    code, out, err = tail(capsys, "--log", f"file:{home}")
    assert code == 0
    assert err.count("warning: undecodable event") == 2, err
    assert "unknown writer schema fingerprint" in err
    assert "RunDeleted" in out.splitlines()[-1]


def test_every_event_type_renders(capsys) -> None:
    formatter = EventFormatter()
    for name in default_catalog().event_types:
        schema = default_catalog().latest(name)
        for variant in ("minimal", "full"):
            line = formatter.render(Event(name, example_record(schema, variant), schema.version))
            assert line.type == name and line.time.endswith("Z")
            json.dumps(line.data)


@pytest.mark.parametrize("uri", ["nope://somewhere", "file:"])
def test_bad_log_uri_exits_1_with_a_clear_message(uri: str, capsys) -> None:
    code, out, err = tail(capsys, "--log", uri)
    assert code == 1
    assert err.startswith("ledgerflow: error:") and "URI" in err
    assert out == ""


def test_missing_embedded_log_exits_1(tmp_path: Path, capsys) -> None:
    code, _, err = tail(capsys, "--log", f"file:{tmp_path / 'typo'}")
    assert code == 1 and "no event log" in err
    assert not (tmp_path / "typo").exists(), "reading must not create a log"


def _lines_of(stream) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(process: subprocess.Popen[str], lines: queue.Queue[str], text: str, timeout: float = 30.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            if process.poll() is not None:
                pytest.fail(f"the tail exited with {process.returncode}: {process.stderr.read()}")
            continue
        if text in seen[-1]:
            return seen
    pytest.fail(f"{text!r} not printed within {timeout}s; got {seen}")


@pytest.fixture
def follower(home: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [cli_script(), "events", "tail", "--log", f"file:{home}", "--follow", "--from-beginning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    yield process
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=30)
    process.stdout.close()
    process.stderr.close()


def test_follow_picks_up_events_appended_after_it_started(home: Path, follower: subprocess.Popen[str]) -> None:
    lines = _lines_of(follower.stdout)
    _wait_for(follower, lines, "ExperimentTagSet")  # the last existing event: it is caught up
    with FileLog(log_directory(home)) as log:
        log.append_batch([Events("bob")("ExperimentCreated", "experiment/exp-2", experiment_id="exp-2",
                                        name="appended-later", tags=[])])
    seen = _wait_for(follower, lines, "appended-later")
    assert "bob" in seen[-1]
    assert follower.poll() is None, "--follow keeps running"
    follower.terminate()
    assert follower.wait(timeout=30) is not None


def test_demo_logs_through_the_sdk_and_prints_the_events(tmp_path: Path, capsys) -> None:
    import ledgerflow

    if not hasattr(ledgerflow, "start_run"):
        pytest.fail("the tracking SDK (ledgerflow.start_run) is not there yet: the demo cannot run")
    home = tmp_path / "demo-home"
    assert main(["demo", "--home", str(home), "--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "ExperimentCreated" in out and "ledgerflow-demo" in out
    assert "RunStarted" in out and "'baseline'" in out and "'evaluation'" in out
    assert "MetricsLogged" in out and "loss" in out
    assert "ParamsLogged" in out and "learning_rate" in out
    assert "FINISHED" in out
    assert (log_directory(home) / "segments").is_dir()
