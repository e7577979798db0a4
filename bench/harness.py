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
    """One benchmark figure. ``ledgerflow`` holds the median; peers stay None until measured beside us."""

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

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None or self.ledgerflow is None:
            return None
        return self.ledgerflow >= self.goal if self.better == "higher" else self.ledgerflow <= self.goal


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


def write_results(figures: list[Figure], out_dir: Path, quick: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "figures": [{k: v for k, v in asdict(f).items()} | {"meets_goal": f.meets_goal} for f in figures],
    }
    json_path = out_dir / ("quick.json" if quick else "latest.json")
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        f"# ledgerflow benchmarks ({document['date']}{', quick sizes' if quick else ''})",
        "",
        f"Machine: {document['machine'].get('cpu', '?')}, {document['machine']['cpus']} cores, "
        f"{document['machine'].get('memory_gib', '?')} GiB, Python {document['machine']['python']}.",
        "",
        "| figure | unit | better | ledgerflow (median) | min | max | reps | goal | met | MLflow | FastTrackML |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.meets_goal]
        lines.append(f"| {f.name} | {f.unit} | {f.better} | {_fmt(f.ledgerflow)} | {_fmt(f.min)} | {_fmt(f.max)} | "
                     f"{f.repetitions} | {_fmt(f.goal)} | {met} | {_fmt(f.mlflow)} | {_fmt(f.fasttrackml)} |")
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
