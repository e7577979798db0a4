"""The peers' own virtualenv: MLflow (pinned) and FastTrackML, installed by the bench, never imported here.

ledgerflow's process never imports ``mlflow``: the peers live in a separate virtualenv (default
``~/.cache/ledgerflow/bench-peers/mlflow-3.17.0``, ``$LEDGERFLOW_BENCH_PEERS`` or ``--peers-venv``
to move it), created on first use and reused while its marker file names the same pinned packages.
Every MLflow-client workload runs as a subprocess of that venv's python (bench/drivers/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MLFLOW_VERSION = "3.17.0"
FASTTRACKML_VERSION = "0.6.0"
#: installed in this order; FastTrackML with --no-deps (its pins would downgrade mlflow)
REQUIREMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (f"mlflow=={MLFLOW_VERSION}", ()),
    (f"fasttrackml=={FASTTRACKML_VERSION}", ("--no-deps",)),
)
MARKER = ".ledgerflow-bench-peers"
PIP_TIMEOUT_SECONDS = 1800


class PeerSetupError(RuntimeError):
    """The peers' virtualenv could not be created; the message names the command that failed."""


@dataclass(frozen=True)
class PeerEnvironment:
    """Where the peers' interpreter and FastTrackML's server binary are."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def mlflow(self) -> Path:
        return self.root / "bin" / "mlflow"

    @property
    def fml(self) -> Path:
        return self.root / "bin" / "fml"


def default_location() -> Path:
    configured = os.environ.get("LEDGERFLOW_BENCH_PEERS")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ledgerflow" / "bench-peers" / f"mlflow-{MLFLOW_VERSION}"


def _marker_text() -> str:
    return "\n".join(spec for spec, _ in REQUIREMENTS) + "\n"


def _run(command: list[str], timeout: float, what: str) -> None:
    print(f"bench: {what}: {' '.join(command)}", flush=True)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise PeerSetupError(f"{what} timed out after {timeout:.0f} s: {' '.join(command)}") from error
    if result.returncode != 0:
        raise PeerSetupError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def ensure_peers(location: Path | None = None) -> PeerEnvironment:
    """The peers' venv at ``location``, created and installed when it is missing or incomplete."""
    environment = PeerEnvironment((location or default_location()).expanduser().resolve())
    marker = environment.root / MARKER
    if marker.is_file() and marker.read_text() == _marker_text() and environment.python.exists() \
            and environment.fml.exists():
        return environment
    if environment.root.exists():
        # a half-built venv from an interrupted run: start over rather than trust it
        shutil.rmtree(environment.root)
    environment.root.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(environment.root)], 300, "creating the peers' virtualenv")
    pip = [str(environment.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for spec, flags in REQUIREMENTS:
        _run([*pip, *flags, spec], PIP_TIMEOUT_SECONDS, f"installing {spec}")
    for binary in (environment.python, environment.mlflow, environment.fml):
        if not binary.exists():
            raise PeerSetupError(f"{binary} is missing after installing {', '.join(s for s, _ in REQUIREMENTS)} "
                                 f"into {environment.root}; delete that folder and re-run the bench")
    marker.write_text(_marker_text())
    return environment
