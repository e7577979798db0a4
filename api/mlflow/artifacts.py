"""MLflow artifacts proxy endpoints (being built)."""

from __future__ import annotations

from fastapi import APIRouter

PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
router = APIRouter(tags=["mlflow-artifacts"])
