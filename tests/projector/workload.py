"""A deterministic event workload touching every event type, with known times for time travel.

Phases (occurred_at): day 1 set-up, day 2 training and registry, day 3 changes and deletions.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerflow.ingest.log import Entry
from ledgerflow.schemas import Event, encode, make_envelope, pack_series

DAY1 = datetime(2026, 10, 30, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)


class Workload:
    """Builds events with increasing times; ``entries()`` encodes them for a log."""

    def __init__(self, seed: int = 0) -> None:
        self.events: list[Event] = []
        self._sequence = 0
        self._seed = seed

    def event(self, event_type: str, at: datetime, entity_key: str, **fields: Any) -> Event:
        self._sequence += 1
        envelope = make_envelope(actor="ana", producer_id=f"workload-{self._seed}", sequence=self._sequence,
                                 entity_key=entity_key, occurred_at=at + timedelta(microseconds=self._sequence),
                                 event_id=uuid.UUID(int=self._seed << 64 | self._sequence))
        event = Event(event_type, {"envelope": envelope, **fields})
        self.events.append(event)
        return event

    def entries(self, events: list[Event] | None = None) -> list[Entry]:
        return [Entry(e.entity_key, encode(e)) for e in (self.events if events is None else events)]


def run_id(n: int, seed: int = 0) -> str:
    return uuid.UUID(int=(seed + 1) << 80 | n).hex


def standard_workload(seed: int = 0, runs: int = 3, points_per_run: int = 3000) -> Workload:
    w = Workload(seed)
    exp = f"exp-{seed}"
    ek = f"experiment/{exp}"
    w.event("ExperimentCreated", DAY1, ek, experiment_id=exp, name=f"churn-{seed}", artifact_location=None,
            tags=[{"key": "team", "value": "ml"}])
    w.event("ExperimentTagSet", DAY1, ek, experiment_id=exp, key="owner", value="ana")
    for n in range(runs):
        rid = run_id(n, seed)
        w.event("RunStarted", DAY1, f"run/{rid}", run_id=rid, experiment_id=exp, run_name=f"run-{n}",
                parent_run_id=run_id(0, seed) if n == 2 else None, start_time=1_761_814_800_000 + n, status="RUNNING",
                user_id="ana", artifact_uri=None, tags=[{"key": "stage", "value": "dev"}])
        w.event("ParamsLogged", DAY1, f"run/{rid}", run_id=rid, params=[{"key": "lr", "value": str(0.1 / (n + 1))},
                                                              {"key": "model", "value": "rf" if n % 2 else "gbm"}])
        w.event("DatasetInputLogged", DAY1, f"run/{rid}", run_id=rid, context="training", tags=[],
                dataset={"name": "churn", "digest": f"d{seed}", "source_type": "local", "source": '{"uri": "/data"}',
                         "schema": None, "profile": '{"rows": 100}'})
    for n in range(runs):
        rid = run_id(n, seed)
        for chunk in range(0, points_per_run, 1000):
            steps = range(chunk, min(points_per_run, chunk + 1000))
            w.event("MetricsLogged", DAY2, f"run/{rid}", run_id=rid, series=[
                pack_series("loss", steps, [1_761_900_000_000 + s for s in steps], [1 / (s + 1) + n for s in steps]),
                pack_series("acc", steps, [1_761_900_000_000 + s for s in steps],
                            [math.nan if s == 5 else s / points_per_run for s in steps])])
        w.event("ArtifactLogged", DAY2, f"run/{rid}", run_id=rid, path="model/model.pkl", uri=f"file:///a/{rid}/model.pkl",
                size=1234, sha256="ab" * 32)
        w.event("RunStatusChanged", DAY2, f"run/{rid}", run_id=rid, status="FINISHED", end_time=1_761_901_000_000)
    w.event("RegisteredModelCreated", DAY2, "registry", name=f"churn-model-{seed}", description=None, tags=[])
    for version in (1, 2):
        w.event("ModelVersionCreated", DAY2, "registry", name=f"churn-model-{seed}", version=version,
                source=f"runs:/{run_id(version - 1, seed)}/model", run_id=run_id(version - 1, seed), artifact_uri=None,
                signature=None, description=None, tags=[])
    w.event("ModelVersionAliasSet", DAY2, "registry", name=f"churn-model-{seed}", alias="champion", version=1)
    # day 3: the alias moves, a run is deleted and renamed, a tag removed, the experiment renamed
    w.event("ModelVersionAliasSet", DAY3, "registry", name=f"churn-model-{seed}", alias="champion", version=2)
    w.event("ModelVersionStageChanged", DAY3, "registry", name=f"churn-model-{seed}", version=2, stage="PRODUCTION",
            archive_existing_versions=True)
    w.event("RunDeleted", DAY3, f"run/{run_id(1, seed)}", run_id=run_id(1, seed))
    w.event("RunTagDeleted", DAY3, f"run/{run_id(0, seed)}", run_id=run_id(0, seed), key="stage")
    w.event("ExperimentRenamed", DAY3, ek, experiment_id=exp, new_name=f"churn-{seed}-v2")
    return w
