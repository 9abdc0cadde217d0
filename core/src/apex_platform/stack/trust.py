"""What a command may believe of a `stack.json` it finds on disk.

`trace`, `dlq`, `sources`, `inbox` and the sinks find a running `apex-platform dev`
through `APEX_HOME/stack.json`, and APEX_HOME defaults to `.apex` in the current folder,
which anyone who can write that folder could have planted: the file would then decide
where the admin token, the inbox's deliveries and the stores' records are sent. So a
stack file is believed only when

- it is a regular file (not a symlink) of this user that nobody else may write;
- the process it names is alive, runs as this user and started when the file says it
  did (a pid of 1, another user's process or a recycled pid is not the stack);
- every address in it is on this machine (loopback), unless `APEX_STACK_ALLOW_REMOTE`
  says a stack elsewhere is meant.

A stale file (its process gone) reads as "no stack"; a file that fails the other checks
is refused with a `StackError` saying why.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import ALLOW_REMOTE_SETTING, is_loopback

#: how far the recorded start time of the stack's process may be from the one seen now
_START_TOLERANCE_SECONDS = 1.0


def process_record(pid: int | None = None) -> dict[str, Any]:
    """What stack.json records of the process that runs the stack, to recognise it later."""
    proc = psutil.Process(pid if pid is not None else os.getpid())
    return {"pid": proc.pid, "uid": proc.uids().real, "started": proc.create_time()}


def read_trusted_stack(path: Path) -> dict[str, Any] | None:
    """The content of the stack file at `path` if it may be believed; None when there is no
    file or its stack is not running; `StackError` when the file must not be believed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"refusing {path}: {exc.strerror or exc} (a symlink is never followed)") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        _check_file(path, info)
        raw = handle.read(1024 * 1024)
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not _is_running(doc):
        return None
    _check_addresses(path, doc)
    return doc


def _check_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise StackError(f"refusing {path}: not a regular file")
    if info.st_uid != os.geteuid():
        raise StackError(
            f"refusing {path}: it belongs to uid {info.st_uid}, not to this user; another user may have "
            "planted it (set APEX_HOME to your own stack's folder)"
        )
    if info.st_mode & 0o022:
        raise StackError(
            f"refusing {path}: other users may write it (mode {stat.S_IMODE(info.st_mode):o}); "
            f"chmod 600 {path} if it is really yours"
        )


def _is_running(doc: dict[str, Any]) -> bool:
    """The process the file names is alive, ours, and the very one that wrote it."""
    pid, record = doc.get("pid"), doc.get("process")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or not isinstance(record, dict):
        return False
    started = record.get("started")
    if record.get("pid") != pid or not isinstance(started, int | float):
        return False
    try:
        proc = psutil.Process(pid)
        uid, created = proc.uids().real, proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return uid == os.geteuid() and abs(created - float(started)) <= _START_TOLERANCE_SECONDS


def remote_allowed() -> bool:
    """APEX_STACK_ALLOW_REMOTE, the setting that lets the stack itself listen elsewhere."""
    from apex_platform.stack.stack import StackSettings

    return StackSettings().allow_remote


def _check_addresses(path: Path, doc: dict[str, Any]) -> None:
    if remote_allowed():
        return
    for where, address in _addresses(doc):
        host = _host_of(address)
        if host is None or not is_loopback(host):
            raise StackError(
                f"refusing {path}: its {where} is not on this machine ({host or 'unreadable address'}); "
                f"set {ALLOW_REMOTE_SETTING}=1 if a stack elsewhere is really meant"
            )


def _addresses(doc: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for section, key in (("api", "url"), ("temporal", "address"), ("postgres", "dsn"), ("redis", "url")):
        part = doc.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if value is not None:
            found.append((f"{section}.{key}", value if isinstance(value, str) else ""))
    return found


def _host_of(address: str) -> str | None:
    text = address.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text if "://" in text else f"tcp://{text}")
        host = parts.hostname
    except ValueError:
        return None
    if "host=" in parts.query:  # libpq's ?host= would override the host: not judged, refused
        return None
    return host
