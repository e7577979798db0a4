"""Measuring figures: warm-up, repetitions, median with min and max, machine facts, JSON + markdown output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One benchmark figure: ledgerflow's median (min, max), and the peers' on the same workload, same run.

    ``mlflow`` / ``fasttrackml`` stay None where a peer has no such path (or its measurement failed:
    ``notes`` says why). ``ratio_*`` is how many times better ledgerflow is (>1: ledgerflow wins),
    whichever direction is better; ``goal`` is an absolute goal for ledgerflow, ``goal_ratio_*`` a
    goal for the ratio.
    """

    name: str
    unit: str
    better: str  # "higher" or "lower"
    ledgerflow: float | None
    min: float | None = None
    max: float | None = None
    repetitions: int = 0
    goal: float | None = None
    mlflow: float | None = None
    fasttrackml: float | None = None
    notes: str = ""
    samples: list[float] = field(default_factory=list)
    mlflow_min: float | None = None
    mlflow_max: float | None = None
    fasttrackml_min: float | None = None
    fasttrackml_max: float | None = None
    goal_ratio_mlflow: float | None = None
    goal_ratio_fasttrackml: float | None = None
    group: str = ""

    def ratio(self, peer: float | None) -> float | None:
        """How many times better ledgerflow's median is than ``peer`` (None when either is missing)."""
        if peer is None or self.ledgerflow is None or peer <= 0 or self.ledgerflow <= 0:
            return None
        return self.ledgerflow / peer if self.better == "higher" else peer / self.ledgerflow

    @property
    def ratio_mlflow(self) -> float | None:
        return self.ratio(self.mlflow)

    @property
    def ratio_fasttrackml(self) -> float | None:
        return self.ratio(self.fasttrackml)

    @property
    def meets_goal(self) -> bool | None:
        """Whether every goal set on this figure is met; None when it has none (or a value is missing)."""
        verdicts = []
        if self.goal is not None and self.ledgerflow is not None:
            verdicts.append(self.ledgerflow >= self.goal if self.better == "higher" else self.ledgerflow <= self.goal)
        for goal, ratio in ((self.goal_ratio_mlflow, self.ratio_mlflow),
                            (self.goal_ratio_fasttrackml, self.ratio_fasttrackml)):
            if goal is not None and ratio is not None:
                # "faster than" (goal 1) is met only by a strictly better median
                verdicts.append(ratio > goal if goal == 1 else ratio >= goal)
        return all(verdicts) if verdicts else None

    def set_peer(self, peer: str, samples: list[float] | None) -> None:
        """Record a peer's samples as its median, min and max (None samples: no value)."""
        if not samples:
            return
        setattr(self, peer, statistics.median(samples))
        setattr(self, f"{peer}_min", min(samples))
        setattr(self, f"{peer}_max", max(samples))


def from_samples(name: str, unit: str, better: str, samples: list[float] | None, **fields: Any) -> Figure:
    """A figure whose ledgerflow value is the median of ``samples`` (None when there are none)."""
    if not samples:
        return Figure(name, unit, better, None, **fields)
    return Figure(name, unit, better, statistics.median(samples), min(samples), max(samples), len(samples),
                  samples=list(samples), **fields)


def measure(run_once: Callable[[], float], repetitions: int, warmup: int = 1) -> tuple[float, float, float, list[float]]:
    """Call ``run_once`` (which returns one sample) warmup + repetitions times: (median, min, max, samples)."""
    for _ in range(warmup):
        run_once()
    samples = [run_once() for _ in range(repetitions)]
    return statistics.median(samples), min(samples), max(samples), samples


def figure(name: str, unit: str, better: str, run_once: Callable[[], float], repetitions: int,
           goal: float | None = None, notes: str = "", warmup: int = 1) -> Figure:
    median, low, high, samples = measure(run_once, repetitions, warmup)
    return Figure(name, unit, better, median, low, high, repetitions, goal, notes=notes, samples=samples)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cell(median: float | None, low: float | None, high: float | None) -> str:
    if median is None:
        return "-"
    if low is None or high is None:
        return _fmt(median)
    return f"{_fmt(median)} ({_fmt(low)}-{_fmt(high)})"


def _ratio(ratio: float | None, goal: float | None) -> str:
    if ratio is None:
        return "-"
    text = f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2g}x"
    return f"{text} (goal {goal:g}x)" if goal is not None else text


def to_json(f: Figure) -> dict[str, Any]:
    return asdict(f) | {"ratio_mlflow": f.ratio_mlflow, "ratio_fasttrackml": f.ratio_fasttrackml,
                        "meets_goal": f.meets_goal}


def write_results(figures: list[Figure], out_dir: Path, quick: bool, extra: dict[str, Any] | None = None) -> Path:
    """bench/results/latest.json (quick.json with --quick) and the markdown table beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        **(extra or {}),
        "figures": [to_json(f) for f in figures],
    }
    json_path = out_dir / ("quick.json" if quick else "latest.json")
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    versions = ", ".join(f"{k} {v}" for k, v in (extra or {}).get("versions", {}).items())
    lines = [
        f"# ledgerflow benchmarks ({document['date']}{', quick sizes' if quick else ''})",
        "",
        f"Machine: {document['machine'].get('cpu', '?')}, {document['machine']['cpus']} cores, "
        f"{document['machine'].get('memory_gib', '?')} GiB, Python {document['machine']['python']}"
        + (f"; {versions}" if versions else "") + ".",
        "",
        "Each cell: median (min-max) over the repetitions after a warm-up. A ratio is how many times better "
        "ledgerflow is than that peer on the same workload in the same run (>1: ledgerflow better), whichever "
        "direction is better. `-`: the figure does not apply to that system, or its measurement failed (see notes).",
        "",
        "| figure | unit | better | ledgerflow | MLflow | FastTrackML | vs MLflow | vs FastTrackML | goal | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.meets_goal]
        lines.append(f"| {f.name} | {f.unit} | {f.better} | {_cell(f.ledgerflow, f.min, f.max)} | "
                     f"{_cell(f.mlflow, f.mlflow_min, f.mlflow_max)} | "
                     f"{_cell(f.fasttrackml, f.fasttrackml_min, f.fasttrackml_max)} | "
                     f"{_ratio(f.ratio_mlflow, f.goal_ratio_mlflow)} | "
                     f"{_ratio(f.ratio_fasttrackml, f.goal_ratio_fasttrackml)} | {_fmt(f.goal)} | {met} |")
    notes = [f"- **{f.name}**: {f.notes}" for f in figures if f.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    (out_dir / ("quick.md" if quick else "latest.md")).write_text("\n".join(lines) + "\n")
    return json_path


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
