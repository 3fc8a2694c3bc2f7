"""Free local ports, for workers' web pages and the servers a test starts for itself."""

from __future__ import annotations

import socket


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; closed again before it is returned)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
