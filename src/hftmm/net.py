"""Small network helpers shared by the market-data connector and the order gateways."""
from __future__ import annotations

import random
import socket
from typing import Optional

import websocket

__all__ = ["close_websocket", "jittered_backoff"]


def close_websocket(ws: Optional[websocket.WebSocket], timeout_s: float = 0.2) -> None:
    """Close a websocket-client connection from any thread, quietly: shut the socket
    down first so a thread blocked in ``recv`` wakes up at once."""
    if ws is None:
        return
    try:
        if ws.sock is not None:
            ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        ws.close(timeout=timeout_s)
    except Exception:  # noqa: BLE001 -- closing a broken socket
        pass


def jittered_backoff(attempt: int, initial_s: float, max_s: float) -> float:
    """Reconnect delay [s]: ``initial_s * 2**attempt`` capped at ``max_s``, times a
    random factor in [0.5, 1) so that many clients do not retry in step."""
    base = min(max_s, initial_s * (2 ** min(attempt, 20)))
    return base * (0.5 + 0.5 * random.random())
