"""ledgerflow: an event-sourced ML experiment tracker. ``import ledgerflow as lf`` is the tracking SDK.

The fluent API mirrors MLflow's, so moving a training script over is a change of import::

    import ledgerflow as lf
    lf.set_experiment("mnist")
    with lf.start_run(run_name="baseline"):
        lf.log_params({"lr": 0.01})
        for step in range(100):
            lf.log_metric("loss", 1 / (step + 1), step=step)

The SDK names are loaded on first access, so ``import ledgerflow`` stays cheap for the CLI,
the projector and the API, which never log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledgerflow._version import __version__

if TYPE_CHECKING:
    from ledgerflow.ingest.sdk import *  # noqa: F403
    from ledgerflow.ingest.sdk.query_client import Client, ServerError  # noqa: F401

_SDK_NAMES = frozenset({
    "ActiveRun", "BatchLimitError", "BufferFullError", "ClientClosedError", "Dataset", "DeliveryFailedError",
    "Experiment", "InvalidArtifactError", "InvalidDatasetError", "InvalidIdError", "InvalidKeyError",
    "InvalidMetricValueError", "InvalidStepError", "Metric", "Param", "ParamOverwriteError", "Run", "RunData",
    "RunInfo", "RunStateError", "RunStatus", "RunTag", "TrackingClient", "ValueTooLongError", "active_run",
    "delete_tag", "end_run", "flush", "get_client", "get_tracking_uri", "last_active_run", "log_artifact",
    "log_input", "log_metric", "log_metrics", "log_param", "log_params", "set_experiment", "set_tag", "set_tags",
    "set_tracking_uri", "start_run",
})

#: the query client (lf.Client) lives beside the SDK, in its own module
_QUERY_CLIENT_NAMES = frozenset({"Client", "ServerError"})

__all__ = ["__version__", *sorted(_SDK_NAMES | _QUERY_CLIENT_NAMES)]


def __getattr__(name: str) -> Any:
    """Load the SDK on first use of one of its names and cache it as a module attribute."""
    if name in _SDK_NAMES:
        import ledgerflow.ingest.sdk as sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    if name in _QUERY_CLIENT_NAMES:
        import ledgerflow.ingest.sdk.query_client as query_client

        value = getattr(query_client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ledgerflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SDK_NAMES | _QUERY_CLIENT_NAMES)
