"""TrackingClient: the explicit run-id API, log_batch and bulk metric series."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy
import pytest

import ledgerflow as lf

from .conftest import metric_points, of_type, read_events


@pytest.fixture
def client(data_home: Path):
    with lf.TrackingClient(f"file:{data_home}", flush_interval=60) as client:
        yield client


def test_client_flow(client: lf.TrackingClient, data_home: Path) -> None:
    experiment_id = client.create_experiment("cx", tags={"owner": "me"})
    run = client.create_run(experiment_id, start_time=1_000, run_name="r", tags={"t": "1"})
    client.log_metric(run.info.run_id, "m", 1.5, timestamp=2_000, step=4)
    client.log_batch(run.info.run_id, metrics=[lf.Metric("m", 2.5, 3_000, 5), lf.Metric("n", 1, None, None)],
                     params=[lf.Param("p", "v")], tags=[lf.RunTag("k", "w")])
    client.set_terminated(run.info.run_id, "FAILED", end_time=9_000)
    events = read_events(data_home)
    assert of_type(events, "ExperimentCreated")[0].body["tags"] == [{"key": "owner", "value": "me"}]
    assert of_type(events, "RunStarted")[0].body["start_time"] == 1_000
    points = metric_points(events)
    assert points["m"] == [(4, 2_000, 1.5), (5, 3_000, 2.5)]
    assert points["n"][0][0] == 0 and points["n"][0][2] == 1.0
    assert of_type(events, "ParamsLogged")[0].body["params"] == [{"key": "p", "value": "v"}]
    assert of_type(events, "RunStatusChanged")[0].body | {} == of_type(events, "RunStatusChanged")[0].body
    assert of_type(events, "RunStatusChanged")[0].body["end_time"] == 9_000
    assert client.get_run(run.info.run_id).data.params == {"p": "v"}


@pytest.mark.parametrize("kind", ["list", "array", "numpy"])
def test_log_metric_series(client: lf.TrackingClient, data_home: Path, kind: str) -> None:
    n = 25_000
    values = [i / 7 for i in range(n)]
    steps = list(range(0, 2 * n, 2))
    stamps = list(range(10**12, 10**12 + n))
    make = {"list": list, "array": lambda xs: array("d" if isinstance(xs[1], float) else "q", xs),
            "numpy": numpy.asarray}[kind]
    run = client.create_run("0")
    client.log_metric_series(run.info.run_id, "curve", make(values), make(steps), make(stamps))
    client.log_metric_series(run.info.run_id, "plain", make(values[:10]))
    client.flush()
    events = read_events(data_home)
    metrics = of_type(events, "MetricsLogged")
    assert len(metrics) == 4  # 25,000 points at 10,000 per event, then the short series
    points = metric_points(events)
    assert points["curve"] == list(zip(steps, stamps, values, strict=True))
    assert [p[0] for p in points["plain"]] == list(range(10)) and len({p[1] for p in points["plain"]}) == 1


def test_log_metric_series_rejects_bad_columns(client: lf.TrackingClient) -> None:
    run = client.create_run("0").info.run_id
    with pytest.raises(lf.InvalidMetricValueError, match="'s'"):
        client.log_metric_series(run, "s", ["a", "b"])
    with pytest.raises(lf.InvalidMetricValueError, match="1-d"):
        client.log_metric_series(run, "s", numpy.zeros((2, 2)))
    with pytest.raises(lf.InvalidStepError, match="integers"):
        client.log_metric_series(run, "s", [1.0, 2.0], numpy.array([0.5, 1.5]))
    with pytest.raises(lf.InvalidStepError, match="differ in length"):
        client.log_metric_series(run, "s", [1.0, 2.0], [1, 2, 3])


def test_log_batch_checks_everything_before_logging(client: lf.TrackingClient, data_home: Path) -> None:
    run = client.create_run("0").info.run_id
    with pytest.raises(lf.InvalidMetricValueError):
        client.log_batch(run, metrics=[lf.Metric("ok", 1.0), lf.Metric("bad", "x")], params=[lf.Param("p", 1)])
    client.flush()
    assert not of_type(read_events(data_home), "ParamsLogged")
    assert not of_type(read_events(data_home), "MetricsLogged")


def test_log_batch_keeps_each_keys_order_and_joins_earlier_points(client: lf.TrackingClient,
                                                                   data_home: Path) -> None:
    """log_batch stages per key and extends the run's open columns: nothing reordered, nothing lost."""
    run = client.create_run("0").info.run_id
    client.log_metric(run, "a", 0.5, timestamp=10, step=0)
    client.log_batch(run, metrics=[lf.Metric("a" if i % 2 else "b", i / 3, 100 + i, i) for i in range(1, 1000)])
    client.log_batch(run, metrics=[lf.Metric("b", numpy.float32(0.25), numpy.int64(7), numpy.int32(2_000))])
    client.flush()
    points = metric_points(read_events(data_home))
    assert points["a"] == [(0, 10, 0.5)] + [(i, 100 + i, i / 3) for i in range(1, 1000, 2)]
    assert points["b"] == [(i, 100 + i, i / 3) for i in range(2, 1000, 2)] + [(2_000, 7, 0.25)]


@pytest.mark.parametrize("bad, error", [
    (lf.Metric(["not", "a", "key"], 1.0), lf.InvalidKeyError),
    (lf.Metric("../up", 1.0), lf.InvalidKeyError),
    (lf.Metric("big", 10**400), lf.InvalidMetricValueError),
    (lf.Metric("s", 1.0, step=2**63), lf.InvalidStepError),
    (lf.Metric("t", 1.0, timestamp=1.5), lf.InvalidStepError),
])
def test_log_batch_names_the_bad_metric_and_logs_nothing(client: lf.TrackingClient, data_home: Path,
                                                          bad: lf.Metric, error: type[Exception]) -> None:
    run = client.create_run("0").info.run_id
    with pytest.raises(error):
        client.log_batch(run, metrics=[lf.Metric("fine", 1.0, 1, 1), bad, lf.Metric("fine", 2.0, 2, 2)])
    client.log_metric(run, "after", 1.0)
    client.flush()
    assert list(metric_points(read_events(data_home))) == ["after"]


def test_closed_client_refuses(data_home: Path) -> None:
    client = lf.TrackingClient(f"file:{data_home}")
    run = client.create_run("0").info.run_id
    client.close()
    with pytest.raises(lf.ClientClosedError):
        client.log_metric(run, "m", 1.0)
    assert len(read_events(data_home)) == 2


@pytest.mark.kafka
def test_client_over_kafka(kafka_bootstrap: str, kafka_topic, data_home: Path) -> None:
    """The same client writes to Kafka through open_log; per-run order holds on the run's partition."""
    from ledgerflow.ingest.log import open_log
    from ledgerflow.schemas import decode

    uri = f"kafka://{kafka_bootstrap}/{kafka_topic(partitions=3)}"
    with lf.TrackingClient(uri, flush_interval=60) as client:
        run = client.create_run("0").info.run_id
        for i in range(2_500):
            client.log_metric(run, "m", float(i), step=i)
        client.set_terminated(run)
    with open_log(uri) as log:
        events = [decode(r.value) for r in log.read_all()]
    run_events = [e for e in events if e.entity_key == f"run/{run}"]
    assert [e.type for e in run_events] == ["RunStarted", "MetricsLogged", "RunStatusChanged"]
    assert [p[2] for p in metric_points(run_events)["m"]] == [float(i) for i in range(2_500)]
