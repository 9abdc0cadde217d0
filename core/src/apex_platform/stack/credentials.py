"""Passwords of the embedded servers and the files that hold them, readable by their owner only.

Each server that takes a password (PostgreSQL, Redis) keeps a generated one in
`<data_dir>/password`, mode 0600, made once and reused by every later start, so a
second start of the same APEX_HOME resumes with the same credentials. Files that
carry a password (the password files, Redis's config, stack.json with the DSN and
URL built from them) are written through `write_private`: a new file of mode 0600
renamed into place, never opened through a symlink. Data folders are made 0700.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from apex_platform.stack.errors import StackError

PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a secret
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
_SCRAM_ITERATIONS = 4096


def new_password() -> str:
    """256 random bits, URL-safe (it goes into DSNs and URLs unquoted)."""
    return secrets.token_urlsafe(32)


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) a folder only its owner can enter.

    An existing folder we own is tightened to 0700; one owned by another user is left
    as it is (the owner decides; PostgreSQL's data folder as root is such a case).
    """
    path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)
    return path


def read_private(path: Path) -> str | None:
    """The content of a secret file we own (stripped), or None when it is missing or empty.

    A symlink, a file of another user or anything but a regular file is refused; a
    file we own that others can read is set back to 0600 first.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"cannot read {path} ({exc}); remove it to generate a new one") from None
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise StackError(f"{path} is not a regular file of this user; remove it to generate a new one")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(handle.fileno(), _PRIVATE_FILE)
        value = handle.read().strip()
    return value or None


def write_private(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Write `text` to `path` atomically as a new file of mode 0600 (chowned to `owner` if given).

    The temporary file is created with O_EXCL | O_NOFOLLOW, so a planted file or link
    is never written through, and a reader sees the old content or the new, never half.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def password_file(data_dir: Path) -> Path:
    """Where the server of `data_dir` keeps its password."""
    return data_dir / PASSWORD_FILE


def ensure_password(data_dir: Path) -> str:
    """The password kept in `data_dir`, generated and saved (0600) on first use."""
    path = password_file(data_dir)
    existing = read_private(path)
    if existing is not None:
        return existing
    password = new_password()
    write_private(path, password + "\n")
    return password


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of `password` for SCRAM-SHA-256 (RFC 5802/7677).

    Handing PostgreSQL this instead of the password means the password itself never
    reaches the server's input, its logs or its catalog.
    """
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def redact(url: str) -> str:
    """`url` with its password shown as `***`, for what is printed or logged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))
