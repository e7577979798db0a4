"""Storing artifact files under the data home: HOME/artifacts/<experiment_id>/<run_id>/artifacts/<path>."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ledgerflow.ingest.sdk.errors import InvalidArtifactError
from ledgerflow.ingest.sdk.validation import check_relative_path

_CHUNK = 1024 * 1024


def run_artifact_root(home: Path, experiment_id: str, run_id: str) -> Path:
    """The directory holding a run's artifacts; its file URI is the run's artifact_uri."""
    return home / "artifacts" / experiment_id / run_id / "artifacts"


def files_to_store(local_path: str | os.PathLike[str], artifact_path: str | None) -> Iterator[tuple[Path, str]]:
    """(source file, path relative to the run's artifact root) for a file, or every file of a directory.

    A directory is stored under its own name, as ``mlflow.log_artifact`` does.
    """
    source = Path(local_path)
    if artifact_path is not None:
        artifact_path = artifact_path.strip("/") if artifact_path not in ("", ".") else ""
        if artifact_path:
            check_relative_path(artifact_path, "artifact_path", InvalidArtifactError)
    prefix = f"{artifact_path}/" if artifact_path else ""
    if source.is_file():
        yield source, prefix + source.name
    elif source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path, prefix + source.name + "/" + path.relative_to(source).as_posix()
    else:
        raise InvalidArtifactError(f"log_artifact: {str(source)!r} is not an existing file or directory")


def store_file(source: Path, destination: Path) -> tuple[int, str]:
    """Copy ``source`` to ``destination`` atomically (temp file + rename); return (size, sha256 hex)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as reader, open(temporary, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copymode(source, temporary)
        os.replace(temporary, destination)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise InvalidArtifactError(f"log_artifact: cannot copy {str(source)!r} to {str(destination)!r}: {e}") from e
    return size, digest.hexdigest()
