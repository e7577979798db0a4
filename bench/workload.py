"""The query workload, one deterministic definition written into every store (ledgerflow, MLflow, FastTrackML).

Run ``n`` of experiment ``bench-search`` has id ``uuid5(RUN_NAMESPACE, "bench-run-n").hex``, name
``run-n``, ``params`` params ``p<k> = v<(n + k) % 7>``, ``tags`` tags (``team``, ``stage``, ``seed``...)
and ``metrics`` keys ``m<k>``, each a series of ``steps`` points (value ``base + 1 / (step + 1)``,
with ``base`` unique per run and key so an order by one metric has no ties). The run is FINISHED.
Experiment ``bench-history`` holds one run (``long``) with one long ``loss`` series.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

RUN_NAMESPACE = uuid.UUID("6c656467-6572-466c-8f77-62656e636821")
SEARCH_EXPERIMENT = "bench-search"
HISTORY_EXPERIMENT = "bench-history"
HISTORY_KEY = "loss"
BASE_TIME_MS = 1_763_000_000_000
_PRIME = 100_003  # > the largest run count: base values stay distinct per key

#: the search every store answers (issue 5: filtered + ordered, one page)
SEARCH_FILTER = "metrics.m0 < 0.5 AND params.p0 = 'v3'"
SEARCH_ORDER_BY = ["metrics.m1 ASC"]
SEARCH_PAGE = 100


@dataclass(frozen=True)
class Series:
    key: str
    steps: list[int]
    timestamps: list[int]
    values: list[float]


@dataclass(frozen=True)
class RunRecord:
    index: int
    run_id: str
    name: str
    start_time: int
    end_time: int
    params: list[tuple[str, str]]
    tags: list[tuple[str, str]]
    series: list[Series]

    @property
    def points(self) -> int:
        return sum(len(s.values) for s in self.series)


@dataclass(frozen=True)
class QueryWorkload:
    """Sizes of the query workload (defaults fit a 2-core machine)."""

    runs: int
    params: int = 10
    tags: int = 3
    metrics: int = 10
    steps: int = 10
    history_points: int = 1_000_000

    @property
    def points(self) -> int:
        return self.runs * self.metrics * self.steps + self.history_points


def run_id_of(index: int) -> str:
    return uuid.uuid5(RUN_NAMESPACE, f"bench-run-{index}").hex


def history_run_id() -> str:
    return uuid.uuid5(RUN_NAMESPACE, "bench-history-long").hex


def metric_base(index: int, key_number: int) -> float:
    return ((index * 7919 + key_number * 104_729) % _PRIME) / _PRIME


def search_runs(workload: QueryWorkload, first: int = 0) -> Iterator[RunRecord]:
    """Runs ``first`` .. ``workload.runs - 1`` of the search experiment, the same in every store."""
    for n in range(first, workload.runs):
        start = BASE_TIME_MS + n * 1000
        steps = list(range(workload.steps))
        timestamps = [start + s * 10 for s in steps]
        series = [Series(f"m{k}", steps, timestamps, [metric_base(n, k) + 1 / (s + 1) for s in steps])
                  for k in range(workload.metrics)]
        tag_values = [("team", f"team-{n % 5}"), ("stage", ("dev", "staging", "prod")[n % 3]), ("seed", str(n))]
        tags = tag_values[:workload.tags] + [(f"t{k}", f"x{n % 11}") for k in range(3, workload.tags)]
        yield RunRecord(n, run_id_of(n), f"run-{n}", start, start + 60_000,
                        [(f"p{k}", f"v{(n + k) % 7}") for k in range(workload.params)], tags, series)


def history_run(points: int) -> RunRecord:
    """The one run with a long ``loss`` series (a spike every 99,991 steps, as training curves have)."""
    steps = list(range(points))
    values = [math.sin(s / 1000) + (5.0 if s % 99_991 == 0 else 0.0) for s in steps]
    start = BASE_TIME_MS
    return RunRecord(-1, history_run_id(), "long", start, start + points, [], [],
                     [Series(HISTORY_KEY, steps, [start + s for s in steps], values)])


def expected_search_names(workload: QueryWorkload) -> list[str]:
    """The page every store must return for SEARCH_FILTER / SEARCH_ORDER_BY (checks the stores agree)."""
    last = workload.steps - 1
    matching = [(metric_base(n, 1) + 1 / (last + 1), f"run-{n}") for n in range(workload.runs)
                if metric_base(n, 0) + 1 / (last + 1) < 0.5 and f"v{n % 7}" == "v3"]
    return [name for _, name in sorted(matching)[:SEARCH_PAGE]]
