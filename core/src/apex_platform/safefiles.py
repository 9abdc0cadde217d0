"""Files users hand the platform: opened without following a link, checked before a byte
is read, moved and annotated without ever writing through a link.

A drop folder is written by people and programs the worker does not control (a
carrier's SFTP account, a shared volume). Whoever can write there can plant a symbolic
link (to a secret the worker can read, or to a file it can write), a FIFO (an open that
never returns), someone else's file, or a name made to forge lines of a reason text.
So, for every file a user supplies:

- it is opened with `O_NOFOLLOW | O_NONBLOCK` and checked on the open descriptor
  (`fstat`, so what is checked is what is read): a regular file, owned by the worker's
  user, root or a user of `APEX_FILES_OWNERS`, not writable by other users when
  `APEX_FILES_REFUSE_SHARED_WRITABLE` is on, and at most `APEX_FILES_MAX_BYTES` (read no
  further than that either). A refused file is never read: the reason says why, never
  what it holds (`UnsafeFile`);
- the folders files move into (`done/`, `failed/`) are opened through their parent's
  descriptor with `O_NOFOLLOW`; an entry in their place that is not a real folder is
  moved aside, never followed (`Folder.subfolder`);
- a move is a rename between two folder descriptors to a name nothing holds, and a note
  beside it is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: a link planted under either
  name is never written through, nor replaced (`move_with_note`);
- a name shown in a text or a log goes through `display_name`, a text through
  `display_line`: newlines, control characters, bidirectional overrides and bytes that
  are not UTF-8 are escaped, so a name can neither forge a line nor fail the write.

The folder a setting or a command line names is configuration: it may itself be a link
(a mounted volume); only what lies in it is the users'. POSIX only, as the stack is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import itertools
import logging
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.errors import ApexError, PayloadError, SettingsError
from apex_platform.settings import apex_config, load, parse_duration

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

#: longest file name, in bytes, of the file systems a drop folder lives on
NAME_MAX = 255
#: what the note beside a moved file is called: `<name>.reason.txt`
NOTE_SUFFIX = ".reason.txt"

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOTE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
#: what an open with O_NOFOLLOW answers for a link (Linux: ELOOP; BSDs: EMLINK, EFTYPE)
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", errno.ELOOP)})


class UnsafeFile(PayloadError):
    """A user's file refused before anything of it was read: a link, not a regular file,
    another user's, writable by others, or too large. The message names the file (as
    `display_name` shows it) and the reason, never the file's content."""


