"""Content-addressed blob stores for payloads too large to pass through Temporal.

Temporal rejects payloads over 2 MB, and large histories are slow, so the edge
stores big bodies (and activities store big record batches) once, under their
SHA-256, and passes the reference (`sha256:<hex>`).

`BlobStore` is what the platform needs of a store; two backends provide it:

- `LocalBlobStore`, a folder (APEX_HOME/blobs): the embedded default, and enough for
  any deployment whose workers share a volume;
- `S3BlobStore`, a bucket of an S3-compatible service (AWS S3, MinIO, Ceph, R2, ...):
  for deployments across hosts that share nothing (`APEX_BLOB_BACKEND=s3`).

Both keep the same promises: a reference is returned only once the blob is durable,
every read is checked against the hash, blobs unused for the retention are
garbage-collected, and `max_bytes` bounds what the store holds.
`open_blob_store` builds the one the settings name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from apex_platform.errors import ApexError, SettingsError
from apex_platform.safefiles import STRUCTURAL, FilePolicy, open_input

if TYPE_CHECKING:
    from apex_platform.settings import CoreSettings

log = logging.getLogger(__name__)

_PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")


class BlobNotFound(ApexError):
    """A reference names a blob the store does not hold."""


class BlobStoreFull(ApexError):
    """The blob store holds `APEX_BLOB_MAX_BYTES` already; nothing new is accepted."""


@runtime_checkable
class BlobStore(Protocol):
    """What the platform needs of a large-payload store (every method may block: call it
    from a thread in async code when it may be slow)."""

    #: refuse new blobs once the store holds this many bytes (0: no limit)
    max_bytes: int

    def put(self, data: bytes) -> str:
        """Store `data` once (idempotent) and return its reference, once it is durable."""
        ...

    def put_file(self, source: Path, *, policy: FilePolicy = STRUCTURAL) -> str:
        """Store a file without reading it whole into memory; returns its reference. The
        file is opened as `safefiles.open_input` does (no link followed, no FIFO waited
        on, checked against `policy`: `UnsafeFile`, nothing read)."""
        ...

    def path(self, ref: str) -> Path:
        """A local file holding the blob (checked against its hash), for readers of files."""
        ...

    def get(self, ref: str) -> bytes:
        """The blob's bytes, checked against its hash (`BlobNotFound` if missing or corrupt)."""
        ...

    def delete(self, ref: str) -> None:
        """Forget a blob no workflow needs any more (missing is fine)."""
        ...

    def usage(self) -> dict[str, int]:
        """How many blobs (`blobs`) and bytes (`bytes`) the store holds."""
        ...

    def collect_garbage(self, older_than: timedelta) -> dict[str, int]:
        """Delete blobs not written or read for `older_than`: `removed`, `freed_bytes`."""
        ...


def digest_of(ref: str) -> str:
    """The hex SHA-256 a reference names; `BlobNotFound` for anything else (no path tricks)."""
    if not ref.startswith(_PREFIX):
        raise BlobNotFound(f"not a blob reference: {ref!r}")
    digest = ref[len(_PREFIX) :]
    if len(digest) != 64 or not _HEX.issuperset(digest):
        raise BlobNotFound(f"malformed blob reference: {ref!r}")
    return digest


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """The local folder backend. Writes are fsynced (file, then folder) before the
    reference is returned, so nothing ever refers to a blob a power cut can lose."""

    def __init__(self, root: Path, *, max_bytes: int = 0) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _check_room(self, size: int) -> None:
        if self.max_bytes and self.usage()["bytes"] + size > self.max_bytes:
            raise BlobStoreFull(
                f"the blob store {self.root} holds {self.usage()['bytes']} bytes, APEX_BLOB_MAX_BYTES={self.max_bytes}"
            )

    def _path(self, ref: str) -> Path:
        digest = digest_of(ref)
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

    def put_file(self, source: Path, *, policy: FilePolicy = STRUCTURAL) -> str:
        """Store a file without reading it whole into memory; returns its reference (the
        file is opened and checked as `safefiles.open_input` does)."""
        with open_input(source, policy) as src:
            return self._put_stream(src)

    def _put_stream(self, src: BinaryIO) -> str:
        digest = hashlib.sha256()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._check_room(os.fstat(src.fileno()).st_size)
        except BlobStoreFull:
            # a full store still answers for content it holds (the same file ingested again)
            known = self._held(src)
            if known is None:
                raise
            return known
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
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

    def _held(self, source: BinaryIO) -> str | None:
        """The reference of `source`'s content if the store holds it already (touched), else None."""
        digest = hashlib.sha256()
        while chunk := source.read(1 << 20):
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
        if _PREFIX + _file_digest(path) != ref:
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


