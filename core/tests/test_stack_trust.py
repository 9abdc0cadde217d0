"""What `read_stack` believes of a stack.json (issue 11, item 7): only a regular file of this
user that nobody else may write, naming a live process of this user that started when the
file says, with every address on this machine unless APEX_STACK_ALLOW_REMOTE says otherwise.
Also the dev stack's admin token file: an empty one is replaced, a planted one refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from apex_platform.devstack import ADMIN_TOKEN_FILE, admin_token
from apex_platform.errors import SettingsError
from apex_platform.settings import MIN_SECRET_CHARS
from apex_platform.stack import StackError, read_stack
from apex_platform.stack.trust import process_record
from apex_platform.testing.stack_file import write_stack_file

LOCAL = {"api": {"url": "http://127.0.0.1:8080"}, "postgres": {"dsn": "postgresql://apex:pw@127.0.0.1:5433/apex"}}


@pytest.fixture(autouse=True)
def _no_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_STACK_ALLOW_REMOTE", raising=False)


def test_a_file_of_this_user_naming_this_process_is_believed(tmp_path: Path) -> None:
    write_stack_file(tmp_path, **LOCAL)
    info = read_stack(tmp_path)
    assert info is not None
    assert info["api"]["url"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_stack_file(tmp_path, **LOCAL)
    path.chmod(mode)
    with pytest.raises(StackError, match="other users may write it"):
        read_stack(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_another_users_file_is_refused(tmp_path: Path) -> None:
    path = write_stack_file(tmp_path, **LOCAL)
    os.chown(path, 65534, 65534)
    with pytest.raises(StackError, match="belongs to uid 65534"):
        read_stack(tmp_path)


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    real = write_stack_file(tmp_path / "elsewhere", **LOCAL)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "stack.json").symlink_to(real)
    with pytest.raises(StackError, match="symlink"):
        read_stack(tmp_path / "home")


def _write(home: Path, doc: dict[str, object]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "stack.json").write_text(json.dumps(doc))
    (home / "stack.json").chmod(0o600)


def test_pid_1_or_a_bare_live_pid_is_not_the_stack(tmp_path: Path) -> None:
    """`os.kill(1, 0)` succeeds: a planted file with pid 1 used to count as a running stack."""
    _write(tmp_path, {**LOCAL, "pid": 1})
    assert read_stack(tmp_path) is None
    _write(tmp_path, {**LOCAL, "pid": 1, "process": {**process_record(1), "pid": 1}})
    assert read_stack(tmp_path) is None  # pid 1 never is
    _write(tmp_path, {**LOCAL, "pid": os.getpid()})  # alive, ours, but nothing says it is the stack
    assert read_stack(tmp_path) is None


def test_a_recycled_pid_is_not_the_stack(tmp_path: Path) -> None:
    record = process_record()
    _write(tmp_path, {**LOCAL, "pid": record["pid"], "process": {**record, "started": record["started"] - 3600}})
    assert read_stack(tmp_path) is None


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("api", {"url": "http://198.51.100.7:8080"}),
        ("api", {"url": "http://stack-elsewhere.invalid:8080"}),
        ("temporal", {"address": "10.1.2.3:7233"}),
        ("postgres", {"dsn": "postgresql://apex:pw@203.0.113.9:5432/apex"}),
        ("postgres", {"dsn": "postgresql://apex:pw@127.0.0.1/apex?host=198.51.100.7"}),
        ("redis", {"url": "redis://:pw@192.0.2.1:6379/0"}),
        ("api", {"url": ""}),
    ],
)
def test_addresses_off_this_machine_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, value: dict[str, str]
) -> None:
    write_stack_file(tmp_path, **{**LOCAL, section: value})
    with pytest.raises(StackError, match="APEX_STACK_ALLOW_REMOTE"):
        read_stack(tmp_path)
    monkeypatch.setenv("APEX_STACK_ALLOW_REMOTE", "1")
    assert read_stack(tmp_path) is not None


def test_the_embedded_stack_records_its_process(tmp_path: Path) -> None:
    """What `apex-platform dev` writes is what `read_stack` recognises (without starting servers)."""
    from apex_platform.stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path)
    doc = stack._describe()
    assert doc["process"]["pid"] == os.getpid() == doc["pid"]
    _write(tmp_path, doc)
    assert read_stack(tmp_path) is not None


def test_an_empty_or_short_admin_token_file_gets_a_new_token(tmp_path: Path) -> None:
    path = tmp_path / ADMIN_TOKEN_FILE
    for planted in ("", "\n", "short"):
        path.write_text(planted)
        path.chmod(0o600)
        token = admin_token(tmp_path)
        assert len(token) >= MIN_SECRET_CHARS
        assert path.read_text().strip() == token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_token(tmp_path) == token  # kept once good


def test_a_planted_admin_token_link_is_refused(tmp_path: Path) -> None:
    known = tmp_path / "known"
    known.write_text("a-token-the-attacker-knows-000")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ADMIN_TOKEN_FILE).symlink_to(known)
    with pytest.raises(StackError):
        admin_token(tmp_path / "home")


def test_dev_refuses_an_empty_admin_token_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apex_platform.devstack import _start_stack

    monkeypatch.setenv("APEX_ADMIN_TOKEN", "")
    with pytest.raises(SettingsError, match="APEX_ADMIN_TOKEN: is set but empty"):
        _start_stack(tmp_path / "home")
    assert not (tmp_path / "home" / "stack.json").exists()
