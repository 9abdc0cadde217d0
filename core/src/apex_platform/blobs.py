"""A content-addressed blob store for payloads too large to pass through Temporal.

Temporal rejects payloads over 2 MB, and large histories are slow, so the edge
stores big bodies (and activities store big record batches) once, under their
SHA-256, and passes the reference.  The default store is a folder (APEX_HOME/blobs),
which serves the embedded stack and any deployment whose workers share a volume.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from apex_platform.errors import ApexError

_PREFIX = "sha256:"


class BlobNotFound(ApexError):
    """A reference names a blob the store does not hold."""


class BlobStoreFull(ApexError):
    """The blob store holds `APEX_BLOB_MAX_BYTES` already; nothing new is accepted."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The local folder backend. Writes are fsynced (file, then folder) before the
    reference is returned, so nothing ever refers to a blob a power cut can lose."""

    def __init__(self, root: Path, *, max_bytes: int = 0) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _check_room(self, size: int) -> None:
        if self.max_bytes and self.usage()["bytes"] + size > self.max_bytes:
            raise BlobStoreFull(
                f"the blob store {self.root} holds {self.usage()['bytes']} bytes, APEX_BLOB_MAX_BYTES={self.max_bytes}"
            )

    def _path(self, ref: str) -> Path:
        if not ref.startswith(_PREFIX):
            raise BlobNotFound(f"not a blob reference: {ref!r}")
        digest = ref[len(_PREFIX) :]
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BlobNotFound(f"malformed blob reference: {ref!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store `data` once (writes are atomic and idempotent) and return its reference."""
        ref = _PREFIX + hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if path.exists():
            os.utime(path)  # touched: garbage collection goes by last use
            return ref
        self._check_room(len(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def put_file(self, source: Path) -> str:
        """Store a file without reading it whole into memory; returns its reference."""
        digest = hashlib.sha256()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._check_room(source.stat().st_size)
        except BlobStoreFull:
            # a full store still answers for content it holds (the same file ingested again)
            known = self._held(source)
            if known is None:
                raise
            return known
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            ref = _PREFIX + digest.hexdigest()
            path = self._path(ref)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def _held(self, source: Path) -> str | None:
        """The reference of `source`'s content if the store holds it already (touched), else None."""
        digest = hashlib.sha256()
        with source.open("rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
        ref = _PREFIX + digest.hexdigest()
        path = self._path(ref)
        if not path.exists():
            return None
        os.utime(path)
        return ref

    def path(self, ref: str) -> Path:
        """The file holding a blob, checked against its hash by streaming it."""
        path = self._path(ref)
        if not path.exists():
            raise BlobNotFound(f"blob {ref} is missing from {self.root}")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if _PREFIX + digest.hexdigest() != ref:
            raise BlobNotFound(f"blob {ref} in {self.root} is corrupt")
        os.utime(path)
        return path

    def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {ref} is missing from {self.root}") from None
        if _PREFIX + hashlib.sha256(data).hexdigest() != ref:
            raise BlobNotFound(f"blob {ref} in {self.root} is corrupt")
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)  # read: in use (garbage collection goes by last use)
        return data

    def delete(self, ref: str) -> None:
        """Forget a blob no workflow needs any more (missing is fine)."""
        self._path(ref).unlink(missing_ok=True)

    def usage(self) -> dict[str, int]:
        """How many blobs and bytes the store holds."""
        count = size = 0
        if self.root.is_dir():
            for path in self.root.glob("??/*"):
                with contextlib.suppress(FileNotFoundError):
                    size += path.stat().st_size
                    count += 1
        return {"blobs": count, "bytes": size}

    def collect_garbage(self, older_than: timedelta) -> dict[str, int]:
        """Delete blobs not written or read for `older_than` (and stale temporary files)."""
        cutoff = time.time() - older_than.total_seconds()
        removed = freed = 0
        if not self.root.is_dir():
            return {"removed": 0, "freed_bytes": 0}
        for path in [*self.root.glob("??/*"), *self.root.glob("**/.tmp-*")]:
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if max(st.st_mtime, st.st_atime if path.name.startswith(".tmp-") else 0) < cutoff:
                    path.unlink()
                    removed += 1
                    freed += st.st_size
        return {"removed": removed, "freed_bytes": freed}
