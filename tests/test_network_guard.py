"""The network guard itself: loopback connects, anything else is refused here and in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import loopback_only
import pytest


def test_loopback_names_and_addresses_are_allowed() -> None:
    assert all(loopback_only.is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "localhost"))
    assert not any(loopback_only.is_loopback(h) for h in
                   ("10.0.0.1", "192.168.1.1", "8.8.8.8", "fapi.asterdex.com", "2001:db8::1"))


def test_an_outside_connect_is_refused_before_it_leaves_and_recorded() -> None:
    before = len(loopback_only.attempts)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(OSError, match="network guard"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: would be refused anyway, never sent
    assert loopback_only.attempts[before:] == ["192.0.2.1:443"]
    del loopback_only.attempts[before:]  # this test's own attempt is the point, not a leak


def test_a_loopback_server_is_reached() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=10):
        pass


def test_a_python_subprocess_carries_the_guard() -> None:
    code = ("import socket; s = socket.socket()\n"
            "try:\n    s.connect(('192.0.2.1', 80))\nexcept OSError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), capture_output=True,
                         text=True, timeout=120)
    assert "network guard" in out.stdout, out.stderr
