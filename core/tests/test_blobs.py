from __future__ import annotations

from pathlib import Path

import pytest

from apex_platform.blobs import BlobNotFound, LocalBlobStore


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ref = store.put(b"hello")
    assert ref == store.put(b"hello")
    assert store.get(ref) == b"hello"
    assert len(list(tmp_path.rglob("*"))) == 2  # one folder, one file


@pytest.mark.parametrize("ref", ["", "md5:abc", "sha256:../../etc/passwd", "sha256:" + "g" * 64])
def test_hostile_references_are_refused(tmp_path: Path, ref: str) -> None:
    with pytest.raises(BlobNotFound):
        LocalBlobStore(tmp_path).get(ref)


def test_corrupt_blob_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ref = store.put(b"payload")
    next(p for p in tmp_path.rglob("*") if p.is_file()).write_bytes(b"tampered")
    with pytest.raises(BlobNotFound, match="corrupt"):
        store.get(ref)
