"""Running `apex-platform` commands as real child processes for end-to-end tests."""

from __future__ import annotations

import time

from apex_platform.testing.processes import CLI, ApexProcess, wait_http

# the testing kit's (apex_platform.testing.processes), kept importable from here
__all__ = ["CLI", "ApexProcess", "wait_for", "wait_http"]


def wait_for(predicate: object, timeout: float = 60, interval: float = 0.25, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout}s")
