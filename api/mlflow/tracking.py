"""MLflow tracking endpoints (being built)."""

from __future__ import annotations

from fastapi import APIRouter

from ledgerflow.api.mlflow.protocol import TRACKING_PREFIXES

PREFIXES = TRACKING_PREFIXES
router = APIRouter(tags=["mlflow"])
