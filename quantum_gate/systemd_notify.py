"""systemd's notify protocol (READY, STATUS, WATCHDOG, STOPPING; docs/systemd.md)."""

from __future__ import annotations

import os
import socket


def sd_notify(message: str) -> bool:
    """A datagram to $NOTIFY_SOCKET; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True
