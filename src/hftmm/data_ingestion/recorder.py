"""Recorder: what the connector receives, to gzip text files that survive a crash.

Format (the hftbacktest collector's): one message a line, ``<local receive ns>
<raw json>``, REST snapshots included as plain JSON lines. Files are
``<dir>/<symbol>_<market>_<YYYYMMDD>_<HH>.gz`` by the UTC hour of each line's
receive time, so rotation is exact: a line goes to exactly one file.

Durability: lines are written as one complete gzip member at least every
``flush_interval_s`` (default 1 s), flushed and fsynced, so after a ``kill -9``
everything but the last interval reads back. When the recorder opens an existing
file (a restart in the same hour) it first cuts off a trailing incomplete member
left by a crash, then appends: nothing is lost or duplicated by rotation or by a
restart.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import threading
import time
import zlib
from typing import Optional

log = logging.getLogger(__name__)


def complete_gzip_length(path: str) -> int:
    """Length of the prefix of a gzip file made of complete members."""
    good = 0
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            d.decompress(data[pos:])
        except zlib.error:
            break
        if not d.eof:
            break
        pos = len(data) - len(d.unused_data)
        good = pos
    return good


class Recorder:
    """Thread-safe recorder: call :meth:`write` (or pass :meth:`on_raw` to the
    connector's ``on_raw``) from any thread; a writer thread compresses and
    appends. ``flush_interval_s`` in seconds; ``compresslevel`` 1-9."""

    def __init__(self, out_dir: str, symbol: str, market: str = "spot", flush_interval_s: float = 1.0,
                 compresslevel: int = 6, fsync: bool = True) -> None:
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        self.out_dir = out_dir
        self.symbol = symbol.upper()
        self.market = market
        self.flush_interval_s = flush_interval_s
        self.compresslevel = compresslevel
        self.fsync = fsync
        self._q: "queue.SimpleQueue[Optional[tuple[int, bytes]]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self.lines_written = 0
        self.members_written = 0
        self.files: list[str] = []
        self.errors = 0
        os.makedirs(out_dir, exist_ok=True)

    def path_for(self, local_ns: int) -> str:
        t = _dt.datetime.fromtimestamp(local_ns / 1e9, tz=_dt.timezone.utc)
        return os.path.join(self.out_dir, f"{self.symbol}_{self.market}_{t:%Y%m%d_%H}.gz")

    def start(self) -> "Recorder":
        self._thread = threading.Thread(target=self._run, name="hftmm-recorder", daemon=True)
        self._thread.start()
        return self

    def write(self, local_ns: int, frame: bytes) -> None:
        """Queue one received frame (bytes of JSON) with its receive time in ns."""
        self._q.put((local_ns, frame))

    on_raw = write

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop."""
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- writer thread
    def _run(self) -> None:
        pending: dict[str, list[bytes]] = {}
        deadline = time.monotonic() + self.flush_interval_s
        stopping = False
        while not stopping:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                item = ()
            while item != ():
                if item is None:
                    stopping = True
                    break
                local_ns, frame = item
                frame = frame.replace(b"\n", b" ").replace(b"\r", b" ")
                pending.setdefault(self.path_for(local_ns), []).append(b"%d %s\n" % (local_ns, frame))
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    item = ()
            if stopping or time.monotonic() >= deadline:
                for path, lines in pending.items():
                    self._append_member(path, lines)
                pending.clear()
                deadline = time.monotonic() + self.flush_interval_s

    def _append_member(self, path: str, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            if path not in self.files:
                if os.path.exists(path):
                    good = complete_gzip_length(path)
                    if good != os.path.getsize(path):
                        log.warning("%s: cutting a %d-byte incomplete gzip member left by a crash", path,
                                    os.path.getsize(path) - good)
                        with open(path, "r+b") as fh:
                            fh.truncate(good)
                self.files.append(path)
            comp = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            member = comp.compress(b"".join(lines)) + comp.flush()
            with open(path, "ab") as fh:
                fh.write(member)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            self.lines_written += len(lines)
            self.members_written += 1
        except OSError as exc:
            self.errors += 1
            log.error("recorder: cannot write %s: %s", path, exc)
