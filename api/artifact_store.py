"""The server's artifact store: files under one root directory, reached only by checked relative paths.

MLflow's proxied artifact API (api/mlflow/artifacts.py) is its one user today; an S3-compatible store
can implement the same methods later. Three promises:

- **No escape.** Every path is relative, ``/``-separated, without ``..``, backslashes, NUL or other
  control characters, and (after resolving symlinks) stays under the root; anything else is an
  :class:`ArtifactPathError` before a file is touched. Percent-escapes are decoded a few times only
  to *check* for traversal hidden in them (``..%2f``); names are stored as received.
- **No torn files.** An upload streams into a hidden temporary file in the target directory, is
  fsync'd, then renamed over the real name (and the directory fsync'd). A crash, a client that
  disconnects or a body over the limit leaves at most a hidden temporary file, never a truncated
  artifact under its real name; readers see the old file or the new one.
- **Bounded memory.** Bodies are written as they arrive, at most :data:`WRITE_CHUNK` bytes buffered,
  so a 1 GB artifact costs the server a few MB. Blocking file work runs in worker threads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from ledgerflow.errors import InvalidInputError, LedgerflowError

#: uploads in progress are hidden files with this prefix in the target directory
TEMP_PREFIX = ".ledgerflow-upload-"
#: bytes gathered before one write (in a worker thread)
WRITE_CHUNK = 1024 * 1024
_FILE_MODE = 0o644


class ArtifactPathError(InvalidInputError):
    """A path that is not a safe relative path inside the store, or names the wrong kind of entry."""


class ArtifactNotFoundError(LedgerflowError):
    """Nothing is stored under the path."""


class ArtifactTooLargeError(LedgerflowError):
    """An upload body is larger than the server accepts; nothing was stored under its name."""


@dataclass(frozen=True)
class StoredFile:
    """What an upload stored: its relative path, size and content hash."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Listed:
    """One entry of a directory listing; ``size`` is None for directories."""

    name: str
    is_dir: bool
    size: int | None


def check_relative_path(raw: str, *, allow_root: bool = False) -> str:
    """``raw`` as a normalized relative path ("a/b.txt"; "" for the root when ``allow_root``).

    Empty and "." segments are dropped (``a//./b`` is ``a/b``); every rule of the module docstring is
    checked on the path as received and on its percent-decoded forms.
    """
    if not isinstance(raw, str):
        raise ArtifactPathError(f"an artifact path must be a string, got {type(raw).__name__}")
    for form in _decoded_forms(raw):
        _refuse_unsafe(raw, form)
    segments = [s for s in raw.split("/") if s not in ("", ".")]
    if any(s.startswith(TEMP_PREFIX) for s in segments):
        raise ArtifactPathError(f"Invalid path {raw!r}: names starting with {TEMP_PREFIX!r} are reserved "
                                f"for uploads in progress")
    if not segments and not allow_root:
        raise ArtifactPathError("Invalid path: name a file or directory below the artifact root")
    return "/".join(segments)


def _decoded_forms(raw: str) -> list[str]:
    forms = [raw]
    for _ in range(5):  # "%252e%252e" takes two rounds; more rounds than that are treated as literal
        decoded = urllib.parse.unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _refuse_unsafe(raw: str, form: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in form):
        raise ArtifactPathError(f"Invalid path {raw!r}: control characters (NUL included) are not allowed")
    if "\\" in form:
        raise ArtifactPathError(f"Invalid path {raw!r}: use '/' as the separator; backslashes are not allowed")
    if "#" in form:
        raise ArtifactPathError(f"Invalid path {raw!r}: '#' is not allowed (as in MLflow)")
    if form.startswith("/") or (form[:1].isalpha() and form[1:3] == ":/"):
        raise ArtifactPathError(f"Invalid path {raw!r}: it must be relative to the artifact root, not absolute")
    if ".." in form.split("/"):
        raise ArtifactPathError(f"Invalid path {raw!r}: '..' segments are not allowed")


