"""Test clients for the simulator's spot order entry: signed REST over urllib and
the WS API over websocket-client, both built on ``hftmm.execution.signing``."""
from __future__ import annotations

import itertools
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Optional

from hftmm.execution.signing import Signer, signed_query, signed_ws_params

from sim_client import Reader


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rest(sim, method: str, path: str, params: Optional[dict] = None, signer: Optional[Signer] = None,
         ts: Optional[int] = None, recv_window: Optional[int] = 5000, in_body: bool = False,
         api_key: Optional[str] = None, raw_query: Optional[str] = None,
         timeout: float = 5.0) -> tuple[int, dict, Any]:
    """A signed request (``signer`` given) or a plain one; ``(status, headers, json)``."""
    params = dict(params or {})
    if raw_query is not None:
        query = raw_query
    elif signer is not None:
        query = signed_query(params, signer, now_ms() if ts is None else ts, recv_window)
    else:
        query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = {}
    key = api_key if api_key is not None else (signer.api_key if signer is not None else None)
    if key:
        headers["X-MBX-APIKEY"] = key
    data = None
    url = f"{sim.rest_url}{path}"
    if in_body:
        data = query.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif query:
        url += "?" + query
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


class WsApi:
    """One ``/ws-api/v3`` connection: answers by id, user-data events in a queue."""

    def __init__(self, sim, query: str = "", timeout: float = 5.0) -> None:
        url = f"{sim.ws_url}/ws-api/v3" + (f"?{query}" if query else "")
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.answers: dict[Any, dict] = {}
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.cv = threading.Condition()
        self.reader = Reader(url, self, timeout=timeout)   # calls self.put from its thread
        self.ws = self.reader.ws

    @property
    def closed(self) -> Optional[str]:
        return self.reader.closed

    def put(self, item: tuple) -> None:
        """Reader callback: (tag, time, frame or None at the end)."""
        data = item[2]
        with self.cv:
            if data is not None:
                msg = json.loads(data)
                if "subscriptionId" in msg and "event" in msg:
                    self.events.put(msg)
                    return
                self.answers[msg.get("id")] = msg
            self.cv.notify_all()

    def send(self, method: str, params: Optional[dict] = None, rid: Any = None) -> Any:
        rid = next(self.ids) if rid is None else rid
        msg: dict = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.ws.send(json.dumps(msg))
        return rid

    def wait(self, rid: Any, timeout: Optional[float] = None) -> Optional[dict]:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        with self.cv:
            while rid not in self.answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cv.wait(left)
            return self.answers.pop(rid)

    def call(self, method: str, params: Optional[dict] = None, signer: Optional[Signer] = None,
             ts: Optional[int] = None, recv_window: Optional[int] = None, timeout: Optional[float] = None) -> dict:
        if signer is not None:
            params = signed_ws_params(params or {}, signer, now_ms() if ts is None else ts, recv_window)
        ans = self.wait(self.send(method, params), timeout)
        assert ans is not None, f"no answer to {method} ({self.closed})"
        return ans

    def next_event(self, timeout: float = 5.0) -> dict:
        return self.events.get(timeout=timeout)

    def drain_events(self, settle: float = 0.2) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self.events.get(timeout=settle))
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass
