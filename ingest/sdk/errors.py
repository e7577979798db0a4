"""Errors of the tracking SDK.

Invalid input raises at the call that passed it (an :class:`~ledgerflow.errors.InvalidInputError`
subclass naming the value and the rule). Problems of the background delivery surface at the next
SDK call, :func:`ledgerflow.flush` or ``end_run`` as :class:`DeliveryFailedError`.
"""

from __future__ import annotations

from ledgerflow.errors import InvalidInputError, LedgerflowError
from ledgerflow.ingest.log.errors import DeliveryError


class InvalidKeyError(InvalidInputError):
    """A metric, param or tag key (or an artifact path) breaks the naming rules."""


class InvalidMetricValueError(InvalidInputError):
    """A metric value is not a real number."""


class InvalidStepError(InvalidInputError):
    """A metric step or timestamp is not an integer in the int64 range."""


class ValueTooLongError(InvalidInputError):
    """A param, tag, experiment name or dataset field exceeds its length limit."""


class ParamOverwriteError(InvalidInputError):
    """A param of a run was logged again with a different value; params are immutable."""


class BatchLimitError(InvalidInputError):
    """A log_batch call carries more metrics, params or tags than one batch may."""


class InvalidIdError(InvalidInputError):
    """A run id or experiment id is malformed."""


class InvalidDatasetError(InvalidInputError):
    """A dataset passed to log_input lacks a required attribute or has an oversized field."""


class InvalidArtifactError(InvalidInputError):
    """The local path given to log_artifact does not exist or cannot be read."""


class RunStateError(LedgerflowError):
    """The fluent API was called in a state it does not allow, e.g. start_run while a run is active."""


class BufferFullError(LedgerflowError):
    """The metric buffer is full and the configured policy is to raise rather than block.

    Transient: the background flusher is draining the buffer; retry, log less often, raise
    LEDGERFLOW_BUFFER_MAX_POINTS or switch LEDGERFLOW_BUFFER_FULL to 'block'.
    """

    transient = True


class DeliveryFailedError(DeliveryError):
    """Events logged earlier could not be made durable in the event log.

    They are kept in memory (they still count against the buffer bound) and retried at the next
    flush, so nothing is dropped; the cause is chained as ``__cause__``.
    """


class ClientClosedError(LedgerflowError):
    """The TrackingClient was closed; create a new one."""
