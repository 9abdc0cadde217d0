"""The CLI does not trust the current folder (issue 11, item 7), run as a user runs it.

A `.apex/stack.json` planted where someone runs `apex-platform trace` or `dlq` used to get
the admin token sent to any URL (a pid of 1 counted as "running"), and a `./.env` could set
any setting, a vendor's base URL included. Here an "attacker" HTTP server records what
reaches it while the real CLI runs against planted files.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support.procs import CLI, wait_for

from apex_platform.stack.ports import free_port
from apex_platform.testing.stack_file import write_stack_file

pytestmark = pytest.mark.timeout(180)

TOKEN = "cli-trust-admin-token-0123456789"


class Recorder(ThreadingHTTPServer):
    """A local HTTP server that answers `[]` and keeps every request's path and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, dict(self.headers)))
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def attacker() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    # nothing to reach locally either: a fallback to local stores fails fast
    base.update(
        APEX_PLUGINS="postgres",
        APEX_POSTGRES_DSN=f"postgresql://apex:x@127.0.0.1:{free_port()}/apex",
        APEX_POSTGRES_CONNECT_TIMEOUT="2",
        APEX_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    return subprocess.run([CLI, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120)


def plant(home: Path, url: str, **extra: object) -> Path:
    """The stack file a planted folder would hold: naming this test process, so it is alive."""
    path = write_stack_file(home, api={"url": url}, **extra)  # type: ignore[arg-type]
    (home / "admin_token").write_text(TOKEN)
    (home / "admin_token").chmod(0o600)
    return path


def test_a_believed_stack_file_is_used(tmp_path: Path, attacker: Recorder) -> None:
    """The control: a stack file of this user, naming a live process of it, on loopback, is
    how a second terminal reaches `apex-platform dev`, token and all."""
    plant(tmp_path / ".apex", attacker.url)
    out = cli("dlq", "list", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [path for path, _ in attacker.seen] == ["/v1/dead-letters?status=open&limit=100"]
    assert attacker.seen[0][1]["Authorization"] == f"Bearer {TOKEN}"


def test_a_stack_file_others_may_write_is_refused(tmp_path: Path, attacker: Recorder) -> None:
    plant(tmp_path / ".apex", attacker.url).chmod(0o666)
    out = cli("dlq", "list", cwd=tmp_path)
    assert out.returncode == 1
    assert "refusing" in out.stderr
    assert "other users may write it" in out.stderr
    assert "Traceback" not in out.stderr
    assert attacker.seen == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_another_users_stack_file_is_refused(tmp_path: Path, attacker: Recorder) -> None:
    os.chown(plant(tmp_path / ".apex", attacker.url), 65534, 65534)
    out = cli("trace", "frontapp", "msg_1", cwd=tmp_path)
    assert out.returncode == 1
    assert "belongs to uid 65534" in out.stderr
    assert attacker.seen == []


def test_pid_1_is_not_a_running_stack(tmp_path: Path, attacker: Recorder) -> None:
    home = tmp_path / ".apex"
    home.mkdir()
    (home / "stack.json").write_text(json.dumps({"pid": 1, "api": {"url": attacker.url}, "home": str(home)}))
    (home / "stack.json").chmod(0o600)
    (home / "admin_token").write_text(TOKEN)
    cli("dlq", "list", cwd=tmp_path)
    cli("trace", "frontapp", "msg_1", cwd=tmp_path)
    assert attacker.seen == []  # the token went nowhere


def test_a_stack_elsewhere_needs_the_explicit_setting(tmp_path: Path) -> None:
    plant(tmp_path / ".apex", "http://198.51.100.7:8080")
    out = cli("dlq", "list", cwd=tmp_path)
    assert out.returncode == 1
    assert "not on this machine" in out.stderr
    assert "APEX_STACK_ALLOW_REMOTE" in out.stderr


def test_a_dotenv_in_the_working_folder_is_not_read(tmp_path: Path) -> None:
    """`./.env` is no longer read by itself: here it holds a setting the API refuses, and
    the API starts regardless (it says so in its log); named by APEX_ENV_FILE it is read."""
    (tmp_path / ".env").write_text("APEX_MAX_BODY_BYTES=lots\n")
    (tmp_path / ".env").chmod(0o600)
    port = free_port()
    env = {
        "APEX_PLUGINS": "frontapp",
        "APEX_POSTGRES_DSN": f"postgresql://apex:x@127.0.0.1:{free_port()}/apex",
        "APEX_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "APEX_PAYLOAD_ENCRYPTION": "off",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    log = tmp_path / "api.log"
    with log.open("ab") as out:
        api = subprocess.Popen(
            [CLI, "api", "--port", str(port)], cwd=tmp_path, env={**base, **env}, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz") or api.poll() is not None, what="the API")
        assert api.poll() is None, log.read_text()
    finally:
        api.terminate()
        api.wait(30)
    assert "./.env is not read" in log.read_text()
    explicit = cli("api", "--port", str(free_port()), cwd=tmp_path, APEX_ENV_FILE=".env", **env)
    assert explicit.returncode == 1
    assert "APEX_MAX_BODY_BYTES" in explicit.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_dotenv_cannot_redirect_a_vendor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack itself: a planted ./.env pointing Plaid's base URL elsewhere."""
    from apex_connector_plaid.settings import PRODUCTION_URL, PlaidSettings
    from apex_platform.settings import load

    (tmp_path / ".env").write_text("APEX_PLAID_BASE_URL=http://127.0.0.1:9\n")
    monkeypatch.chdir(tmp_path)
    for name in ("APEX_ENV_FILE", "APEX_HOME", "APEX_PLAID_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert load(PlaidSettings).base_url == PRODUCTION_URL
    # APEX_HOME's own .env (the operator's folder) is read
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".env").write_text("APEX_PLAID_BASE_URL=http://127.0.0.1:10\n")
    monkeypatch.setenv("APEX_HOME", str(tmp_path / "home"))
    assert load(PlaidSettings).base_url == "http://127.0.0.1:10"


def test_an_env_file_others_may_write_is_refused(tmp_path: Path) -> None:
    env_file = tmp_path / "apex.env"
    env_file.write_text("APEX_PLAID_BASE_URL=http://127.0.0.1:9/\n")
    env_file.chmod(0o664)
    out = cli("api", "--port", str(free_port()), cwd=tmp_path, APEX_ENV_FILE=str(env_file))
    assert out.returncode == 1
    assert "refusing the env file" in out.stderr
    assert "Traceback" not in out.stderr


def test_dev_refuses_an_empty_admin_token_before_starting_anything(tmp_path: Path) -> None:
    out = cli("dev", "--home", str(tmp_path / "home"), cwd=tmp_path, APEX_ADMIN_TOKEN="")
    assert out.returncode == 1
    assert "APEX_ADMIN_TOKEN" in out.stderr
    assert "empty" in out.stderr
    assert not (tmp_path / "home" / "stack.json").exists()
