"""A content-addressed blob store for payloads too large to pass through Temporal.

Temporal rejects payloads over 2 MB, and large histories are slow, so the edge
stores big bodies (and activities store big record batches) once, under their
SHA-256, and passes the reference.  The default store is a folder (APEX_HOME/blobs),
which serves the embedded stack and any deployment whose workers share a volume.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from apex_platform.errors import ApexError

_PREFIX = "sha256:"


class BlobNotFound(ApexError):
    """A reference names a blob the store does not hold."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

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
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def put_file(self, source: Path) -> str:
        """Store a file without reading it whole into memory; returns its reference."""
        digest = hashlib.sha256()
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            ref = _PREFIX + digest.hexdigest()
            path = self._path(ref)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
        return path

    def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {ref} is missing from {self.root}") from None
        if _PREFIX + hashlib.sha256(data).hexdigest() != ref:
            raise BlobNotFound(f"blob {ref} in {self.root} is corrupt")
        return data
