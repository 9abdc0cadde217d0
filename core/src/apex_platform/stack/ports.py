"""Local TCP port checks, so a busy port fails early with the setting to change."""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass

from apex_platform.stack.errors import StackError

log = logging.getLogger(__name__)
_warned_hosts: set[str] = set()

HOST_SETTING = "APEX_STACK_HOST"
ALLOW_REMOTE_SETTING = "APEX_STACK_ALLOW_REMOTE"


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


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, `localhost`)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_bind_host(host: str, *, allow_remote: bool = False) -> None:
    """Refuse a non-loopback interface for an embedded server unless `allow_remote` says so.

    The embedded servers are for one machine: Temporal's dev server has no
    authentication at all, and every other machine on the network would reach it on
    0.0.0.0. With `allow_remote` the host is taken, with a warning (once per host).
    """
    if is_loopback(host):
        return
    if not allow_remote:
        raise StackError(
            f"{HOST_SETTING}={host!r} is not a loopback address: the embedded servers would be reachable "
            f"from other machines (Temporal's dev server has no authentication); use 127.0.0.1, or set "
            f"{ALLOW_REMOTE_SETTING}=1 if that is really meant"
        )
    if host not in _warned_hosts:
        _warned_hosts.add(host)
        log.warning(
            "the embedded servers listen on %s (%s is set): other machines can reach them; "
            "Temporal's dev server has no authentication, PostgreSQL and Redis require their passwords",
            host,
            ALLOW_REMOTE_SETTING,
        )


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
