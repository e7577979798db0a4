"""``python -m bench [--quick] [--only GROUP ...]``: run the benchmarks, write bench/results/."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from bench import api, ingest, projector, sdk
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
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks every benchmark runs (CI)")
    parser.add_argument("--only", nargs="+", choices=sorted(GROUPS), help="run only these groups")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    failed = []
    for name in args.only or GROUPS:
        function, full, quick = GROUPS[name]
        print(f"bench: {name} ...", flush=True)
        try:
            produced = function(**(quick if args.quick else full))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for f in produced:
            spread = f" (min {f.min:,.3f}, max {f.max:,.3f})" if f.min is not None and f.max is not None else ""
            print(f"  {f.name}: {f.ledgerflow:,.3f} {f.unit}{spread}", flush=True)
        figures += produced
    path = write_results(figures, args.out, args.quick)
    print(f"bench: wrote {path} and {path.with_suffix('.md')}")
    if failed:
        print(f"bench: FAILED groups: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
