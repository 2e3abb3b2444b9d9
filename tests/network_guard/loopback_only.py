"""The suite's network guard: a socket may connect to loopback only.

Installed in the test process by ``tests/conftest.py`` and in every Python subprocess the suite
starts through ``sitecustomize`` beside this file (the conftest puts this folder on PYTHONPATH and
sets ``TEST_NETWORK_GUARD=loopback``). A connection to any other address is refused with an
``OSError`` before a packet leaves, and recorded, so a test whose code swallows the error still
fails. Unix sockets are allowed; names other than ``localhost`` are refused without a lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

attempts: list[str] = []  # every refused destination, in the order tried
_installed = False


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    if not is_loopback(host):
        attempts.append(f"{host}:{address[1] if isinstance(address, tuple) and len(address) > 1 else '?'}")
        raise OSError(f"test network guard: connection to {host} refused "
                      "(tests may reach 127.0.0.1 only)")


def install() -> None:
    """Patch ``socket.socket.connect``/``connect_ex`` once for this process."""
    global _installed
    if _installed:
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _check(self, address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address)
        return connect_ex(self, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    _installed = True
