"""`apex-platform` commands as real child processes, for end-to-end tests of the commands
themselves (`apex-platform api`, `worker`, `dev`): own environment, own log file, stopped
by signal like a service manager would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

CLI = str(Path(sys.executable).parent / "apex-platform")


class ApexProcess:
    """One `apex-platform <args>` child with its own environment and log file. The
    environment is this process's plus `env`, or `env` alone with `inherit=False`."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path, *, inherit: bool = True) -> None:
        self.args = args
        self.env = {**os.environ, **env} if inherit else dict(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ApexProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [CLI, *self.args], env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        fh.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal and wait (SIGKILL to the group after `timeout`); returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no drain."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_http(url: str, timeout: float = 60, proc: ApexProcess | None = None) -> None:
    """Until `url` answers 200; at once `RuntimeError` with the log's tail if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.running:
            raise RuntimeError(f"{proc.args} exited early:\n{proc.output()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s" + (f":\n{proc.output()[-3000:]}" if proc else ""))
