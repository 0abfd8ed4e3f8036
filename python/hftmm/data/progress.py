"""A small dependency-free progress bar on stderr (rate and ETA)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """``update(done)`` with ``done`` out of ``total`` (e.g. input bytes);
    ``items`` (e.g. lines) sets the rate shown. Redraws at most every 0.2 s;
    disabled when ``enabled`` is False (default: stderr is a terminal)."""

    def __init__(self, total: int, label: str = "", unit: str = "lines", enabled: Optional[bool] = None,
                 stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, items: int = 0, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        el = max(now - self.t0, 1e-9)
        frac = min(done / self.total, 1.0)
        eta = el * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(frac * 24)
        self.stream.write(f"\r{self.label} [{bar:<24}] {frac * 100:5.1f}% {items / el:,.0f} {self.unit}/s "
                          f"ETA {int(eta) // 60:d}:{int(eta) % 60:02d} ")
        self.stream.flush()

    def close(self, done: int, items: int = 0) -> None:
        if self.enabled:
            self.update(done, items, force=True)
            self.stream.write("\n")
            self.stream.flush()
