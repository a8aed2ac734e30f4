"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per state change.

The protocol is newline-separated ``KEY=VALUE`` assignments in a single datagram on the
AF_UNIX socket systemd names in $NOTIFY_SOCKET (a path, or "@name" in the abstract
namespace). Outside systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def notify(state: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd; False when not under systemd.

    Raises OSError when the socket exists but the datagram cannot be sent.
    """
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace: a leading NUL byte
    elif not address.startswith("/"):
        return False  # unset, or a transport this does not speak (vsock: "vsock:CID:PORT")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)
    return True


def reloading_state(clock_ns: int | None = None) -> str:
    """The RELOADING=1 message; systemd >= 253 asks for the monotonic time with it."""
    now_ns = time.monotonic_ns() if clock_ns is None else clock_ns
    return f"RELOADING=1\nMONOTONIC_USEC={now_ns // 1000}"


def watchdog_period_s(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.

    None when the watchdog is off, or when $WATCHDOG_PID names another process (the
    variables were inherited from a parent that systemd watches, not this one).
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6 / 2
