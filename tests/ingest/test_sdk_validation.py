"""Every input rule raises at the call, with a specific error naming the bad value."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import pytest

import ledgerflow as lf
from ledgerflow.errors import InvalidInputError

from .conftest import metric_points, read_events

BAD_KEYS = [
    ("", "must not be empty"),
    ("k" * 251, "251 characters"),
    ("bad*key", "'bad\\*key'"),
    ("tab\tkey", "alphanumerics"),
    ("/abs", "must not start with '/'"),
    ("a/../b", "'..'"),
    ("..", "'..'"),
    ("a//b", "empty"),
    ("trailing/", "empty"),
    ("./x", "'.'"),
    (5, "must be a string, got int 5"),
    (None, "got NoneType"),
]


@pytest.fixture
def run(lf_home: Path) -> lf.ActiveRun:
    with lf.start_run() as active:
        yield active


@pytest.mark.parametrize("key,message", BAD_KEYS)
@pytest.mark.parametrize("call", [
    lambda k: lf.log_metric(k, 1.0),
    lambda k: lf.log_metrics({k: 1.0}),
    lambda k: lf.log_param(k, 1),
    lambda k: lf.log_params({k: 1}),
    lambda k: lf.set_tag(k, "v"),
    lambda k: lf.set_tags({k: "v"}),
    lambda k: lf.delete_tag(k),
], ids=["log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags", "delete_tag"])
def test_bad_keys(run: lf.ActiveRun, call: Callable[[Any], None], key: Any, message: str) -> None:
    with pytest.raises(lf.InvalidKeyError, match=message):
        call(key)


@pytest.mark.parametrize("key", ["loss", "val/loss", "a.b-c_d", "with space", "ns:metric", "k" * 250, "ä1"])
def test_good_keys(run: lf.ActiveRun, key: str) -> None:
    lf.log_metric(key, 1.0)
    lf.log_param(key, 1)
    lf.set_tag(key, 1)


@pytest.mark.parametrize("value,message", [
    ("1.0", "got str '1.0'"), (None, "got NoneType None"), ([1.0], "got list"), (1 + 2j, "got complex"),
    (numpy.array([1.0, 2.0]), "got ndarray"), (10**400, "does not fit a float64"),
])
def test_bad_metric_values(run: lf.ActiveRun, value: Any, message: str) -> None:
    with pytest.raises(lf.InvalidMetricValueError, match=message):
        lf.log_metric("m", value)


def test_special_and_numpy_values_are_kept(run: lf.ActiveRun, lf_home: Path) -> None:
    for step, value in enumerate([math.nan, math.inf, -math.inf, numpy.float32(0.5), numpy.int64(3), True, 7,
                                  numpy.array(2.5)]):
        lf.log_metric("m", value, step=numpy.int64(step) if step % 2 else float(step))
    lf.flush()
    values = [p[2] for p in metric_points(read_events(lf_home))["m"]]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.5, 3.0, 1.0, 7.0, 2.5]
    assert [p[0] for p in metric_points(read_events(lf_home))["m"]] == list(range(8))


@pytest.mark.parametrize("what", ["step", "timestamp"])
@pytest.mark.parametrize("value,message", [
    (1.5, "1.5"), (math.nan, "nan"), (math.inf, "inf"), (True, "got bool True"), ("3", "got str '3'"),
    (2**63, "outside the int64 range"), (-(2**63) - 1, "outside the int64 range"), (numpy.float64(0.25), "0.25"),
])
def test_bad_steps_and_timestamps(run: lf.ActiveRun, what: str, value: Any, message: str) -> None:
    with pytest.raises(lf.InvalidStepError, match=f"{what} must be an integer|{message}") as raised:
        lf.log_metric("m", 1.0, **{what: value})
    assert what in str(raised.value) and "'m'" in str(raised.value)


def test_long_values(run: lf.ActiveRun) -> None:
    lf.log_param("p", "x" * 6000)
    with pytest.raises(lf.ValueTooLongError, match="6001 characters; the limit is 6000"):
        lf.log_param("q", "x" * 6001)
    lf.set_tag("t", "x" * 8000)
    with pytest.raises(lf.ValueTooLongError, match="8001 characters; the limit is 8000"):
        lf.set_tag("t", "x" * 8001)
    with pytest.raises(lf.ValueTooLongError, match="experiment name"):
        lf.set_experiment("e" * 501)


def test_param_overwrite(run: lf.ActiveRun) -> None:
    lf.log_param("lr", 0.1)
    lf.log_param("lr", "0.1")  # the same stored value again is fine
    with pytest.raises(lf.ParamOverwriteError, match="'lr'.*'0.1'.*'0.2'"):
        lf.log_param("lr", 0.2)
    with pytest.raises(lf.ParamOverwriteError):
        lf.log_params({"new": 1, "lr": 0.3})
    lf.log_param("new", 2)  # the failed call logged nothing, so "new" is still free


@pytest.mark.parametrize("metrics,params,tags,message", [
    (1001, 0, 0, "1001 metrics; at most 1000"),
    (0, 101, 0, "101 params; at most 100"),
    (0, 0, 101, "101 tags; at most 100"),
    (900, 100, 1, "1001 metrics, params and tags in all"),
])
def test_batch_limits(run: lf.ActiveRun, metrics: int, params: int, tags: int, message: str) -> None:
    client = lf.get_client()
    client.log_batch(run.info.run_id, [lf.Metric("m", 1.0)] * 900, [lf.Param(f"p{i}", i) for i in range(100)])  # the most that fits
    with pytest.raises(lf.BatchLimitError, match=message):
        client.log_batch(run.info.run_id, [lf.Metric("m", 1.0)] * metrics,
                         [lf.Param(f"q{i}", i) for i in range(params)], [lf.RunTag(f"t{i}", i) for i in range(tags)])


def test_batch_duplicate_param(run: lf.ActiveRun) -> None:
    with pytest.raises(lf.ParamOverwriteError, match="twice"):
        lf.get_client().log_batch(run.info.run_id, params=[lf.Param("a", 1), lf.Param("a", 2)])


@pytest.mark.parametrize("call,error,message", [
    (lambda: lf.set_experiment(""), lf.InvalidKeyError, "experiment name"),
    (lambda: lf.set_experiment(experiment_id="bad id!"), lf.InvalidIdError, "'bad id!'"),
    (lambda: lf.set_experiment(), lf.RunStateError, "exactly one"),
    (lambda: lf.log_metric("m", 1.0, run_id="nope"), lf.InvalidIdError, "'nope'"),
    (lambda: lf.get_client().log_param("ABC", "k", 1), lf.InvalidIdError, "32 lowercase hex"),
    (lambda: lf.log_input(object()), lf.InvalidDatasetError, "lacks name, digest, source"),
    (lambda: lf.log_input(lf.Dataset("d", "x" * 37, "{}")), lf.ValueTooLongError, "digest of dataset 'd'"),
    (lambda: lf.log_input(lf.Dataset("d", "x", "{}"), tags={"k": "v" * 501}), lf.ValueTooLongError, "input tag 'k'"),
    (lambda: lf.log_artifact("/does/not/exist"), lf.InvalidArtifactError, "'/does/not/exist'"),
    (lambda: lf.log_artifact(__file__, "../escape"), lf.InvalidArtifactError, "'..'"),
    (lambda: lf.end_run("DONE"), lf.RunStateError, "'DONE'"),
])
def test_other_rules(run: lf.ActiveRun, call: Callable[[], None], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_every_input_error_is_an_invalid_input_error() -> None:
    for error in (lf.InvalidKeyError, lf.InvalidMetricValueError, lf.InvalidStepError, lf.ValueTooLongError,
                  lf.ParamOverwriteError, lf.BatchLimitError, lf.InvalidIdError, lf.InvalidDatasetError,
                  lf.InvalidArtifactError):
        assert issubclass(error, InvalidInputError) and issubclass(error, ValueError)
