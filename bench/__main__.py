"""``python -m bench [--quick] [--only GROUP ...]``: run the benchmarks, write bench/results/.

The side-by-side group installs MLflow and FastTrackML into their own virtualenv on first use
(bench/peers.py) and measures them beside ledgerflow through the same mlflow client.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from bench import api, ingest, projector, sdk, side_by_side
from bench.harness import Figure, write_results

# group -> (function, full-size kwargs, quick kwargs)
GROUPS = {
    "codec": (ingest.codec_figures, {"repetitions": 7, "events": 2000}, {"repetitions": 3, "events": 100}),
    "file-append": (ingest.file_append_figures, {"repetitions": 5, "events": 2000}, {"repetitions": 3, "events": 100}),
    "kafka-append": (ingest.kafka_append_figures, {"repetitions": 5, "events": 2000}, {"repetitions": 3, "events": 100}),
    "sdk": (sdk.sdk_figures, {"repetitions": 7, "calls": 200_000}, {"repetitions": 3, "calls": 20_000}),
    "projector": (projector.projection_figures, {"repetitions": 5, "points": 5_000_000},
                  {"repetitions": 2, "points": 200_000}),
    "projector-rss": (projector.rss_figures, {"points": 50_000_000}, {"points": 500_000}),
    "api": (api.api_figures, {"runs": 100_000, "history_points": 1_000_000, "repetitions": 30, "freshness_seconds": 30},
            {"runs": 300, "history_points": 20_000, "repetitions": 5, "freshness_seconds": 3}),
    "side-by-side": (side_by_side.side_by_side_figures,
                     {"run_counts": (10_000, 100_000), "history_points": 1_000_000, "steps": 10, "repetitions": 5,
                      "history_repetitions": 3, "sdk_calls": 200_000, "sync_calls": 300, "async_calls": 1_000,
                      "single_calls": 300, "batches": 10, "freshness_seconds": 20, "load_points_per_second": 5_000,
                      "mlflow_workers": 1, "end_to_end_points": 1_000_000},
                     {"run_counts": (200,), "history_points": 20_000, "steps": 10, "repetitions": 2,
                      "history_repetitions": 2, "sdk_calls": 20_000, "sync_calls": 10, "async_calls": 100,
                      "single_calls": 10, "batches": 2, "freshness_seconds": 2, "load_points_per_second": 2_000,
                      "compare_keys": 1, "mlflow_workers": 1,
                      "end_to_end_points": 20_000}),
}


def _describe(f: Figure) -> str:
    def value(median: float | None, low: float | None, high: float | None) -> str:
        if median is None:
            return "-"
        return f"{median:,.3f}" + (f" (min {low:,.3f}, max {high:,.3f})" if low is not None and high is not None else "")

    text = f"  {f.name}: {value(f.ledgerflow, f.min, f.max)} {f.unit}"
    if f.mlflow is not None or f.fasttrackml is not None:
        text += (f" | mlflow {value(f.mlflow, f.mlflow_min, f.mlflow_max)}"
                 f" | fasttrackml {value(f.fasttrackml, f.fasttrackml_min, f.fasttrackml_max)}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks every benchmark runs (CI)")
    parser.add_argument("--only", nargs="+", choices=sorted(GROUPS), help="run only these groups")
    parser.add_argument("--list", action="store_true", help="print the group names and exit")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--peers-venv", type=Path, default=None,
                        help="virtualenv for MLflow and FastTrackML (default $LEDGERFLOW_BENCH_PEERS or "
                             "~/.cache/ledgerflow/bench-peers/mlflow-<version>; created when missing)")
    parser.add_argument("--runs", type=int, nargs="+", default=None,
                        help="run counts of the side-by-side query figures (default 10000 100000; quick 200)")
    parser.add_argument("--mlflow-workers", type=int, default=None,
                        help="uvicorn workers of mlflow server (default 1: its fastest on sqlite, docs/performance.md)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(GROUPS))
        return 0
    if args.peers_venv is not None:
        os.environ["LEDGERFLOW_BENCH_PEERS"] = str(args.peers_venv)
    figures: list[Figure] = []
    failed = []
    groups = list(args.only or GROUPS)
    for name in groups:
        function, full, quick = GROUPS[name]
        parameters = dict(quick if args.quick else full)
        if name == "side-by-side" and args.runs:
            parameters["run_counts"] = tuple(args.runs)
        if name == "side-by-side" and args.mlflow_workers:
            parameters["mlflow_workers"] = args.mlflow_workers
        print(f"bench: {name} ...", flush=True)
        try:
            produced = function(**parameters)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for f in produced:
            f.group = f.group or name
            print(_describe(f), flush=True)
        figures += produced
    path = write_results(figures, args.out, args.quick,
                         {"versions": side_by_side.VERSIONS, "groups": groups, "failed_groups": failed})
    print(f"bench: wrote {path} and {path.with_suffix('.md')}")
    if failed:
        print(f"bench: FAILED groups: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