S3_EXTRA_HINT = "pip install 'apex-platform[s3]'"
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def s3_client(*, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client with botocore's standard retry mode (throttling, 5xx and broken
    connections are retried with backoff; `AWS_MAX_ATTEMPTS` sets the attempts, 3 by
    default). Credentials come from the standard AWS chain (environment, shared files,
    instance or container role) and are never passed through Apex."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SettingsError(f"APEX_BLOB_BACKEND=s3 needs boto3: {S3_EXTRA_HINT}") from None
    config = Config(
        retries={"mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # S3-compatible servers are reached by path (`http://host:9000/bucket/key`)
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3BlobStore:
    """The shared backend: a bucket of an S3-compatible service, keyed `<prefix>/<aa>/<hex>`.

    A PUT (or a completed multipart upload) is durable once S3 answers it, so a reference
    is returned only after that answer. Puts are idempotent (HEAD first). S3 has no access
    time: a blob used again is re-stamped (copied onto itself) once its LastModified is
    older than `touch_after`, so garbage collection goes by last use at that precision
    without a request per read. `path()` downloads to `cache_dir` (checked, reused) for
    readers that need a local file; the cache is collected by mtime.
    """

    #: how long a listed total serves the `max_bytes` check (plus this process's writes);
    #: across hosts the bound is therefore approximate by the other hosts' recent writes
    usage_ttl_seconds = 60.0

    def __init__(
        self,
        bucket: str,
        *,
        cache_dir: Path,
        prefix: str = "apex-blobs",
        max_bytes: int = 0,
        endpoint_url: str | None = None,
        region: str | None = None,
        touch_after: timedelta = timedelta(days=1),
        cache_retention: timedelta = timedelta(days=1),
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self.touch_after = touch_after
        self.cache_retention = cache_retention
        self.client: Any = client if client is not None else s3_client(endpoint_url=endpoint_url, region=region)
        from botocore.exceptions import ClientError  # present wherever a client is

        self._client_error: type[Exception] = ClientError
        self._lock = threading.Lock()
        self._known_bytes: int | None = None
        self._known_at = 0.0

    def __repr__(self) -> str:
        return f"S3BlobStore({self.where!r})"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # -- keys, errors, bookkeeping -----------------------------------------------------

    def _key(self, digest: str) -> str:
        tail = f"{digest[:2]}/{digest}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def _cache_path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / digest

    def _is_missing(self, exc: Exception) -> bool:
        """Whether botocore says the key (or the object copied) does not exist."""
        if not isinstance(exc, self._client_error):
            return False
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code")) in _MISSING_CODES

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if self._is_missing(exc):
                return None
            raise
        return head

    def _touch_if_old(self, key: str, last_modified: datetime) -> bool:
        """Re-stamp a blob in use whose LastModified is older than `touch_after`; False if
        it vanished meanwhile (collected), so a put uploads it again."""
        if datetime.now(UTC) - last_modified < self.touch_after:
            return True
        try:
            # the managed copy does a multipart copy past 5 GB
            self.client.copy(
                {"Bucket": self.bucket, "Key": key},
                self.bucket,
                key,
                ExtraArgs={"MetadataDirective": "REPLACE", "Metadata": {"apex-used": datetime.now(UTC).isoformat()}},
            )
        except Exception as exc:
            if self._is_missing(exc):
                return False
            raise
        return True

    def _held(self, key: str) -> bool:
        """Whether the bucket holds `key` already (touched if so)."""
        head = self._head(key)
        return head is not None and self._touch_if_old(key, head["LastModified"])

    def _check_room(self, size: int) -> None:
        if not self.max_bytes:
            return
        with self._lock:
            fresh = self._known_bytes is not None and time.monotonic() - self._known_at < self.usage_ttl_seconds
            held = self._known_bytes if fresh else None
        if held is None:
            held = self._count()[1]
        if held + size > self.max_bytes:
            raise BlobStoreFull(f"the blob store {self.where} holds {held} bytes, APEX_BLOB_MAX_BYTES={self.max_bytes}")

    def _added(self, size: int) -> None:
        with self._lock:
            if self._known_bytes is not None:
                self._known_bytes += size

    def _forget_usage(self) -> None:
        with self._lock:
            self._known_bytes = None

    def _objects(self) -> Iterator[dict[str, Any]]:
        """Every blob object under the prefix (other keys there are not ours: skipped)."""
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for obj in page.get("Contents", []):
                shard, _, digest = str(obj["Key"])[len(start) :].partition("/")
                if len(digest) == 64 and shard == digest[:2] and _HEX.issuperset(digest):
                    yield obj

    def _count(self) -> tuple[int, int]:
        count = size = 0
        for obj in self._objects():
            count += 1
            size += int(obj["Size"])
        with self._lock:
            self._known_bytes, self._known_at = size, time.monotonic()
        return count, size

    # -- the BlobStore protocol ------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data` once and return its reference once S3 has answered the PUT."""
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if not self._held(key):
            self._check_room(len(data))
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
            self._added(len(data))
        return _PREFIX + digest

    def put_file(self, source: Path, *, policy: FilePolicy = STRUCTURAL) -> str:
        """Store a file (multipart past 8 MB). It is copied into the cache while hashed, and
        the copy is uploaded: the object always matches its key, even if `source` changes
        (the file is opened and checked as `safefiles.open_input` does)."""
        with open_input(source, policy) as src:
            return self._put_stream(src)

    def _put_stream(self, src: BinaryIO) -> str:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            hexdigest = digest.hexdigest()
            key = self._key(hexdigest)
            if not self._held(key):  # a full store still answers for content it holds
                size = tmp.stat().st_size
                self._check_room(size)
                self.client.upload_file(str(tmp), self.bucket, key)
                self._added(size)
            cached = self._cache_path(hexdigest)
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, cached)  # a reader on this host needs no download
        finally:
            tmp.unlink(missing_ok=True)
        return _PREFIX + hexdigest

    def path(self, ref: str) -> Path:
        """A local copy of the blob in the cache (downloaded once, checked against its hash
        on every call) for readers that need a file."""
        digest = digest_of(ref)
        key = self._key(digest)
        head = self._head(key)
        if head is None:
            raise BlobNotFound(f"blob {ref} is missing from {self.where}")
        self._touch_if_old(key, head["LastModified"])
        cached = self._cache_path(digest)
        with contextlib.suppress(FileNotFoundError):
            if _file_digest(cached) == digest:
                os.utime(cached)  # in use (the cache is collected by mtime)
                return cached
            cached.unlink()
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                self.client.download_file(self.bucket, key, tmp_name)
            except Exception as exc:
                if self._is_missing(exc):
                    raise BlobNotFound(f"blob {ref} is missing from {self.where}") from None
                raise
            if _file_digest(tmp) != digest:
                raise BlobNotFound(f"blob {ref} in {self.where} is corrupt")
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached

    def get(self, ref: str) -> bytes:
        digest = digest_of(ref)
        key = self._key(digest)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if self._is_missing(exc):
                raise BlobNotFound(f"blob {ref} is missing from {self.where}") from None
            raise
        data: bytes = answer["Body"].read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobNotFound(f"blob {ref} in {self.where} is corrupt")
        self._touch_if_old(key, answer["LastModified"])
        return data

    def delete(self, ref: str) -> None:
        """Forget a blob (and its cached copy); missing is fine."""
        digest = digest_of(ref)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        self._cache_path(digest).unlink(missing_ok=True)
        self._forget_usage()

    def usage(self) -> dict[str, int]:
        """Blobs and bytes in the bucket (a listing: one request per 1000 blobs), and the
        files and bytes of this host's cache."""
        count, size = self._count()
        files = cached = 0
        for path in self._cache_files():
            with contextlib.suppress(FileNotFoundError):
                cached += path.stat().st_size
                files += 1
        return {"blobs": count, "bytes": size, "cache_files": files, "cache_bytes": cached}

    def _cache_files(self) -> list[Path]:
        if not self.cache_dir.is_dir():
            return []
        return [*self.cache_dir.glob("??/*"), *self.cache_dir.glob("**/.tmp-*")]

    def collect_garbage(self, older_than: timedelta) -> dict[str, int]:
        """Delete blobs whose LastModified is older than `older_than`, abort multipart
        uploads begun before then, and drop cached copies unused for `older_than` (at most
        `cache_retention`)."""
        cutoff = datetime.now(UTC) - older_than
        stale = [obj for obj in self._objects() if obj["LastModified"] < cutoff]
        removed = freed = 0
        for start in range(0, len(stale), 1000):  # DeleteObjects takes 1000 keys a call
            batch = stale[start : start + 1000]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": obj["Key"]} for obj in batch], "Quiet": True}
            )
            failed = {str(err.get("Key")) for err in answer.get("Errors", [])}
            for err in answer.get("Errors", [])[:3]:
                log.warning("blob %s not collected: %s", err.get("Key"), err.get("Code"))
            for obj in batch:
                if obj["Key"] not in failed:
                    removed += 1
                    freed += int(obj["Size"])
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    with contextlib.suppress(self._client_error):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        self._forget_usage()
        cache_cutoff = time.time() - min(older_than, self.cache_retention).total_seconds()
        cache_removed = cache_freed = 0
        for path in self._cache_files():
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if st.st_mtime < cache_cutoff:
                    path.unlink()
                    cache_removed += 1
                    cache_freed += st.st_size
        return {
            "removed": removed,
            "freed_bytes": freed,
            "aborted_uploads": aborted,
            "cache_removed": cache_removed,
            "cache_freed_bytes": cache_freed,
        }


def open_blob_store(core: CoreSettings) -> BlobStore:
    """The blob store the settings name: `APEX_BLOB_BACKEND=local` (the default, a folder)
    or `s3` (a bucket every host reaches; its local cache is APEX_HOME/blob-cache)."""
    if core.blob_backend == "s3":
        if not core.blob_s3_bucket:
            raise SettingsError("APEX_BLOB_BACKEND=s3 needs APEX_BLOB_S3_BUCKET (the bucket's name)")
        if core.blob_dir is not None:
            log.warning("APEX_BLOB_DIR is ignored: APEX_BLOB_BACKEND=s3 keeps blobs in the bucket")
        return S3BlobStore(
            core.blob_s3_bucket,
            cache_dir=core.home / "blob-cache",
            prefix=core.blob_s3_prefix,
            max_bytes=core.blob_max_bytes,
            endpoint_url=core.blob_s3_endpoint_url or None,
            region=core.blob_s3_region or None,
            # re-stamp blobs in use well within the retention
            touch_after=min(timedelta(days=1), core.blob_retention / 4),
            cache_retention=min(timedelta(days=1), core.blob_retention),
        )
    return LocalBlobStore(core.blob_path, max_bytes=core.blob_max_bytes)
