"""Artifact roots on the local disk: the case of a sqlite store or an mlruns directory next to its files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ledgerflow.ingest.importers.errors import ArtifactCopyError
from ledgerflow.ingest.importers.records import ArtifactFile
from ledgerflow.ingest.importers.source import ArtifactsUnavailable
from ledgerflow.ingest.sdk.artifacts import store_file
from ledgerflow.ingest.sdk.errors import InvalidArtifactError

_CHUNK = 1024 * 1024


def local_root(artifact_uri: str | None, proxied_root: Path | None = None) -> Path:
    """The directory an artifact URI names on this machine.

    ``file:`` URIs and plain paths are local. ``mlflow-artifacts:/...`` URIs (a server started with
    ``--serve-artifacts``) resolve under ``proxied_root``, the server's ``--artifacts-destination``,
    when it is given. Anything else (s3://, gs://, ...) raises :class:`ArtifactsUnavailable`.
    """
    if not artifact_uri:
        raise ArtifactsUnavailable("the run has no artifact URI")
    parts = urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and artifact_uri[1:2] == ":"):  # a path, or C:\ on Windows
        return Path(artifact_uri)
    if parts.scheme == "mlflow-artifacts":
        if proxied_root is None:
            raise ArtifactsUnavailable(f"{artifact_uri} is served by an MLflow server: import through the server "
                                       "(http://...) or pass --mlflow-artifacts-dir (its --artifacts-destination)")
        return proxied_root / unquote(parts.path).lstrip("/")
    raise ArtifactsUnavailable(f"{artifact_uri}: the importer reads local and MLflow-served artifact roots, "
                               f"not {parts.scheme}://")


def walk(root: Path) -> Iterator[ArtifactFile]:
    """Every file under ``root``, sorted by path; an absent root has no files (MLflow creates it lazily)."""
    if not root.is_dir():
        return
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            path = Path(directory) / name
            status = path.stat()
            yield ArtifactFile(path=path.relative_to(root).as_posix(), size=status.st_size,
                               modified_time=status.st_mtime_ns // 1_000_000, location=str(path))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as reader:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise ArtifactCopyError(f"cannot read artifact {path}: {e}") from e
    return digest.hexdigest()


def copy(file: ArtifactFile, destination: Path) -> tuple[int, str]:
    """Copy a local artifact atomically (temporary file, fsync, rename); (size, sha256)."""
    try:
        return store_file(Path(file.location), destination)
    except InvalidArtifactError as e:
        raise ArtifactCopyError(str(e)) from e
