"""Encrypted Temporal payloads: the keys (`APEX_PAYLOAD_KEYS`, validated), the codec
(AES-256-GCM, key id in the metadata, rotation, tampering), its place behind the payload
guard, and refusing to start without a key unless encryption is explicitly off."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

from apex_platform.errors import SettingsError
from apex_platform.settings import TemporalSettings, load
from apex_platform.temporal.client import (
    GUARD_FILE_ENV,
    CodecChain,
    PayloadGuard,
    PayloadTooLarge,
    data_converter,
    find_codec,
)
from apex_platform.temporal.encryption import (
    ENCODING,
    KEY_ID_METADATA,
    PayloadDecryptionError,
    PayloadEncryption,
    PayloadSettings,
    configured_keys,
    parse_keys,
    read_key_file,
    write_key_file,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
MARKER = "marker-7f3a9c-consignee-Jane-Roe"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def plain(text: str = MARKER) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"note": text}).encode())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No payload setting from the session (its key file) or anywhere else."""
    for name in ("APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE", "APEX_PAYLOAD_ENCRYPTION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- the keys ---------------------------------------------------------------------------------


def test_keys_parse_in_order_the_first_one_first() -> None:
    keys = parse_keys(f" b:{b64(KEY_B)} ,a:{b64(KEY_A)}")
    assert keys == [("b", KEY_B), ("a", KEY_A)]
    # a file's form: one a line, comments, URL-safe base64 without padding
    text = f"# rotated 2026-05\nb:{b64(KEY_B)}\na:{base64.urlsafe_b64encode(KEY_A).decode().rstrip('=')}\n"
    assert parse_keys(text) == [("b", KEY_B), ("a", KEY_A)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "holds no key"),
        (" , ", "holds no key"),
        (b64(KEY_A), "entry 1 is not 'id:base64key'"),
        (f"a:{b64(KEY_A)},b:", "entry 2 is not 'id:base64key'"),
        (f"a:{b64(KEY_A[:16])}", "the key of 'a' is 16 bytes; AES-256 needs 32"),
        ("a:not base64!", "the key of 'a' is not base64"),
        (f"a:{b64(KEY_A)},a:{b64(KEY_B)}", "key id 'a' is listed twice"),
        (f"bad id:{b64(KEY_A)}", "key id 'bad id' .* must be 1-64 letters"),
    ],
)
def test_invalid_keys_are_refused_naming_the_variable_and_never_the_key(
    clean_env: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    clean_env.setenv("APEX_PAYLOAD_KEYS", value)
    with pytest.raises(SettingsError, match=rf"^APEX_PAYLOAD_KEYS.*{expected}") as caught:
        data_converter(TemporalSettings())
    for key in (KEY_A, KEY_B):
        assert b64(key) not in str(caught.value)
        assert b64(key[:16]) not in str(caught.value)


def test_without_a_key_nothing_connects_unless_encryption_is_explicitly_off(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as caught:
        data_converter(TemporalSettings())
    message = str(caught.value)
    assert "APEX_PAYLOAD_KEYS" in message
    assert "APEX_PAYLOAD_ENCRYPTION=off" in message
    clean_env.setenv("APEX_PAYLOAD_ENCRYPTION", "OFF")
    converter = data_converter(TemporalSettings())
    encryption = find_codec(converter, PayloadEncryption)
    assert encryption is not None
    assert not encryption.encrypting


async def test_encryption_off_writes_plain_payloads_and_still_reads_encrypted_ones(
    clean_env: pytest.MonkeyPatch,
) -> None:
    sealed = await PayloadEncryption([("a", KEY_A)]).encode([plain()])
    clean_env.setenv("APEX_PAYLOAD_ENCRYPTION", "off")
    clean_env.setenv("APEX_PAYLOAD_KEYS", f"a:{b64(KEY_A)}")
    codec = data_converter(TemporalSettings()).payload_codec
    assert codec is not None
    assert await codec.encode([plain()]) == [plain()]
    assert await codec.decode(sealed) == [plain()]


def test_keys_and_a_key_file_at_once_are_refused(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APEX_PAYLOAD_KEYS", f"a:{b64(KEY_A)}")
    clean_env.setenv("APEX_PAYLOAD_KEYS_FILE", str(write_key_file(tmp_path / "keys", "k")))
    with pytest.raises(SettingsError, match="set APEX_PAYLOAD_KEYS or APEX_PAYLOAD_KEYS_FILE, not both"):
        configured_keys(load(PayloadSettings))


def test_a_key_file_is_made_once_with_mode_0600_and_read_back(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = write_key_file(tmp_path / "home" / "payload_keys", "dev-1")
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = path.read_text()
    assert write_key_file(path, "dev-2").read_text() == first  # kept, never replaced
    clean_env.setenv("APEX_PAYLOAD_KEYS_FILE", str(path))
    keys = configured_keys(load(PayloadSettings))
    assert [key_id for key_id, _ in keys] == ["dev-1"]
    assert len(keys[0][1]) == 32


def test_a_key_file_open_to_others_or_a_symlink_is_refused(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "keys", "k")
    path.chmod(0o640)
    with pytest.raises(SettingsError, match=r"APEX_PAYLOAD_KEYS_FILE=.* is open to other users \(mode 0640\)"):
        read_key_file(path)
    path.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(SettingsError, match="symlinks are not followed"):
        read_key_file(link)
    with pytest.raises(SettingsError, match="no such file"):
        read_key_file(tmp_path / "missing")
    # a planted symlink is never written through either
    planted = tmp_path / "planted"
    planted.symlink_to(tmp_path / "elsewhere")
    write_key_file(planted, "k")
    assert not (tmp_path / "elsewhere").exists()


def test_a_bad_key_file_names_its_variable(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, f"a:{b64(KEY_A[:31])}\n".encode())
    os.close(fd)
    clean_env.setenv("APEX_PAYLOAD_KEYS_FILE", str(path))
    with pytest.raises(SettingsError, match=r"^APEX_PAYLOAD_KEYS_FILE: the key of 'a' is 31 bytes"):
        data_converter(TemporalSettings())


# -- the codec ----------------------------------------------------------------------------------


async def test_a_payload_is_sealed_with_the_first_key_a_fresh_nonce_each_time_and_opens_again() -> None:
    codec = PayloadEncryption([("a", KEY_A), ("b", KEY_B)])
    one, two = await codec.encode([plain(), plain()])
    for sealed in (one, two):
        assert sealed.metadata["encoding"] == ENCODING
        assert sealed.metadata[KEY_ID_METADATA] == b"a"
        assert MARKER.encode() not in sealed.SerializeToString()
        assert b"json/plain" not in sealed.SerializeToString()  # the inner metadata is sealed too
    assert one.data[:12] != two.data[:12]  # a random 96-bit nonce per payload
    assert one.data != two.data
    assert await codec.decode([one, two]) == [plain(), plain()]


async def test_a_payload_that_is_not_encrypted_passes_through() -> None:
    """Histories written before encryption was on still decode."""
    codec = PayloadEncryption([("a", KEY_A)])
    binary = Payload(metadata={"encoding": b"binary/null"})
    assert await codec.decode([plain(), binary]) == [plain(), binary]


async def test_rotation_a_new_primary_key_writes_and_the_old_one_still_reads() -> None:
    old = await PayloadEncryption([("a", KEY_A)]).encode([plain("written under a")])
    rotated = PayloadEncryption([("b", KEY_B), ("a", KEY_A)])
    assert rotated.primary == "b"
    new = await rotated.encode([plain("written under b")])
    assert new[0].metadata[KEY_ID_METADATA] == b"b"
    assert await rotated.decode([*old, *new]) == [plain("written under a"), plain("written under b")]
    # once "a" is retired, what it wrote fails clearly, naming the key id
    with pytest.raises(PayloadDecryptionError, match=r"key 'a' cannot be decrypted.*\(b\); add the key"):
        await PayloadEncryption([("b", KEY_B)]).decode(old)


async def test_a_wrong_key_or_altered_ciphertext_or_metadata_fails_clearly() -> None:
    (sealed,) = await PayloadEncryption([("a", KEY_A)]).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="key 'a' failed authentication"):
        await PayloadEncryption([("a", KEY_B)]).decode([sealed])  # the same id, another key
    flipped = bytearray(sealed.data)
    flipped[20] ^= 1
    altered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match="its ciphertext or metadata was altered"):
        await PayloadEncryption([("a", KEY_A)]).decode([altered])
    # the key id is bound to the ciphertext: relabelled, it fails even where the key matches
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"b"}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError, match="key 'b' failed authentication"):
        await PayloadEncryption([("a", KEY_A), ("b", KEY_A)]).decode([relabelled])
    short = Payload(metadata=dict(sealed.metadata), data=sealed.data[:20])
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await PayloadEncryption([("a", KEY_A)]).decode([short])


