"""Encrypted Temporal payloads: AES-256-GCM with a key id in each payload's metadata.

The rule: every payload Apex hands Temporal (workflow and activity inputs and results,
signals, queries, failure messages) leaves the process encrypted with the first key of
`APEX_PAYLOAD_KEYS`; any listed key decrypts, so a key rotates by putting the new one
first and keeping the old ones until no history written with them is needed. A payload
without the encrypted encoding (a history written before encryption was on) passes
through unchanged. Each payload gets a random 96-bit nonce; the encoding and the key id
are authenticated with it (associated data), so neither can be altered unnoticed.

Without a key, a process that talks to Temporal refuses to start unless
`APEX_PAYLOAD_ENCRYPTION=off` says Temporal is protected otherwise; `apex-platform dev`
and the test suite make a key of their own (`write_key_file`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from apex_platform.errors import ApexError, SettingsError
from apex_platform.settings import apex_config

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEYS_ENV = "APEX_PAYLOAD_KEYS"
KEYS_FILE_ENV = "APEX_PAYLOAD_KEYS_FILE"
ENCRYPTION_ENV = "APEX_PAYLOAD_ENCRYPTION"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_AAD_PREFIX = b"apex-payload-v1\x00"


class PayloadSettings(BaseSettings):
    """Encryption of what Apex hands Temporal (`APEX_PAYLOAD_*`)."""

    model_config = apex_config("APEX_PAYLOAD_")

    keys: SecretStr | None = Field(
        default=None,
        description="id:base64key entries, comma- or newline-separated; the first encrypts, every one decrypts",
    )
    keys_file: Path | None = Field(default=None, description="A file (mode 0600) holding the same entries")
    encryption: Literal["on", "off"] = Field(
        default="on", description="off: payloads are not encrypted (Temporal is protected otherwise)"
    )

    @field_validator("encryption", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def configured(self) -> bool:
        """Whether keys are given or encryption is explicitly off."""
        return self.keys is not None or self.keys_file is not None or self.encryption == "off"


class PayloadDecryptionError(ApexError, ValueError):
    """An encrypted payload could not be decrypted: its key is unknown, or it (or its
    metadata) was altered, or the key under its id is not the one that wrote it."""


def _key_bytes(text: str, key_id: str, variable: str) -> bytes:
    # standard or URL-safe alphabet, padding optional
    normal = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{variable}: the key of {key_id!r} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SettingsError(
            f"{variable}: the key of {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} "
            f"(make one: python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
        )
    return key


def parse_keys(text: str, variable: str = KEYS_ENV) -> list[tuple[str, bytes]]:
    """`id1:base64key,id2:base64key` (or one entry a line, `#` comments) into (id, key)
    pairs, first one first. Errors name `variable` and the key id, never a key."""
    keys: list[tuple[str, bytes]] = []
    entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
    for n, entry in enumerate((e for e in entries if e), start=1):
        key_id, sep, material = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not material.strip():
            raise SettingsError(f"{variable}: entry {n} is not 'id:base64key'")
        if not _KEY_ID.fullmatch(key_id):
            raise SettingsError(
                f"{variable}: key id {key_id[:70]!r} (entry {n}) must be 1-64 letters, digits, '.', '_' or '-'"
            )
        if any(key_id == known for known, _ in keys):
            raise SettingsError(f"{variable}: key id {key_id!r} is listed twice; key ids must be unique")
        keys.append((key_id, _key_bytes(material, key_id, variable)))
    if not keys:
        raise SettingsError(f"{variable} holds no key: give 'id:base64key' entries (32-byte keys)")
    return keys


def read_key_file(path: Path) -> str:
    """The text of a key file that only this user can read: a regular file (a symlink is
    not followed), owned by this user, with no group or other permission."""
    where = f"{KEYS_FILE_ENV}={path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SettingsError(f"{where}: no such file") from None
    except OSError as exc:
        raise SettingsError(f"{where} cannot be opened ({exc.strerror}; symlinks are not followed)") from None
    with os.fdopen(fd, encoding="utf-8") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(f"{where} is not a regular file")
        if info.st_uid != os.geteuid():
            raise SettingsError(f"{where} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})")
        if info.st_mode & 0o077:
            raise SettingsError(
                f"{where} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 {path}"
            )
        return fh.read()


def new_key_entry(key_id: str) -> str:
    """`key_id:base64key` with a fresh random 256-bit key."""
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def write_key_file(path: Path, key_id: str) -> Path:
    """Make `path` (mode 0600, never over an existing file or symlink) with one fresh key;
    an existing key file is left as it is."""
    if os.path.lexists(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(new_key_entry(key_id) + "\n")
    return path


def configured_keys(settings: PayloadSettings) -> list[tuple[str, bytes]]:
    """The keys of `settings`; none only when encryption is off and no key is given.

    Refuses (SettingsError) a missing key while encryption is on, and both variables at
    once (one place holds the keys, so a rotation cannot miss one)."""
    if settings.keys is not None and settings.keys_file is not None:
        raise SettingsError(f"set {KEYS_ENV} or {KEYS_FILE_ENV}, not both")
    if settings.keys is not None:
        return parse_keys(settings.keys.get_secret_value(), KEYS_ENV)
    if settings.keys_file is not None:
        return parse_keys(read_key_file(settings.keys_file), KEYS_FILE_ENV)
    if settings.encryption == "off":
        return []
    raise SettingsError(
        f"Temporal payloads are encrypted and no key is configured: set {KEYS_ENV}=id:base64key "
        f"(32 random bytes, base64; several for rotation, the first encrypts) or {KEYS_FILE_ENV}, "
        f"or {ENCRYPTION_ENV}=off where Temporal's storage is protected otherwise "
        "(`apex-platform dev` makes a key of its own)"
    )


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + ENCODING + b"\x00" + key_id.encode()


class PayloadEncryption(PayloadCodec):
    """AES-256-GCM payload codec. Encodes with the first key (unless `encrypt` is false:
    `APEX_PAYLOAD_ENCRYPTION=off` still reads what was written encrypted, given the keys),
    decodes with the key its metadata names; payloads of any other encoding pass through."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, encrypt: bool = True) -> None:
        self.key_ids = [key_id for key_id, _ in keys]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self.encrypting = encrypt and bool(self.key_ids)

    @classmethod
    def from_settings(cls, settings: PayloadSettings) -> PayloadEncryption:
        return cls(configured_keys(settings), encrypt=settings.encryption == "on")

    @property
    def primary(self) -> str | None:
        """The id of the key new payloads are encrypted with."""
        return self.key_ids[0] if self.encrypting else None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self.encrypting:
            return list(payloads)
        key_id = self.key_ids[0]
        cipher, aad = self._ciphers[key_id], _aad(key_id)
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), aad)
            metadata = {"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}
            out.append(Payload(metadata=metadata, data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _open(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(self.key_ids) or "none"
            raise PayloadDecryptionError(
                f"a Temporal payload encrypted with key {key_id!r} cannot be decrypted: that key id is not "
                f"among the configured payload keys ({known}); add the key that wrote it to {KEYS_ENV}"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"a Temporal payload encrypted with key {key_id!r} is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(key_id))
            return Payload.FromString(plain)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"a Temporal payload encrypted with key {key_id!r} failed authentication: its ciphertext or "
                f"metadata was altered, or the configured key {key_id!r} is not the key that wrote it"
            ) from None
        except DecodeError:
            raise PayloadDecryptionError(f"a Temporal payload decrypted with key {key_id!r} is not a payload") from None
