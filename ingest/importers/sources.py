"""Which reader a SOURCE names: ``sqlite:///`` file, ``mlruns`` directory, or ``http(s)://`` server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ledgerflow.ingest.importers.errors import SourceError
from ledgerflow.ingest.importers.source import MlflowSource

_SQLITE_HEADER = b"SQLite format 3\x00"
SOURCE_FORMS = "sqlite:///PATH/mlflow.db, an mlruns directory (PATH or file:///PATH), or http(s)://HOST:PORT"


def _sqlite_path(source: str) -> Path:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's spelling)."""
    rest = source[len("sqlite://"):]
    if not rest.startswith("/") or rest == "/":
        raise SourceError(f"{source!r}: a sqlite URI names a file, as sqlite:///relative/mlflow.db or "
                          "sqlite:////absolute/mlflow.db")
    path = unquote(rest[1:].split("?", 1)[0])
    if not path or path == ":memory:":
        raise SourceError(f"{source!r} names no database file")
    return Path(path)


def _is_sqlite_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def open_source(source: str, *, proxied_artifact_root: Path | None = None) -> MlflowSource:
    """Open the MLflow store ``source`` names; raises :class:`SourceError` naming it when it cannot."""
    from ledgerflow.ingest.importers.mlflow_files import MlrunsSource
    from ledgerflow.ingest.importers.mlflow_sqlite import SqliteSource

    text = source.strip()
    if not text:
        raise SourceError(f"no SOURCE given; use {SOURCE_FORMS}")
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        from ledgerflow.ingest.importers.mlflow_rest import RestSource

        return RestSource(text)
    if scheme == "sqlite":
        return SqliteSource(_sqlite_path(text), text, proxied_artifact_root=proxied_artifact_root)
    if scheme == "file":
        path = Path(unquote(urlsplit(text).path))
    elif scheme and len(scheme) > 1:
        raise SourceError(f"{text!r}: the importer reads {SOURCE_FORMS}; for another database ({scheme}://), "
                          "start an MLflow server on it and import from its http:// address")
    else:
        path = Path(text)
    if path.is_file() and _is_sqlite_file(path):
        return SqliteSource(path, text, proxied_artifact_root=proxied_artifact_root)
    if path.is_dir():
        return MlrunsSource(path, text, proxied_artifact_root=proxied_artifact_root)
    if path.exists():
        raise SourceError(f"{text!r} is neither an MLflow sqlite database nor an mlruns directory")
    raise SourceError(f"{text!r} does not exist; use {SOURCE_FORMS}")
