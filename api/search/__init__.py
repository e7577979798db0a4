"""Searching runs and experiments with MLflow's filter syntax, paging, and comparing runs.

``filter_parser`` and ``grammar`` are pure (text -> AST); ``sql`` compiles the AST into one
parameterized query; ``query`` and ``compare`` run against the DuckDB projection.
"""

from ledgerflow.api.search.filter_parser import Comparison, FilterError, OrderKey, parse_filter, parse_order_by
from ledgerflow.api.search.grammar import EXPERIMENTS, RUNS, Target

__all__ = ["EXPERIMENTS", "RUNS", "Comparison", "FilterError", "OrderKey", "Target", "parse_filter",
           "parse_order_by"]
