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

Write errors (a full disk, a file size limit, EIO): a file only ever holds
complete members. A write that fails part-way is cut back to the end of the
last member written whole (and a file that could not be cut is cut before
anything else is appended), so every line before the failure, and every line
written after it, reads back. Members not written stay in memory, up to
``max_buffer_bytes`` of compressed data (default 64 MiB, minutes of a busy
symbol), and are written, oldest first, at the next attempt (every flush
interval): when space returns the recorder carries on by itself. Beyond that
bound the oldest members are dropped. ``lines_lost`` counts the lines dropped
(and those still unwritten at :meth:`stop`), ``write_errors`` the failed
attempts; one WARNING is logged when an episode starts, one when lines start to
be dropped, one when writing works again.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import threading
import time
import zlib
from collections import deque
from typing import Optional, Union

log = logging.getLogger(__name__)


def complete_gzip_length(path: str, chunk: int = 1 << 20) -> int:
    """Length of the prefix of a gzip file made of complete members (streamed:
    bounded memory whatever the file's size or compression ratio)."""
    good = 0
    off = 0             # file offset of data[0]
    data = b""
    more = False        # the last call filled its output: zlib may hold more
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as fh:
        while True:
            if not data and not more:
                data = fh.read(chunk)
                if not data:
                    break
            try:
                out = d.decompress(data, 1 << 16)
            except zlib.error:
                break
            if d.eof:
                used = len(data) - len(d.unused_data)
                off += used
                good = off
                data, more = d.unused_data, False
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                tail = d.unconsumed_tail
                off += len(data) - len(tail)
                data, more = tail, len(out) == 1 << 16
    return good


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - os.write raises rather than returning 0
            raise OSError("write returned 0")
        view = view[n:]


