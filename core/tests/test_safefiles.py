"""safefiles on a real file system: links, FIFOs, other users' files, shared-writable and
oversized files are refused before a byte is read; links planted in place of folders,
moved files or their notes are never followed; names are escaped and fitted."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from apex_platform.errors import PayloadError
from apex_platform.safefiles import (
    NAME_MAX,
    NOTE_SUFFIX,
    STRUCTURAL,
    FilePolicy,
    FileSettings,
    Folder,
    UnsafeFile,
    display_line,
    display_name,
    fitted,
    move_with_note,
    open_input,
)

pytestmark = pytest.mark.timeout(30)

SECRET = b"-----BEGIN PRIVATE KEY----- secret-marker-7f3a"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.pem"
    path.write_bytes(SECRET)
    return path


@contextmanager
def released(fifo: Path) -> Iterator[None]:
    """On the way out, a writer opens `fifo`: a reader blocked on it (the bug) wakes up."""
    try:
        yield
    finally:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader waits: nothing to release
            pass
        else:
            os.close(fd)


def opened_within(path: Path, seconds: float, policy: FilePolicy = STRUCTURAL) -> BaseException | None:
    """What `open_input(path)` raised, run in a thread that must end within `seconds`."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            open_input(path, policy).close()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    with released(path):
        thread.start()
        thread.join(seconds)
        assert not thread.is_alive(), f"opening {path.name} blocked"
    return outcome[0]


def test_a_link_is_refused_and_its_target_never_read(tmp_path: Path, secret: Path) -> None:
    link = tmp_path / "invoice.x12"
    link.symlink_to(secret)
    with pytest.raises(UnsafeFile, match=r"invoice\.x12: a symbolic link; not followed, nothing read") as caught:
        open_input(link)
    assert SECRET.decode() not in str(caught.value)
    assert isinstance(caught.value, PayloadError)  # an input's fault: never retried
    dangling = tmp_path / "dangling.x12"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        open_input(dangling)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.x12"
    os.mkfifo(fifo)
    refused = opened_within(fifo, 5)
    assert isinstance(refused, UnsafeFile)
    assert "pipe.x12: a FIFO; nothing read" in str(refused)
    link = tmp_path / "to-pipe.x12"
    link.symlink_to(fifo)
    assert isinstance(opened_within(link, 5), UnsafeFile)
    with pytest.raises(UnsafeFile, match="a folder"):
        open_input(tmp_path)


def test_owner_mode_and_size_are_checked_on_the_open_file(tmp_path: Path) -> None:
    path = tmp_path / "f.x12"
    path.write_bytes(b"ISA" + b"x" * 97)
    with open_input(path) as fh:  # the structural checks only
        assert fh.read() == path.read_bytes()
    mine = FilePolicy(owners=frozenset({os.geteuid()}))
    with open_input(path, mine) as fh:
        assert fh.status.st_size == 100
    with pytest.raises(UnsafeFile, match=r"f\.x12: owned by .*uid \d+.*APEX_FILES_OWNERS; nothing read"):
        open_input(path, FilePolicy(owners=frozenset({os.geteuid() + 4242})))

    path.chmod(0o666)
    open_input(path, mine).close()  # not refused unless asked
    with pytest.raises(UnsafeFile, match=r"writable by other users \(mode -rw-rw-rw-"):
        open_input(path, FilePolicy(refuse_shared_writable=True))
    path.chmod(0o644)
    open_input(path, FilePolicy(refuse_shared_writable=True)).close()

    with pytest.raises(UnsafeFile, match="100 bytes, more than APEX_FILES_MAX_BYTES=99"):
        open_input(path, FilePolicy(max_bytes=99))
    with open_input(path, FilePolicy(max_bytes=120)) as fh:
        with path.open("ab") as grow:  # grows past the bound while being read
            grow.write(b"y" * 50)
        assert len(fh.read(100)) == 100
        with pytest.raises(UnsafeFile, match="grew past APEX_FILES_MAX_BYTES=120"):
            fh.read(100)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file of another user needs root")
def test_the_default_policy_reads_the_workers_root_s_and_the_named_users_files(tmp_path: Path) -> None:
    path = tmp_path / "upload.x12"
    path.write_bytes(b"ISA")
    os.chown(path, 4242, 4242)
    with pytest.raises(UnsafeFile, match="owned by uid 4242"):
        open_input(path, FilePolicy.from_settings(FileSettings()))
    open_input(path, FilePolicy.from_settings(FileSettings(owners="4242"))).close()
    os.chown(path, 0, 0)
    open_input(path, FilePolicy.from_settings(FileSettings())).close()