class LocalArtifactStore:
    """Artifacts as plain files under ``root`` (created on first write)."""

    def __init__(self, root: Path, *, max_upload_bytes: int) -> None:
        self.root = Path(root).absolute()
        self.max_upload_bytes = max_upload_bytes

    # ---- paths -------------------------------------------------------------------------------

    def local_path(self, path: str, *, allow_root: bool = False) -> Path:
        """The file system path of a relative artifact path, after checking it stays inside the root."""
        relative = check_relative_path(path, allow_root=allow_root)
        target = self.root.joinpath(*relative.split("/")) if relative else self.root
        real_root = os.path.realpath(self.root)
        real_target = os.path.realpath(target)
        if real_target != real_root and not real_target.startswith(real_root + os.sep):
            raise ArtifactPathError(f"Invalid path {path!r}: it resolves (through a symbolic link) outside the "
                                    f"artifact root")
        return target

    def relative_of(self, local: Path) -> str | None:
        """The store path of an absolute local path inside the root, else None (a ``file:`` artifact URI)."""
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(local)
        if real == real_root:
            return ""
        if not real.startswith(real_root + os.sep):
            return None
        return Path(real).relative_to(real_root).as_posix()

    # ---- reads -------------------------------------------------------------------------------

    def file_to_send(self, path: str) -> Path:
        """The local file behind ``path``; not found and directories are errors naming the path."""
        target = self.local_path(path)
        try:
            mode = target.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactNotFoundError(f"No such artifact: '{path}'") from None
        if stat.S_ISDIR(mode):
            raise ArtifactPathError(f"Artifact path refers to a directory, not a file: '{path}'")
        return target

    def list_directory(self, path: str) -> list[Listed]:
        """The entries directly under ``path``, sorted by name; a missing path or a file lists as empty (as
        MLflow's local store does). Uploads in progress are not listed."""
        target = self.local_path(path, allow_root=True)
        try:
            scanner = os.scandir(target)
        except (FileNotFoundError, NotADirectoryError):
            return []
        entries: list[Listed] = []
        with scanner:
            for entry in scanner:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    is_dir = entry.is_dir()
                    size = None if is_dir else entry.stat().st_size
                except FileNotFoundError:  # removed while listing
                    continue
                entries.append(Listed(entry.name, is_dir, size))
        return sorted(entries, key=lambda e: e.name)

    # ---- writes ------------------------------------------------------------------------------

    def delete(self, path: str) -> bool:
        """Remove a file or a whole directory; False when nothing was there (not an error, as in MLflow)."""
        target = self.local_path(path)
        try:
            mode = target.lstat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISDIR(mode):
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        return True

    async def receive(self, path: str, body: AsyncIterator[bytes], *, declared_size: int | None = None) -> StoredFile:
        """Store the streamed ``body`` under ``path`` atomically and durably (see the module docstring)."""
        relative = check_relative_path(path)
        if path.endswith("/"):
            raise ArtifactPathError(f"Invalid path {path!r}: an upload must name a file (the path ends with '/')")
        if declared_size is not None and declared_size > self.max_upload_bytes:
            raise ArtifactTooLargeError(self._too_large(path, declared_size))
        target = self.local_path(relative)
        handle, temp = await to_thread.run_sync(self._open_temp, target, path)
        try:
            stored = await self._write_body(handle, body, path)
            await to_thread.run_sync(self._commit, handle, temp, target)
        except BaseException:  # a disconnect (cancellation) too: never leave the temporary file behind
            handle.close()
            Path(temp).unlink(missing_ok=True)
            raise
        return StoredFile(relative, *stored)

    def _too_large(self, path: str, size: int) -> str:
        return (f"the upload of '{path}' is larger than this server accepts ({size} > {self.max_upload_bytes} bytes, "
                f"LEDGERFLOW_ARTIFACT_MAX_UPLOAD_BYTES); nothing was stored")

    def _open_temp(self, target: Path, path: str) -> tuple[BinaryIO, str]:
        if target.is_dir():
            raise ArtifactPathError(f"Invalid path {path!r}: a directory of that name exists; an upload must "
                                    f"name a file")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ArtifactPathError(f"Invalid path {path!r}: a part of it is an existing file, not a directory") from None
        descriptor, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
        os.fchmod(descriptor, _FILE_MODE)
        return os.fdopen(descriptor, "wb"), temp

    async def _write_body(self, handle: BinaryIO, body: AsyncIterator[bytes], path: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        pending = bytearray()
        async for chunk in body:
            size += len(chunk)
            if size > self.max_upload_bytes:
                raise ArtifactTooLargeError(self._too_large(path, size))
            pending += chunk
            if len(pending) >= WRITE_CHUNK:
                data, pending = bytes(pending), bytearray()
                await to_thread.run_sync(_write, handle, digest, data)
        if pending:
            await to_thread.run_sync(_write, handle, digest, bytes(pending))
        return size, digest.hexdigest()

    @staticmethod
    def _commit(handle: BinaryIO, temp: str, target: Path) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(temp, target)
        _fsync_directory(target.parent)


def _write(handle: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:  # hashlib releases the GIL on large buffers
    digest.update(data)
    handle.write(data)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