class Recorder:
    """Thread-safe recorder: call :meth:`write` (or pass :meth:`on_raw` to the
    connector's ``on_raw``) from any thread; a writer thread compresses and
    appends. ``flush_interval_s`` in seconds; ``compresslevel`` 1-9;
    ``max_buffer_bytes``: compressed bytes kept in memory while writes fail."""

    def __init__(self, out_dir: str, symbol: str, market: str = "spot", flush_interval_s: float = 1.0,
                 compresslevel: int = 6, fsync: bool = True, max_buffer_bytes: int = 64 << 20) -> None:
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        if max_buffer_bytes < 0:
            raise ValueError(f"max_buffer_bytes must be >= 0, got {max_buffer_bytes}")
        self.out_dir = out_dir
        self.symbol = symbol.upper()
        self.market = market
        self.flush_interval_s = flush_interval_s
        self.compresslevel = compresslevel
        self.fsync = fsync
        self.max_buffer_bytes = max_buffer_bytes
        self._q: "queue.SimpleQueue[Union[None, tuple[int, bytes], threading.Event]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self.lines_written = 0
        self.members_written = 0
        self.lines_lost = 0
        self.write_errors = 0
        self.files: list[str] = []
        self._good: dict[str, int] = {}                          # path -> length of its complete members
        self._backlog: dict[str, deque[tuple[bytes, int]]] = {}  # path -> (member, lines) not on disk yet
        self._backlog_bytes = 0
        self._backlog_lines = 0
        self._failing_since: Optional[float] = None              # monotonic s, while writes fail
        self._dropping = False
        self._lost_before = 0
        os.makedirs(out_dir, exist_ok=True)

    @property
    def errors(self) -> int:
        """Failed write attempts (the older name of ``write_errors``)."""
        return self.write_errors

    @property
    def lines_buffered(self) -> int:
        """Lines compressed but not on disk yet (writes failing)."""
        return self._backlog_lines

    def stats(self) -> dict:
        """Counters: lines written / lost / buffered, members written, write errors, files."""
        return {"lines_written": self.lines_written, "lines_lost": self.lines_lost,
                "lines_buffered": self._backlog_lines, "buffered_bytes": self._backlog_bytes,
                "members_written": self.members_written, "write_errors": self.write_errors,
                "files": list(self.files)}

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

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Write everything queued so far now (one attempt, as at a flush interval)
        and wait for it; False if the writer did not finish within ``timeout`` s
        or is not running. Whether the lines reached the disk: ``lines_buffered``."""
        if self._thread is None:
            return False
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout)

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
            asked: list[threading.Event] = []
            while item != ():
                if item is None:
                    stopping = True
                    break
                if isinstance(item, threading.Event):
                    asked.append(item)
                    break
                local_ns, frame = item
                frame = frame.replace(b"\n", b" ").replace(b"\r", b" ")
                pending.setdefault(self.path_for(local_ns), []).append(b"%d %s\n" % (local_ns, frame))
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    item = ()
            if stopping or asked or time.monotonic() >= deadline:
                self._flush(pending)
                pending.clear()
                deadline = time.monotonic() + self.flush_interval_s
            for ev in asked:
                ev.set()
        if self._backlog_lines:
            self.lines_lost += self._backlog_lines
            log.warning("recorder: stopping with %d lines (%d bytes compressed) never written: counted in lines_lost "
                        "(%d lost in all)", self._backlog_lines, self._backlog_bytes, self.lines_lost)
            self._backlog.clear()
            self._backlog_bytes = self._backlog_lines = 0

    def _flush(self, pending: dict[str, list[bytes]]) -> None:
        """One member per file for the lines gathered, then one write attempt for
        everything not on disk, then the memory bound."""
        for path, lines in pending.items():
            if not lines:
                continue
            comp = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            member = comp.compress(b"".join(lines)) + comp.flush()
            self._backlog.setdefault(path, deque()).append((member, len(lines)))
            self._backlog_bytes += len(member)
            self._backlog_lines += len(lines)
        for path in list(self._backlog):
            if self._backlog[path] and not self._write_path(path, self._backlog[path]):
                break   # the disk is failing: the other files wait for the next attempt
        for path in [p for p, q in self._backlog.items() if not q]:
            del self._backlog[path]
        self._bound()
        if self._failing_since is not None and not self._backlog_lines:
            log.warning("recorder: writing again after %.1f s of write errors; %d lines lost in that time "
                        "(lines_lost=%d, write_errors=%d)", time.monotonic() - self._failing_since,
                        self.lines_lost - self._lost_before, self.lines_lost, self.write_errors)
            self._failing_since = None
            self._dropping = False

    def _bound(self) -> None:
        """Drop the oldest members while more than max_buffer_bytes wait."""
        while self._backlog_bytes > self.max_buffer_bytes and self._backlog:
            path = next(iter(self._backlog))
            q = self._backlog[path]
            member, n = q.popleft()
            if not q:
                del self._backlog[path]
            self._backlog_bytes -= len(member)
            self._backlog_lines -= n
            self.lines_lost += n
            if not self._dropping:
                self._dropping = True
                log.warning("recorder: %d bytes of unwritten lines in memory (max_buffer_bytes): dropping the "
                            "oldest, counted in lines_lost", self.max_buffer_bytes)

    def _failed(self, path: str, exc: OSError) -> None:
        self.write_errors += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self._lost_before = self.lines_lost
            log.warning("recorder: cannot write %s: %s; keeping up to %d bytes of lines in memory and retrying "
                        "every %g s", path, exc.strerror or exc, self.max_buffer_bytes, self.flush_interval_s)

    def _good_length(self, path: str) -> int:
        """Length of the complete members of a file opened for the first time (or
        changed behind our back), cutting a crash's incomplete last member."""
        if not os.path.exists(path):
            return 0
        good = complete_gzip_length(path)
        size = os.path.getsize(path)
        if good != size:
            log.warning("%s: cutting a %d-byte incomplete gzip member left by a crash", path, size - good)
        return good

    def _write_path(self, path: str, q: "deque[tuple[bytes, int]]") -> bool:
        """Append the waiting members of one file; True when all are on disk. On an
        error the file is cut back to its last complete member (members written
        whole before the error stay and count as written)."""
        try:
            good = self._good.get(path)
            if good is None:
                good = self._good[path] = self._good_length(path)
                if path not in self.files:
                    self.files.append(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            self._failed(path, exc)
            return False
        end, done, err = good, 0, None
        try:
            size = os.fstat(fd).st_size
            if size < good:     # cut or replaced by someone else: start from what it holds
                good = end = self._good_length(path)
            if size != good:
                os.ftruncate(fd, good)   # what a failed write left (the cut did not work then)
            for member, _ in q:
                _write_all(fd, member)
                end += len(member)
                done += 1
        except OSError as exc:
            err = exc
        if err is not None:
            try:
                os.ftruncate(fd, end)    # only complete members stay
            except OSError:
                pass                     # cut before the next append (size != good above)
        if done and self.fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                # not known to be on disk: write them again (after cutting back)
                err = err or exc
                try:
                    os.ftruncate(fd, good)
                except OSError:
                    pass
                end, done = good, 0
        try:
            os.close(fd)
        except OSError:
            pass
        self._good[path] = end
        for _ in range(done):
            member, n = q.popleft()
            self._backlog_bytes -= len(member)
            self._backlog_lines -= n
            self.lines_written += n
            self.members_written += 1
        if err is not None:
            self._failed(path, err)
            return False
        return True
