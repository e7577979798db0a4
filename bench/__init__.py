"""ledgerflow's benchmarks: ``python -m bench [--quick] [--only NAME ...]`` (docs/performance.md)."""
