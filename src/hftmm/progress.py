"""A dependency-free progress bar with rate and ETA (to stderr by default)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def _fmt_time(s: float) -> str:
    if s != s or s == float("inf"):
        return "--:--"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _fmt_num(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


class Progress:
    """``Progress(total, desc, unit)``; ``update(n)`` adds progress, ``close()`` ends
    the line. Redraws at most ``min_interval`` seconds apart; silent when
    ``enabled`` is False (or the stream is not a terminal and ``force`` is not set)."""

    def __init__(self, total: float, desc: str = "", unit: str = "it", stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = True, min_interval: float = 0.2, width: int = 28,
                 force: bool = False) -> None:
        self.total = float(total)
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = bool(enabled) and (force or tty) if enabled is not None else tty
        self.min_interval = min_interval
        self.width = width
        self.done = 0.0
        self.count = 0.0       # a second quantity whose rate is shown (e.g. events)
        self.count_unit = ""
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, n: float = 1.0, count: float = 0.0, count_unit: str = "") -> None:
        self.done += n
        self.count += count
        if count_unit:
            self.count_unit = count_unit
        now = time.monotonic()
        if self.enabled and now - self._last >= self.min_interval:
            self._last = now
            self._draw(now)

    def moveto(self, done: float, count: float = 0.0, count_unit: str = "") -> None:
        """Set absolute progress (``done`` of ``total``) and the counted items."""
        self.done = done
        self.update(0.0, count - self.count, count_unit)

    def line(self, now: Optional[float] = None) -> str:
        now = now or time.monotonic()
        el = max(now - self.t0, 1e-9)
        frac = min(self.done / self.total, 1.0) if self.total > 0 else 0.0
        filled = int(frac * self.width)
        bar = "█" * filled + "░" * (self.width - filled)
        eta = (el / frac - el) if frac > 0 else float("inf")
        rate = self.count / el if self.count else self.done / el
        unit = self.count_unit if self.count else self.unit
        return (f"{self.desc} {bar} {frac * 100:5.1f}% | {_fmt_num(rate)} {unit}/s | "
                f"elapsed {_fmt_time(el)} | ETA {_fmt_time(eta)}")

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
