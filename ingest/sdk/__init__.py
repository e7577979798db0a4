"""The tracking SDK: the fluent API (``import ledgerflow as lf``) and :class:`TrackingClient`.

See docs/sdk.md for URIs, buffering, flush and durability semantics, and validation rules.
"""

from ledgerflow.ingest.sdk.client import EXPERIMENT_NAMESPACE, TrackingClient, experiment_id_for
from ledgerflow.ingest.sdk.entities import (
    Dataset,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
)
from ledgerflow.ingest.sdk.errors import (
    BatchLimitError,
    BufferFullError,
    ClientClosedError,
    DeliveryFailedError,
    InvalidArtifactError,
    InvalidDatasetError,
    InvalidIdError,
    InvalidKeyError,
    InvalidMetricValueError,
    InvalidStepError,
    ParamOverwriteError,
    RunStateError,
    ValueTooLongError,
)
from ledgerflow.ingest.sdk.fluent import (
    ActiveRun,
    active_run,
    delete_tag,
    end_run,
    flush,
    get_client,
    get_tracking_uri,
    last_active_run,
    log_artifact,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)

__all__ = [
    "EXPERIMENT_NAMESPACE", "ActiveRun", "BatchLimitError", "BufferFullError", "ClientClosedError", "Dataset",
    "DeliveryFailedError", "Experiment", "InvalidArtifactError", "InvalidDatasetError", "InvalidIdError",
    "InvalidKeyError", "InvalidMetricValueError", "InvalidStepError", "Metric", "Param", "ParamOverwriteError",
    "Run", "RunData", "RunInfo", "RunStateError", "RunStatus", "RunTag", "TrackingClient", "ValueTooLongError",
    "active_run", "delete_tag", "end_run", "experiment_id_for", "flush", "get_client", "get_tracking_uri",
    "last_active_run", "log_artifact", "log_input", "log_metric", "log_metrics", "log_param", "log_params",
    "set_experiment", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]