# -- composed with the payload guard ------------------------------------------------------------


def converter_with_key(monkeypatch: pytest.MonkeyPatch, limit: int) -> CodecChain:
    monkeypatch.setenv("APEX_PAYLOAD_KEYS", f"a:{b64(KEY_A)}")
    codec = data_converter(TemporalSettings(max_payload_bytes=limit)).payload_codec
    assert isinstance(codec, CodecChain)
    return codec


async def test_the_guard_checks_the_plaintext_then_encryption_seals_it(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv(GUARD_FILE_ENV, str(tmp_path / "guard.log"))  # not the session's: it would fail the session
    limit = 1024
    codec = converter_with_key(clean_env, limit)
    assert [type(c) for c in codec.codecs] == [PayloadGuard, PayloadEncryption]
    at_limit = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * limit)
    (sealed,) = await codec.encode([at_limit])  # larger once sealed, and still accepted
    assert len(sealed.data) > limit
    assert sealed.metadata["encoding"] == ENCODING
    assert await codec.decode([sealed]) == [at_limit]
    over = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * (limit + 1))
    with pytest.raises(PayloadTooLarge, match=f"{limit + 1} bytes exceeds"):
        await codec.encode([over])


async def test_values_and_failure_messages_cross_the_converter_encrypted(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APEX_PAYLOAD_KEYS", f"a:{b64(KEY_A)}")
    converter = data_converter(TemporalSettings())
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    (payload,) = await converter.encode([{"cursor": MARKER}])
    assert MARKER.encode() not in payload.SerializeToString()
    assert await converter.decode([payload]) == [{"cursor": MARKER}]

    from temporalio.api.failure.v1 import Failure

    failure = Failure()
    await converter.encode_failure(ApplicationError(f"vendor refused {MARKER}"), failure)
    assert MARKER.encode() not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert MARKER in str(decoded)
