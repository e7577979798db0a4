"""The limits on what a run, an experiment or a dataset input may hold: MLflow's, in one table.

Every write path checks them before anything reaches the log: the SDK (ingest/sdk/validation.py),
ledgerflow server's MLflow endpoints (api/mlflow/checks.py) and the importer. Keeping them here,
beside the event catalog they constrain, stops those paths from drifting apart. The values match
MLflow 3's, so a script MLflow accepts is accepted everywhere in ledgerflow.
"""

from __future__ import annotations

MAX_KEY_LENGTH = 250
"""Metric, param and tag keys."""
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_KEY_LENGTH = 250
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
"""Params, and separately tags, in one log_batch."""
MAX_ENTITIES_PER_BATCH = 1000
"""Metrics, params and tags together in one log_batch."""

MAX_DATASET_NAME_LENGTH = 500
MAX_DATASET_DIGEST_LENGTH = 36
MAX_DATASET_SOURCE_LENGTH = 65535
MAX_DATASET_SCHEMA_LENGTH = 1048575
MAX_DATASET_PROFILE_LENGTH = 16777215
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500