class FileSettings(BaseSettings):
    """How files users supply are checked (`APEX_FILES_*`): drop folders and
    `apex-platform ingest`."""

    model_config = apex_config("APEX_FILES_")

    owners: str = Field(
        default="",
        description=(
            "Users (names or uids, comma-separated) whose files are read besides the worker's own user and root, "
            "e.g. the SFTP account carriers upload with"
        ),
    )
    max_bytes: int = Field(default=4 * 1024**3, ge=0, description="Largest file read (0: no limit)")
    refuse_shared_writable: bool = Field(
        default=False, description="Refuse files that other users may write (group- or world-writable)"
    )
    timeout: timedelta = Field(
        default=timedelta(hours=1),
        description=(
            "A drop-folder file not ingested within this is cancelled and moved to failed/: "
            "one file never holds up the next ones"
        ),
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        duration = parse_duration(value)
        if duration <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return duration


def _uid(user: str) -> int:
    user = user.strip()
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise SettingsError(f"APEX_FILES_OWNERS: no such user {user!r}") from None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


_KINDS = (
    (stat.S_ISLNK, "a symbolic link; not followed"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@dataclass(frozen=True)
class FilePolicy:
    """What a file must be to be read. The default (`STRUCTURAL`) asks only what every
    read needs: no link, no FIFO or device, a regular file."""

    #: uids whose files are read (None: anyone's)
    owners: frozenset[int] | None = None
    #: largest file read, in bytes (0: no limit)
    max_bytes: int = 0
    #: refuse files that other users may write
    refuse_shared_writable: bool = False

    @classmethod
    def from_settings(cls, settings: FileSettings) -> FilePolicy:
        owners = {os.geteuid(), 0} | {_uid(u) for u in settings.owners.split(",") if u.strip()}
        return cls(frozenset(owners), settings.max_bytes, settings.refuse_shared_writable)

    def problem(self, st: os.stat_result) -> str | None:
        """Why a file with this status is not read (None: it is)."""
        if not stat.S_ISREG(st.st_mode):
            return _kind(st.st_mode)
        if self.owners is not None and st.st_uid not in self.owners:
            return f"owned by {_user(st.st_uid)}, not by the worker's user, root or a user of APEX_FILES_OWNERS"
        if self.refuse_shared_writable and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"writable by other users (mode {stat.filemode(st.st_mode)}, APEX_FILES_REFUSE_SHARED_WRITABLE)"
        if self.max_bytes and st.st_size > self.max_bytes:
            return f"{st.st_size} bytes, more than APEX_FILES_MAX_BYTES={self.max_bytes}"
        return None


#: only what every read needs (no link, no FIFO or device, a regular file)
STRUCTURAL = FilePolicy()


@lru_cache
def file_settings() -> FileSettings:
    """`APEX_FILES_*`, read once."""
    return load(FileSettings)


def input_policy() -> FilePolicy:
    """The policy of files users supply (`APEX_FILES_*`)."""
    return FilePolicy.from_settings(file_settings())


# -- showing names -----------------------------------------------------------------------

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (the file system's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def display_line(text: str, limit: int = 2000) -> str:
    """`text` as one printable line: newlines, control and format characters
    (bidirectional overrides), lone surrogates and undecodable bytes escaped; at most
    `limit` characters."""
    out = "".join(c if c.isprintable() else _ESCAPES.get(c) or _escaped(c) for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def display_name(name: str | os.PathLike[str]) -> str:
    """A file name as texts and logs show it: `display_line`, with backslashes doubled
    too, so the escapes of one name cannot be mistaken for another's."""
    return display_line(os.fspath(name).replace("\\", "\\\\"))


# -- reading -------------------------------------------------------------------------------


class InputFile(io.FileIO):
    """A checked input, open for reading (unbuffered). `status` is what was checked;
    reading past the policy's size bound (a file that grows while read) raises."""

    def __init__(self, fd: int, shown: str, limit: int, status: os.stat_result) -> None:
        super().__init__(fd, "rb", closefd=True)
        self.shown = shown
        self.limit = limit
        self.status = status
        self._read = 0

    def _count(self, n: int) -> None:
        self._read += n
        if self.limit and self._read > self.limit:
            raise UnsafeFile(f"{self.shown}: grew past APEX_FILES_MAX_BYTES={self.limit} while being read")

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size) or b""
        self._count(len(data))
        return data

    def readall(self) -> bytes:
        data = super().readall()
        self._count(len(data))
        return data

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        n = super().readinto(buffer) or 0
        self._count(n)
        return n

    def seek(self, pos: int, whence: int = os.SEEK_SET, /) -> int:
        at = super().seek(pos, whence)
        self._read = at
        return at


def open_input(
    path: str | os.PathLike[str], policy: FilePolicy = STRUCTURAL, *, dir_fd: int | None = None
) -> InputFile:
    """Open a user's file for reading without following a link in its last component
    and without blocking on a FIFO, then check the open descriptor against `policy`.
    `UnsafeFile` (nothing read) when it fails the checks; `FileNotFoundError` as ever."""
    shown = display_name(Path(path).name)
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise UnsafeFile(f"{shown}: a symbolic link; not followed, nothing read") from None
        if exc.errno == errno.ENXIO:  # a socket, or a device without its driver
            raise UnsafeFile(f"{shown}: not a regular file; nothing read") from None
        raise
    try:
        status = os.fstat(fd)
        problem = policy.problem(status)
        if problem is not None:
            raise UnsafeFile(f"{shown}: {problem}; nothing read")
        # a regular file never blocks; the flag only kept a FIFO's open from waiting
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return InputFile(fd, shown, policy.max_bytes, status)
    except BaseException:
        os.close(fd)
        raise


# -- folders and moves -----------------------------------------------------------------------


def fitted(name: str, reserve: int = 0) -> str:
    """`name` if it and `reserve` more bytes fit in a file name (`NAME_MAX`), else its
    beginning, `~`, a hash of the whole name and its extension: different names stay
    different, and the note beside it (`reserve`) still fits."""
    if len(os.fsencode(name)) + reserve <= NAME_MAX:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(os.fsencode(ext)) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16] + suffix
    room = NAME_MAX - reserve - len(os.fsencode(tag))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + tag


class Folder:
    """A folder held open by its descriptor. Entries are named relative to it, so a
    link planted in place of a subfolder, or under a name in it, is never followed."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Folder:
        """The folder a setting or a command line names (configuration: it may be a link)."""
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return cls(os.open(path, _DIR_FLAGS), path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r})"

    def subfolder(self, name: str) -> Folder:
        """Subfolder `name`, made if missing. Whatever stands in its place and is not a
        real folder (a link, a file) is renamed aside (`.<name>.not-a-folder.<time>`)
        and a folder made instead: never followed, never written through."""
        for _ in range(3):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=self.fd)  # mkdir never follows a link in its place
            try:
                return Folder(os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd), self.path / name)
            except OSError as exc:
                if exc.errno not in _LINK_ERRNOS | {errno.ENOTDIR}:
                    raise
            aside = fitted(f".{name}.not-a-folder.{_stamp()}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(name, aside, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                log.warning(
                    "%s/%s is not a folder (a link or a file): renamed to %s, not followed", self.path, name, aside
                )
        raise ApexError(f"{self.path}/{name} keeps being replaced by something that is not a folder")

    def lstat(self, name: str) -> os.stat_result | None:
        """The status of entry `name` itself (a link is not followed); None: there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def entries(self) -> list[tuple[str, os.stat_result]]:
        """Every entry with its own status (links not followed), sorted by name."""
        out: list[tuple[str, os.stat_result]] = []
        with os.scandir(self.fd) as listing:
            for entry in listing:
                with contextlib.suppress(FileNotFoundError):
                    out.append((entry.name, entry.stat(follow_symlinks=False)))
        return sorted(out, key=lambda item: os.fsencode(item[0]))

    def create_text(self, name: str, text: str) -> None:
        """A new file `name` holding `text`; `FileExistsError` if anything (a link too,
        dangling or not) holds that name already."""
        fd = os.open(name, _NOTE_FLAGS, 0o644, dir_fd=self.fd)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def _candidates(name: str) -> Iterator[str]:
    yield fitted(name, len(NOTE_SUFFIX))
    stem, dot, ext = name.rpartition(".")
    stem, suffix = (stem, dot + ext) if dot and stem else (name, "")
    for n in itertools.count():
        yield fitted(f"{stem}.{_stamp()}{f'-{n}' if n else ''}{suffix}", len(NOTE_SUFFIX))


def move_with_note(src: Folder, name: str, dst: Folder, note: str | None) -> str:
    """Move entry `name` of `src` (a file, or a link or FIFO as itself) into `dst` under a
    name that holds nothing there, nor its `<name>.reason.txt`; with `note`, that note is
    written beside it. Never replaces what is there and never follows a link (a name
    too long for the note beside it is shortened with a hash). Returns the new name."""
    for candidate in _candidates(name):
        if dst.lstat(candidate) is not None or dst.lstat(candidate + NOTE_SUFFIX) is not None:
            continue
        if note is not None:
            try:
                dst.create_text(candidate + NOTE_SUFFIX, note)  # claims the name (O_EXCL)
            except FileExistsError:
                continue
        try:
            os.rename(name, candidate, src_dir_fd=src.fd, dst_dir_fd=dst.fd)
        except BaseException:
            if note is not None:
                dst.unlink(candidate + NOTE_SUFFIX)
            raise
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover - the candidates never end