def test_a_link_in_place_of_a_subfolder_is_moved_aside_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "done").symlink_to(elsewhere)
    (inbox / "failed").write_text("a file, not a folder")
    (inbox / "f.x12").write_text("data")
    with Folder.open(inbox) as root:
        with root.subfolder("done") as done:
            move_with_note(root, "f.x12", done, "ingested\n")
        with root.subfolder("failed") as failed:
            assert failed.entries() == []
    assert list(elsewhere.iterdir()) == []  # the link's target is untouched
    assert (inbox / "done").is_dir()
    assert not (inbox / "done").is_symlink()
    assert (inbox / "done" / "f.x12").read_text() == "data"
    assert (inbox / "done" / "f.x12.reason.txt").read_text() == "ingested\n"
    aside = sorted(p.name for p in inbox.iterdir() if p.name.startswith("."))
    assert [a.split(".not-a-folder.")[0] for a in aside] == [".done", ".failed"]
    assert (inbox / aside[0]).readlink() == elsewhere


def test_a_move_never_replaces_nor_writes_through_a_planted_name(tmp_path: Path, secret: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "failed"
    src.mkdir()
    dst.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    planted = tmp_path / "planted.txt"  # a dangling link: writing through it would create this
    (dst / "a.x12").symlink_to(victim)
    (dst / "b.x12.reason.txt").symlink_to(planted)
    for name in ("a.x12", "b.x12", "c.x12"):
        (src / name).write_text(name)
    (src / "link.x12").symlink_to(secret)
    with Folder.open(src) as s, Folder.open(dst) as d:
        moved = [move_with_note(s, name, d, f"reason of {name}\n") for name in ("a.x12", "b.x12", "c.x12")]
        moved_link = move_with_note(s, "link.x12", d, None)
    assert moved[0] != "a.x12"
    assert moved[0].startswith("a.")
    assert moved[0].endswith(".x12")
    assert moved[1] != "b.x12"
    assert moved[2] == "c.x12"
    for name, new in zip(("a.x12", "b.x12", "c.x12"), moved, strict=True):
        assert (dst / new).read_text() == name
        assert (dst / (new + NOTE_SUFFIX)).read_text() == f"reason of {name}\n"
    assert victim.read_text() == "victim"
    assert not planted.exists()
    assert (dst / "a.x12").readlink() == victim  # the planted names are left as they were
    assert (dst / "b.x12.reason.txt").readlink() == planted
    assert (dst / moved_link).readlink() == secret  # a link moves as itself, unread
    assert secret.read_bytes() == SECRET
    assert list(src.iterdir()) == []


def test_names_too_long_for_their_note_are_fitted(tmp_path: Path) -> None:
    name = "b" * (NAME_MAX - 4) + ".x12"  # as long as a file name can be
    assert fitted(name) == name
    short = fitted(name, len(NOTE_SUFFIX))
    assert len(os.fsencode(short + NOTE_SUFFIX)) <= NAME_MAX
    assert short.endswith(".x12")
    assert short.startswith("bbbb")
    assert fitted("b" * (NAME_MAX - 5) + "c.x12", len(NOTE_SUFFIX)) != short  # different names stay different
    wide = "é" * 120 + ".x12"  # 244 bytes
    assert len(os.fsencode(fitted(wide, len(NOTE_SUFFIX)) + NOTE_SUFFIX)) <= NAME_MAX
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_text("x")
    with Folder.open(tmp_path / "in") as s, Folder.open(tmp_path / "out") as d:
        first = move_with_note(s, name, d, "note\n")
        (tmp_path / "in" / name).write_text("y")
        second = move_with_note(s, name, d, "note\n")
    assert first == short
    assert second != first
    assert (tmp_path / "out" / (second + NOTE_SUFFIX)).read_text() == "note\n"


def test_names_and_lines_are_shown_escaped() -> None:
    hostile = "evil\n[done] forged line\r\x1b[31m\u202e\u200bx\\n" + os.fsdecode(b"\xff\x07") + ".x12"
    shown = display_name(hostile)
    assert shown == "evil\\n[done] forged line\\r\\x1b[31m\\u202e\\u200bx\\\\n\\xff\\x07.x12"
    assert shown.isprintable()
    assert display_line("a\nb\\n") == "a\\nb\\n"  # a line keeps its backslashes
    assert display_name("plain name, ünïcode ✓.x12") == "plain name, ünïcode ✓.x12"
    assert len(display_line("x" * 5000)) == 2000
    shown.encode("utf-8")  # never a lone surrogate: writing it cannot fail
