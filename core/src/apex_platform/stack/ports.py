"""Local TCP port checks, so a busy port fails early with the setting to change."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from apex_platform.stack.errors import StackError


@dataclass(frozen=True, slots=True)
class PortClaim:
    """A port a server is about to listen on, and who to blame if it is taken.

    `setting` is the environment variable that moves the port; `None` when the port
    is only a constructor argument (e.g. Temporal's HTTP and metrics ports).
    """

    port: int
    service: str
    setting: str | None = None

    def busy_message(self, host: str) -> str:
        fix = f"set {self.setting}" if self.setting else "choose another port"
        return f"port {self.port} for {self.service} is in use on {host}; {fix} or stop what uses it"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's pick).

    Another process may take it before the caller binds it; good enough for tests
    and for auxiliary ports, not a reservation.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind `host:port` now.

    SO_REUSEADDR mirrors what the servers themselves set, so a port that only has
    connections in TIME_WAIT counts as free; a listener (also on 0.0.0.0) does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ensure_ports_free(claims: list[PortClaim], host: str = "127.0.0.1") -> None:
    """Raise one `StackError` listing every busy port of `claims`."""
    busy = [claim.busy_message(host) for claim in claims if not port_is_free(claim.port, host)]
    if busy:
        raise StackError("; ".join(busy))


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port` (a cheap readiness pre-check)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
