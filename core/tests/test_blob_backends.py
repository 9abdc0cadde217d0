"""The blob store's behaviour, run against both backends: the local folder and an S3
bucket of a real S3-compatible server process (moto's server, started once a session on
a free port). Ends with a batch file ingested end to end through the S3 backend."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from apex_platform.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreFull,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
)
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import PayloadError, SettingsError
from apex_platform.models import InboundEvent, Record
from apex_platform.safefiles import FilePolicy, UnsafeFile
from apex_platform.settings import CoreSettings, load
from apex_platform.stack.ports import free_port

pytestmark = pytest.mark.timeout(120)

SECRET = "apex-test-secret-key-never-logged"


# -- a real S3-compatible server ---------------------------------------------------------


@dataclass
class S3Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3-compatible server as a subprocess on a free port, for the whole session."""
    try:
        import flask  # noqa: F401 - moto's server needs its `server` extra
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("no S3-compatible server here: pip install 'moto[server]'")
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited ({process.returncode}): {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {url}: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield S3Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials through the standard AWS variables only (no profile, files or IMDS)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "apex-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def raw_s3(s3_server: S3Server) -> Any:
    """A plain client of the server, to make buckets and tamper with objects behind a store's back."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="apex-test-key",
        aws_secret_access_key=SECRET,
    )


def new_bucket(raw: Any) -> str:
    name = f"apex-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name)
    return name


def s3_settings(server: S3Server, bucket: str) -> dict[str, Any]:
    return {
        "blob_backend": "s3",
        "blob_s3_bucket": bucket,
        "blob_s3_endpoint_url": server.url,
        "blob_s3_region": "us-east-1",
    }


# -- one fixture, two backends ------------------------------------------------------------


@dataclass
class Backend:
    """Builds stores of one backend from settings, as `Runtime.build` does."""

    name: str
    home: Path
    settings: dict[str, Any]
    raw: Any = None  # a plain S3 client, to tamper with objects behind the store's back
    made: list[BlobStore] = field(default_factory=list)

    def make(self, **overrides: Any) -> BlobStore:
        store = open_blob_store(CoreSettings(**{"home": self.home, **self.settings, **overrides}))
        self.made.append(store)
        return store

    def corrupt(self, store: BlobStore, ref: str, data: bytes) -> None:
        digest = ref.removeprefix("sha256:")
        if isinstance(store, LocalBlobStore):
            (store.root / digest[:2] / digest).write_bytes(data)
        else:
            assert isinstance(store, S3BlobStore)
            self.raw.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{digest[:2]}/{digest}", Body=data)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        # an explicit folder, as a volume every host mounts: other homes share it
        return Backend("local", tmp_path / "home", {"blob_dir": tmp_path / "shared-volume"})
    server: S3Server = request.getfixturevalue("s3_server")
    raw = request.getfixturevalue("raw_s3")
    request.getfixturevalue("aws_env")
    return Backend("s3", tmp_path / "home", s3_settings(server, new_bucket(raw)), raw)


def counts(store: BlobStore) -> tuple[int, int]:
    usage = store.usage()
    return usage["blobs"], usage["bytes"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the behaviour suite ------------------------------------------------------------------


def test_put_get_round_trip_is_content_addressed_and_idempotent(backend: Backend, tmp_path: Path) -> None:
    store = backend.make()
    assert isinstance(store, BlobStore)
    assert counts(store) == (0, 0)
    a = store.put(b"a" * 100)
    b = store.put(b"\x00\xff" * 50)
    assert a == sha(b"a" * 100)
    assert store.put(b"a" * 100) == a  # put again: the same reference, nothing new held
    assert store.get(a) == b"a" * 100
    assert store.get(b) == b"\x00\xff" * 50
    assert counts(store) == (2, 200)

    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(3000))
    ref = store.put_file(source)
    assert ref == sha(source.read_bytes()) == store.put(source.read_bytes())
    assert store.put_file(source) == ref
    assert counts(store) == (3, 3200)
    # another host (its own home) sees the same blobs
    other = backend.make(home=tmp_path / "other-host")
    assert other.get(ref) == source.read_bytes()
    assert other.path(ref).read_bytes() == source.read_bytes()


def test_put_file_never_follows_a_link_nor_waits_on_a_fifo(backend: Backend, tmp_path: Path) -> None:
    """The file handed to `put_file` is a user's: a link is refused unread, a FIFO at once
    (an open that waits for a writer would hold the drop folder forever), and the policy's
    checks run on the open file; nothing of them is stored."""
    store = backend.make()
    secret = tmp_path / "secret.pem"
    secret.write_bytes(b"secret-marker-9c1e")
    link = tmp_path / "link.x12"
    link.symlink_to(secret)
    with pytest.raises(UnsafeFile, match=r"link\.x12: a symbolic link; not followed, nothing read"):
        store.put_file(link)
    fifo = tmp_path / "pipe.x12"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def put_fifo() -> None:
        try:
            store.put_file(fifo)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=put_fifo, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # the bug: release the reader, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("put_file waited on a FIFO")
    assert [type(e) for e in outcome] == [UnsafeFile]
    assert "pipe.x12: a FIFO; nothing read" in str(outcome[0])
    plain = tmp_path / "plain.x12"
    plain.write_bytes(b"ISA")
    with pytest.raises(UnsafeFile, match="owned by"):
        store.put_file(plain, policy=FilePolicy(owners=frozenset({os.geteuid() + 4242})))
    assert counts(store) == (0, 0)
    assert store.put_file(plain, policy=FilePolicy(owners=frozenset({os.geteuid()}))) == sha(b"ISA")


@pytest.mark.parametrize("ref", ["", "md5:abc", "sha256:../../etc/passwd", "sha256:" + "g" * 64, "sha256:" + "A" * 64])
def test_hostile_references_are_refused(backend: Backend, ref: str) -> None:
    store = backend.make()
    for call in (store.get, store.path, store.delete):
        with pytest.raises(BlobNotFound):
            call(ref)


def test_a_corrupted_blob_is_detected(backend: Backend) -> None:
    store = backend.make()
    ref = store.put(b"payload")
    backend.corrupt(store, ref, b"tampered")
    with pytest.raises(BlobNotFound, match="corrupt"):
        store.get(ref)
    with pytest.raises(BlobNotFound, match="corrupt"):
        store.path(ref)
    assert store.put(b"payload") == ref  # content addressed: no repair by put, but no crash


def test_path_gives_a_readable_local_file(backend: Backend, tmp_path: Path) -> None:
    store = backend.make()
    data = b"line 1\nline 2\n" * 1000
    ref = store.put(data)
    path = store.path(ref)
    assert path.is_file()
    with path.open("rb") as fh:  # what a connector's split(path) does
        assert fh.read() == data
    assert store.path(ref) == path  # the same file again
    missing = sha(b"never stored")
    with pytest.raises(BlobNotFound, match="missing"):
        store.path(missing)


def test_delete_forgets_and_twice_is_fine(backend: Backend) -> None:
    store = backend.make()
    a, b = store.put(b"a" * 100), store.put(b"b" * 50)
    store.path(a)
    store.delete(a)
    store.delete(a)
    with pytest.raises(BlobNotFound, match="missing"):
        store.get(a)
    with pytest.raises(BlobNotFound, match="missing"):
        store.path(a)
    assert counts(store) == (1, 50)
    assert store.get(b) == b"b" * 50
    store.delete(sha(b"never stored"))


def test_garbage_collection_goes_by_last_use(backend: Backend) -> None:
    """Blobs not written or read for `older_than` go; one put again, read, or read as a
    file since is kept. (Real time: S3 stamps LastModified itself.)"""
    store = backend.make(blob_retention=timedelta(seconds=2))  # S3: re-stamped after 0.5 s
    stale, rewritten, read, as_file = (store.put(f"blob {n}".encode()) for n in range(4))
    time.sleep(3.5)
    assert store.put(b"blob 1") == rewritten
    assert store.get(read) == b"blob 2"
    assert store.path(as_file).read_bytes() == b"blob 3"
    fresh = store.put(b"blob 4")

    done = store.collect_garbage(timedelta(seconds=2))
    assert (done["removed"], done["freed_bytes"]) == (1, len(b"blob 0"))
    with pytest.raises(BlobNotFound):
        store.get(stale)
    assert [store.get(r) for r in (rewritten, read, as_file, fresh)] == [b"blob 1", b"blob 2", b"blob 3", b"blob 4"]
    assert store.collect_garbage(timedelta(days=7))["removed"] == 0
    assert counts(store) == (4, 4 * len(b"blob 0"))


def test_a_full_store_refuses_new_blobs(backend: Backend, tmp_path: Path) -> None:
    """Past `max_bytes` a new blob raises `BlobStoreFull` (naming the limit); one it holds
    already is still answered; deleting makes room."""
    store = backend.make(blob_max_bytes=1000)
    first = store.put(b"1" * 600)
    with pytest.raises(BlobStoreFull, match="APEX_BLOB_MAX_BYTES=1000"):
        store.put(b"2" * 600)
    assert counts(store) == (1, 600)
    assert store.put(b"1" * 600) == first  # known content needs no room
    big = tmp_path / "big.bin"
    big.write_bytes(b"3" * 600)
    with pytest.raises(BlobStoreFull):
        store.put_file(big)
    assert counts(store) == (1, 600)
    store.put(b"4" * 400)  # exactly at the limit
    store.delete(first)
    ref = store.put_file(big)
    assert counts(store) == (2, 1000)
    with pytest.raises(BlobStoreFull):
        store.put(b"5")
    assert store.put_file(big) == ref  # full, yet the same file again is answered


# -- S3 specifics ---------------------------------------------------------------------------


@pytest.fixture
def s3(s3_server: S3Server, raw_s3: Any, aws_env: None, tmp_path: Path) -> Backend:
    return Backend("s3", tmp_path / "home", s3_settings(s3_server, new_bucket(raw_s3)), raw_s3)


def calls(store: S3BlobStore, operation: str) -> list[str]:
    """The names of `operation` requests the store's client makes from now on."""
    seen: list[str] = []
    store.client.meta.events.register(f"before-call.s3.{operation}", lambda **kw: seen.append(operation))
    return seen


def test_s3_keys_heads_before_putting_and_ignores_strangers(
    s3: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = s3.make(blob_s3_prefix="/team/blobs/")
    assert isinstance(store, S3BlobStore)
    puts = calls(store, "PutObject")
    data = b"x" * 10
    ref = store.put(data)
    assert store.put(data) == ref
    source = tmp_path / "f.txt"
    source.write_bytes(data)
    assert store.put_file(source) == ref
    assert len(puts) == 1  # HEAD first: held content is never uploaded again
    digest = ref.removeprefix("sha256:")
    keys = [o["Key"] for o in s3.raw.list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert keys == [f"team/blobs/{digest[:2]}/{digest}"]
    # a key of someone else's under the prefix is neither counted nor collected
    s3.raw.put_object(Bucket=store.bucket, Key="team/blobs/README.txt", Body=b"not a blob")
    assert counts(store) == (1, 10)
    assert store.collect_garbage(timedelta(seconds=-60))["removed"] == 1
    assert [o["Key"] for o in s3.raw.list_objects_v2(Bucket=store.bucket)["Contents"]] == ["team/blobs/README.txt"]
    assert SECRET not in caplog.text
    assert SECRET not in repr(store)


def test_s3_path_cache_is_reused_checked_and_collected(s3: Backend) -> None:
    store = s3.make()
    assert isinstance(store, S3BlobStore)
    gets = calls(store, "GetObject")
    data = os.urandom(20_000)
    ref = store.put(data)
    path = store.path(ref)
    assert path.is_relative_to(s3.home / "blob-cache")
    assert store.path(ref) == path
    assert len(gets) == 1  # downloaded once, reused
    path.write_bytes(b"tampered")
    assert store.path(ref).read_bytes() == data  # a bad cached copy is fetched again
    assert len(gets) == 2
    assert (store.usage()["cache_files"], store.usage()["cache_bytes"]) == (1, 20_000)

    then = time.time() - 2 * 86400
    os.utime(path, (then, then))
    done = store.collect_garbage(timedelta(days=7))  # the cache keeps at most a day unused
    assert (done["removed"], done["cache_removed"], done["cache_freed_bytes"]) == (0, 1, 20_000)
    assert not path.exists()
    assert store.path(ref).read_bytes() == data
    store.delete(ref)
    assert not path.exists()  # delete drops the cached copy too


def test_s3_gc_aborts_abandoned_multipart_uploads(s3: Backend) -> None:
    store = s3.make()
    assert isinstance(store, S3BlobStore)
    s3.raw.create_multipart_upload(Bucket=store.bucket, Key=f"{store.prefix}/ab/{'ab' * 32}")
    # (moto dates every upload's Initiated 2010-11-10, so the cut-off itself is not seen here)
    assert store.collect_garbage(timedelta(seconds=-60))["aborted_uploads"] == 1
    assert s3.raw.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_s3_large_file_goes_up_in_parts(s3: Backend, tmp_path: Path) -> None:
    """Past the transfer threshold (8 MB) put_file is a multipart upload; path() a ranged download."""
    store = s3.make(home=tmp_path / "uploader")
    source = tmp_path / "big.bin"
    with source.open("wb") as fh:
        for _ in range(10):
            fh.write(os.urandom(1 << 20))
    ref = store.put_file(source)
    assert ref == sha(source.read_bytes())
    reader = s3.make(home=tmp_path / "reader")  # another host: nothing cached
    assert reader.path(ref).read_bytes() == source.read_bytes()
    assert counts(reader) == (1, 10 << 20)


# -- settings -------------------------------------------------------------------------------


def test_settings_choose_the_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_env: None) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    store = open_blob_store(CoreSettings(home=tmp_path))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"

    monkeypatch.setenv("APEX_HOME", str(tmp_path))
    monkeypatch.setenv("APEX_BLOB_BACKEND", "S3")
    settings = load(CoreSettings)
    assert settings.blob_backend == "s3"
    with pytest.raises(SettingsError, match="APEX_BLOB_S3_BUCKET"):
        open_blob_store(settings)
    monkeypatch.setenv("APEX_BLOB_S3_BUCKET", "my-bucket")
    monkeypatch.setenv("APEX_BLOB_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    store = open_blob_store(load(CoreSettings))
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.cache_dir) == ("my-bucket", "apex-blobs", tmp_path / "blob-cache")
    assert store.touch_after == timedelta(days=1)  # a quarter of 7 days is more

    monkeypatch.setenv("APEX_BLOB_BACKEND", "gcs")
    with pytest.raises(SettingsError, match="APEX_BLOB_BACKEND"):
        load(CoreSettings)


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` raises ImportError
    settings = CoreSettings(home=tmp_path, blob_backend="s3", blob_s3_bucket="b")
    with pytest.raises(SettingsError, match=r"pip install 'apex-platform\[s3\]'"):
        open_blob_store(settings)


# -- a batch file end to end through the S3 backend ---------------------------------------


class LinesSource:
    """A file is JSON lines; each line is a unit."""

    name = "lines"
    mode = "batch"
    priority = "P2"
    settings_model: ClassVar[Any] = None

    def split(self, path: Path) -> Iterator[BatchUnit | BatchWarning]:
        with path.open() as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield BatchUnit(id=f"L{n}", payload=line.strip())

    def parse(self, event: InboundEvent) -> list[Record]:
        data = json.loads(event.payload)
        if not isinstance(data, dict):
            raise PayloadError("not an object")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        return [Record(source="lines", kind="lines.row", id=str(data["id"]), version=1, occurred_at=t0)]

    def read(self, path: Path) -> Iterable[Record]:
        return []


async def test_a_batch_file_is_ingested_through_the_s3_backend(
    apex_temporal_server: Any,
    apex_postgres_server: Any,
    s3_server: S3Server,
    raw_s3: Any,
    aws_env: None,
    tmp_path: Path,
) -> None:
    from apex_platform.batches import ingest_file, record_refs
    from apex_platform.testing.sinks import MemorySink
    from apex_platform.testing.worker import running_worker

    bucket = new_bucket(raw_s3)
    home = tmp_path / "home"
    sink = MemorySink("memory")
    async with running_worker(
        apex_temporal_server.address,
        home,
        sources=[LinesSource()],
        sinks=[sink],
        priorities=["P2"],
        inbox_dsn=apex_postgres_server.dsn,
        core=CoreSettings(home=home, **s3_settings(s3_server, bucket)),
    ) as harness:
        runtime = harness.runtime
        assert isinstance(runtime.codec.blobs, S3BlobStore)
        path = tmp_path / "f.jsonl"
        path.write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(120)))
        result = await ingest_file(runtime, harness.client, runtime.registry.source("lines"), path, chunk_size=25)  # type: ignore[arg-type]
        assert (result.units, result.record_count, result.failed_count) == (120, 120, 0)
        assert len(sink.rows) == 120
        assert len(record_refs(runtime, result)) == 120  # the listing is read back from the bucket
        # the file and the listing of its records stay; the 5 chunks and the manifest are gone
        listing = runtime.codec.blobs.get(result.records_ref or "")
        assert counts(runtime.codec.blobs) == (2, path.stat().st_size + len(listing))
    assert not (home / "blobs").exists()  # nothing went to the local folder
    # any other host reads the file from the bucket
    other = S3BlobStore(bucket, cache_dir=tmp_path / "other-cache", endpoint_url=s3_server.url, region="us-east-1")
    assert other.path(sha(path.read_bytes())).read_bytes() == path.read_bytes()
