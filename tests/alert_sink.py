"""A local HTTP sink on 127.0.0.1 that records what alerting POSTs to it (tests only)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AlertSink:
    """``requests``: ``(arrival time ns, path, JSON body)``; ``status``: the HTTP status to
    answer (a callable of the request count, for 429/500 scenarios)."""

    def __init__(self, status=lambda n: 200, body=lambda n: b"{}") -> None:
        self.requests: list[tuple[int, str, dict]] = []
        self.headers: list[dict] = []
        self.status, self.body = status, body
        self.hits = 0
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                sink.hits += 1
                code = sink.status(sink.hits)
                if code == 200:
                    sink.requests.append((time.time_ns(), self.path, json.loads(raw)))
                    sink.headers.append(dict(self.headers))
                out = sink.body(sink.hits)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, pred, timeout_s: float = 20.0) -> list:
        """The recorded requests once ``pred(requests)`` holds (event wait, generous bound)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if pred(self.requests):
                return self.requests
            time.sleep(0.02)
        raise AssertionError(f"sink: condition not met; got {[(p, b) for _, p, b in self.requests]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
