"""The engine's one-line terminal status.

:func:`format_status` turns a status dict (the keys of
:data:`hftmm.live.schema.STATUS_COLUMNS`, plus optional ``symbol`` and
``risk_reasons``) into one compact line::

    BTCUSDT mid 50000.05 spr 0.10 | bid 49999.90×0.001 ask 50000.20×0.001 | pos +0.003 | pnl +1.23 (fees 0.02) | risk ok | rtt 12ms feed 3ms | fills 4

Missing, None or NaN values show as ``-``; it never raises on odd values.
:class:`StatusLine` writes it: on a terminal it rewrites one line in place, elsewhere
(a log file, a pipe) it writes a full line now and then.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from typing import Any, Callable, Mapping, Optional, TextIO

__all__ = ["format_status", "StatusLine"]

MISSING = "-"
_CLEAR_EOL = "\x1b[K"


def _float(value: Any) -> Optional[float]:
    """A finite float, or None for None / NaN / inf / anything unconvertible."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _price_decimals(ref: Optional[float]) -> int:
    """About six significant digits: 2 decimals for 50000, 5 for 1.23, 8 at most."""
    if ref is None or ref == 0:
        return 2
    return max(2, min(8, 5 - math.floor(math.log10(abs(ref)))))


def _price(value: Any, decimals: int) -> str:
    f = _float(value)
    return MISSING if f is None else f"{f:.{decimals}f}"


def _qty(value: Any, signed: bool = False) -> str:
    """Base units with up to 8 decimals, trailing zeros dropped."""
    f = _float(value)
    if f is None:
        return MISSING
    text = f"{abs(f):.8f}".rstrip("0").rstrip(".") or "0"
    if text == "0":
        return "0"
    sign = "-" if f < 0 else ("+" if signed else "")
    return sign + text


def _money(value: Any, signed: bool = True) -> str:
    f = _float(value)
    if f is None:
        return MISSING
    return f"{f:+.2f}" if signed else f"{f:.2f}"


def _ms(value: Any) -> str:
    f = _float(value)
    return MISSING if f is None else f"{f:.0f}ms"


def _int(value: Any) -> str:
    f = _float(value)
    return MISSING if f is None else str(int(f))


def _text(value: Any, limit: int = 40) -> str:
    if value is None:
        return ""
    s = " ".join(str(value).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def format_status(status: Optional[Mapping[str, Any]], *, price_decimals: Optional[int] = None) -> str:
    """One compact line from a status dict (prices in price units, quantities in base units,
    PnL and fees in quote currency, latencies in ms). ``price_decimals``: default from the mid."""
    s: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
    g = s.get
    mid = _float(g("mid"))
    if mid is None:
        bb, ba = _float(g("best_bid")), _float(g("best_ask"))
        mid = (bb + ba) / 2 if bb is not None and ba is not None else None
    dec = price_decimals if isinstance(price_decimals, int) and price_decimals >= 0 else _price_decimals(mid)
    symbol = _text(g("symbol"), 16) or MISSING

    risk = _text(g("risk_state"), 12) or MISSING
    if risk == "killed":
        why = _text(g("kill_reason"))
        risk = "KILLED" + (f": {why}" if why else "")
    elif risk == "paused":
        reasons = g("risk_reasons")
        if isinstance(reasons, (list, tuple)) and reasons:
            risk += f" ({_text('; '.join(map(str, reasons)))})"

    feed = f"feed {_ms(g('feed_latency_ms'))}"
    age = _float(g("feed_age_ms"))
    if age is not None and age >= 1000:
        feed += f" (age {age / 1000:.1f}s)"

    parts = [
        f"{symbol} mid {_price(mid, dec)} spr {_price(g('spread'), dec)}",
        f"bid {_price(g('bid_quote'), dec)}×{_qty(g('bid_qty'))} ask {_price(g('ask_quote'), dec)}×{_qty(g('ask_qty'))}",
        f"pos {_qty(g('position'), signed=True):>8}",
        f"pnl {_money(g('pnl')):>7} (fees {_money(g('fees'), signed=False)})",
        f"risk {risk}",
        f"rtt {_ms(g('order_rtt_ms')):>5} {feed}",
        f"fills {_int(g('fills'))}",
    ]
    if g("synced") is not None and not g("synced"):
        parts.insert(1, "UNSYNCED")
    return " | ".join(parts)


class StatusLine:
    """Writes :func:`format_status` lines to ``stream`` (default: ``sys.stderr``).

    On a terminal (``tty``; default ``stream.isatty()``) one line is rewritten in place
    (``\\r`` + line + clear-to-end) at most every ``interval_s`` seconds, cut to the terminal
    width; otherwise a full line is written every ``interval_s * 10`` seconds.
    ``clock``: monotonic seconds.
    """

    def __init__(self, stream: Optional[TextIO] = None, interval_s: float = 1.0, tty: Optional[bool] = None,
                 *, clock: Callable[[], float] = time.monotonic,
                 formatter: Callable[[Mapping[str, Any]], str] = format_status,
                 width: Optional[int] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.interval_s = float(interval_s)
        self.period_s = self.interval_s if tty else self.interval_s * 10
        self.clock = clock
        self.formatter = formatter
        self.width = width
        self._last: Optional[float] = None
        self._drawn = False  # a tty line is on screen without its newline

    def _columns(self) -> int:
        if self.width is not None:
            return self.width
        return max(20, shutil.get_terminal_size(fallback=(160, 24)).columns - 1)

    def update(self, status: Mapping[str, Any], now: Optional[float] = None) -> bool:
        """Write the status if due at ``now`` (s, ``clock`` time). Returns True if written."""
        t = self.clock() if now is None else now
        if self._last is not None and t - self._last < self.period_s:
            return False
        self._last = t
        self.write(self.formatter(status))
        return True

    def write(self, line: str) -> None:
        """Write ``line`` now (in place on a terminal)."""
        if self.tty:
            self.stream.write("\r" + line[: self._columns()] + _CLEAR_EOL)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line (before printing something else on a terminal)."""
        if self.tty and self._drawn:
            self.stream.write("\r" + _CLEAR_EOL)
            self.stream.flush()
            self._drawn = False

    def close(self) -> None:
        """End the in-place line with a newline so the shell prompt starts clean."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
