"""Pre-trade risk checks and the kill switch (sans-I/O, deterministic given a clock).

The engine asks :meth:`RiskManager.check_order` before every order and feeds the
manager what happens: orders sent (:meth:`~RiskManager.on_order_sent`), equity
(:meth:`~RiskManager.on_equity`), round trips and market-data timestamps
(:meth:`~RiskManager.on_round_trip`, :meth:`~RiskManager.on_feed`), book sync
state (:meth:`~RiskManager.on_book_state`). Nothing here performs I/O; the only
outward call is ``on_kill(reason, flatten)``, made when the kill switch trips.

Units: positions and quantities in base-asset units (``Decimal`` or ``float``;
compared exactly as ``Decimal``, a float converted through its shortest repr, so
``0.001`` is ``Decimal("0.001")``); money (PnL) in quote currency; times in ns
(wall clock, the injected ``clock``); latencies in ms.

States:

* ``"killed"``: the kill switch tripped (operator, signal, risk breach). Sticky
  until :meth:`~RiskManager.reset_kill`. No order is allowed except
  ``reduce_only`` ones (flattening).
* ``"paused"``: a temporary condition holds (book not synced, feed stale,
  latency above threshold); :attr:`~RiskManager.reasons` says which. Quoting
  resumes by itself when it clears.
* ``"ok"``: quoting allowed.

The order-rate ceiling is per order, not a state: :meth:`~RiskManager.check_order`
refuses an order while the last second already holds ``max_orders_per_second``
sends, and counts the refusals.

The position limit holds in the worst case, every open or in-flight order filling:
a buy of ``q`` passes only if ``position + open_buy_qty + q <= max_position``, a
sell only if ``-(position - open_sell_qty - q) <= max_position``. Orders that
reduce exposure always satisfy this up to the reducing amount. For the guarantee
to hold, every order must go through ``check_order`` and be counted in
``open_buy_qty`` / ``open_sell_qty`` (``OrderTracker.open_buy_qty()``) from the
moment it is sent until it is final.
"""
from __future__ import annotations

import logging
import bisect
import math
import numbers
import time
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable, Optional

from hftmm.config import RiskConfig

__all__ = ["RiskManager", "RiskDecision", "RiskEvent", "RISK_STATES", "to_decimal"]

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_DAY = 86_400 * NS_PER_S

RISK_STATES = ("ok", "paused", "killed")

#: one entry of :attr:`RiskManager.events`: (ts_ns, kind, detail)
RiskEvent = tuple[int, str, str]

_ZERO = Decimal(0)


def to_decimal(value: Any, name: str = "value") -> Decimal:
    """``Decimal`` from a Decimal, int, str or float (via its shortest repr).

    Refuses bools, NaN and infinities with a ``TypeError`` / ``ValueError`` naming ``name``.
    """
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    elif isinstance(value, numbers.Integral):
        d = Decimal(int(value))
    elif isinstance(value, numbers.Real):
        d = Decimal(repr(float(value)))  # numpy floats included; repr is the shortest round trip
    elif isinstance(value, str):
        d = Decimal(value)
    else:
        raise TypeError(f"{name}: cannot convert {type(value).__name__} to Decimal")
    if not d.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return d


def _side(side: str) -> str:
    s = side.upper() if isinstance(side, str) else side
    if s not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")
    return s


@dataclass(frozen=True)
class RiskDecision:
    """The answer to :meth:`RiskManager.check_order`.

    ``qty``: base units that may be sent (``<=`` the asked quantity; 0 when refused).
    ``reason``: empty when the full quantity is allowed; else why it was clipped or refused
    (starts with ``killed``, ``paused``, ``rate limit`` or ``position limit``).
    """

    allowed: bool
    qty: Decimal
    reason: str = ""


class _Latency:
    """Recent samples of one latency source (ms), bounded by time and count."""

    def __init__(self, name: str, window_ns: int, max_samples: int = 64) -> None:
        self.name = name
        self.window_ns = window_ns
        self.max_samples = max_samples
        self.samples: deque[tuple[int, float]] = deque()
        self.ordered: list[float] = []        # the samples' values, sorted (p90 by index)
        self.last: Optional[float] = None

    def _drop_oldest(self) -> None:
        _, ms = self.samples.popleft()
        del self.ordered[bisect.bisect_left(self.ordered, ms)]

    def add(self, ts_ns: int, ms: float) -> None:
        if len(self.samples) >= self.max_samples:
            self._drop_oldest()
        self.samples.append((ts_ns, ms))
        bisect.insort(self.ordered, ms)
        self.last = ms

    def p90(self, now: int) -> Optional[float]:
        """Nearest-rank 90th percentile of the samples within the window (ms)."""
        while self.samples and self.samples[0][0] < now - self.window_ns:
            self._drop_oldest()
        n = len(self.ordered)
        if not n:
            return None
        return self.ordered[max(0, math.ceil(0.9 * n) - 1)]


class RiskManager:
    """Risk limits, pauses and the kill switch for one symbol.

    ``config``: the limits (:class:`hftmm.config.RiskConfig`; the defaults when None).
    ``clock``: wall clock, ns (``time.time_ns``); every ``now`` argument defaults to it.
    ``feed_stale_ms``: no market message for this long (ms) pauses quoting;
    default ``4 * latency_threshold_ms``.
    ``resume_after_s``: a latency pause ends after this many seconds of healthy
    measurements (s).
    ``on_kill``: ``on_kill(reason, flatten)``, called when the kill switch trips so the
    engine cancels all open orders, optionally flattens, and stops quoting.
    ``lot_size``: if given (base units), a clipped quantity is rounded down to a multiple.
    ``latency_window_s``: latency p90s are taken over the samples of the last this many
    seconds (s); a source without recent samples counts as healthy.
    """

    def __init__(
        self,
        config: Optional[RiskConfig] = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        feed_stale_ms: Optional[float] = None,
        resume_after_s: float = 5.0,
        on_kill: Optional[Callable[[str, bool], None]] = None,
        lot_size: Any = None,
        latency_window_s: float = 2.0,
    ) -> None:
        if config is None:
            config = RiskConfig()
        if not isinstance(config, RiskConfig):
            raise TypeError(f"config must be a RiskConfig, got {type(config).__name__}")
        self.config = config
        self.clock = clock
        self.on_kill = on_kill
        self.max_position = to_decimal(config.max_position, "max_position")
        self.lot_size = None if lot_size is None else to_decimal(lot_size, "lot_size")
        if self.lot_size is not None and self.lot_size <= 0:
            raise ValueError(f"lot_size must be > 0, got {lot_size!r}")
        stale = config.latency_threshold_ms * 4 if feed_stale_ms is None else float(feed_stale_ms)
        if not (stale > 0 and math.isfinite(stale)):
            raise ValueError(f"feed_stale_ms must be finite and > 0, got {feed_stale_ms!r}")
        if not (resume_after_s >= 0 and math.isfinite(resume_after_s)):
            raise ValueError(f"resume_after_s must be finite and >= 0, got {resume_after_s!r}")
        if not (latency_window_s > 0 and math.isfinite(latency_window_s)):
            raise ValueError(f"latency_window_s must be finite and > 0, got {latency_window_s!r}")
        self.feed_stale_ms = stale
        self.resume_after_s = float(resume_after_s)
        self._resume_ns = int(resume_after_s * NS_PER_S)

        self.events: deque[RiskEvent] = deque(maxlen=10_000)

        # kill switch
        self._killed = False
        self.kill_reason: Optional[str] = None
        self.kill_source: Optional[str] = None
        self.kill_ts_ns: Optional[int] = None
        self.kill_flatten = False

        # equity
        self.capital = float(config.capital)
        self._day: Optional[int] = None
        self._day_start_pnl = 0.0
        self._peak_pnl = 0.0
        self._last_pnl: Optional[float] = None

        # order rate
        self._sent: deque[int] = deque()
        self.orders_sent = 0
        self.rate_refusals = 0
        self.refusals: dict[str, int] = {"killed": 0, "paused": 0, "rate": 0, "position": 0}
        self._rate_limited = False

        # latency and feed
        window_ns = int(latency_window_s * NS_PER_S)
        self._rtt = _Latency("order rtt", window_ns)
        self._feed = _Latency("feed latency", window_ns)
        self._last_feed_ns: Optional[int] = None
        self._lat_reason: Optional[str] = None
        self._healthy_since: Optional[int] = None
        self._book_synced = False

        # pause conditions by key ("book", "feed", "latency") -> reason text
        self._conds: dict[str, str] = self._conditions(self.clock())

    # ------------------------------------------------------------------ helpers
    def _now(self, now: Optional[int]) -> int:
        return self.clock() if now is None else int(now)

    def _event(self, ts: int, kind: str, detail: str) -> None:
        self.events.append((ts, kind, detail))

    def take_events(self) -> list[RiskEvent]:
        """Remove and return the recorded ``(ts_ns, kind, detail)`` events, oldest first.

        Kinds: ``pause``, ``resume``, ``kill``, ``kill_reset``, ``day_reset``, ``rate_limit``.
        """
        out = list(self.events)
        self.events.clear()
        return out

    # ------------------------------------------------------------------ conditions
    def _latency_problem(self, now: int) -> Optional[str]:
        thr = self.config.latency_threshold_ms
        for src in (self._rtt, self._feed):
            p90 = src.p90(now)
            if p90 is not None and p90 > thr:
                return f"{src.name} p90 {p90:.0f} ms > {thr:g} ms"
        return None

    def _conditions(self, now: int) -> dict[str, str]:
        conds: dict[str, str] = {}
        if not self._book_synced:
            conds["book"] = "book not synced"
        if self._last_feed_ns is None:
            conds["feed"] = "no market data yet"
        else:
            age_ms = (now - self._last_feed_ns) / NS_PER_MS
            if age_ms > self.feed_stale_ms:
                conds["feed"] = f"feed stale ({age_ms:.0f} ms > {self.feed_stale_ms:g} ms)"
        problem = self._latency_problem(now)
        if problem is not None:
            self._lat_reason, self._healthy_since = problem, None
        elif self._lat_reason is not None:
            if self._healthy_since is None:
                self._healthy_since = now
            if now - self._healthy_since >= self._resume_ns:
                self._lat_reason = self._healthy_since = None
        if self._lat_reason is not None:
            conds["latency"] = self._lat_reason
        return conds

    def _evaluate(self, now: int) -> dict[str, str]:
        conds = self._conditions(now)
        for key, reason in conds.items():
            if key not in self._conds:
                self._event(now, "pause", reason)
                log.warning("risk: quoting paused: %s", reason)
        for key, reason in self._conds.items():
            if key not in conds:
                self._event(now, "resume", f"cleared: {reason}")
                log.info("risk: cleared: %s", reason)
        self._conds = conds
        return conds

    # ------------------------------------------------------------------ state
    def state_at(self, now: Optional[int] = None) -> str:
        """``"killed"``, ``"paused"`` or ``"ok"`` at ``now`` (ns)."""
        conds = self._evaluate(self._now(now))
        if self._killed:
            return "killed"
        return "paused" if conds else "ok"

    @property
    def state(self) -> str:
        """``"killed"``, ``"paused"`` or ``"ok"`` now."""
        return self.state_at()

    @property
    def can_quote(self) -> bool:
        """True when the state is ``"ok"``."""
        return self.state_at() == "ok"

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def reasons(self) -> list[str]:
        """Why quoting is paused now (empty when not paused)."""
        return list(self._evaluate(self.clock()).values())

    # ------------------------------------------------------------------ position
    def allowed_qty(self, side: str, qty: Any, position: Any, open_buy_qty: Any, open_sell_qty: Any) -> Decimal:
        """How much of an order of ``qty`` (base units) the position limit allows (0: none).

        ``position``: current signed inventory; ``open_buy_qty`` / ``open_sell_qty``: leaves of
        every live, pending or unknown order on each side (base units). A buy passes if
        ``position + open_buy_qty + q <= max_position``, a sell if
        ``-(position - open_sell_qty - q) <= max_position``: the limit holds even if every
        open order fills. Reducing orders always pass up to the reducing amount.
        """
        s = _side(side)
        q = to_decimal(qty, "qty")
        if q < 0:
            raise ValueError(f"qty must be >= 0, got {qty!r}")
        pos = to_decimal(position, "position")
        ob = to_decimal(open_buy_qty, "open_buy_qty")
        osell = to_decimal(open_sell_qty, "open_sell_qty")
        if ob < 0 or osell < 0:
            raise ValueError(f"open quantities must be >= 0, got buy {open_buy_qty!r} sell {open_sell_qty!r}")
        if s == "BUY":
            room = self.max_position - pos - ob
        else:
            room = self.max_position + pos - osell
        allowed = min(q, room)
        if allowed < q and self.lot_size is not None and allowed > 0:
            allowed = (allowed / self.lot_size).to_integral_value(rounding=ROUND_FLOOR) * self.lot_size
        return allowed if allowed > 0 else _ZERO

    def _reducing_qty(self, side: str, position: Decimal, ob: Decimal, osell: Decimal) -> Decimal:
        """Base units of ``side`` that bring exposure towards zero, net of open same-side orders."""
        if side == "BUY":
            return max(_ZERO, -position - ob)
        return max(_ZERO, position - osell)

    # ------------------------------------------------------------------ orders
    def orders_in_window(self, now: Optional[int] = None) -> int:
        """Orders sent in the last second (sliding window ending at ``now``, ns)."""
        t = self._now(now)
        while self._sent and self._sent[0] <= t - NS_PER_S:
            self._sent.popleft()
        return len(self._sent)

    def on_order_sent(self, now: Optional[int] = None) -> None:
        """An order request (new, cancel-replace) was sent at ``now`` (ns)."""
        t = self._now(now)
        self._sent.append(t)
        self.orders_sent += 1

    def check_order(
        self,
        side: str,
        price: Any,
        qty: Any,
        position: Any,
        open_buy_qty: Any,
        open_sell_qty: Any,
        now: Optional[int] = None,
        *,
        reduce_only: bool = False,
    ) -> RiskDecision:
        """May an order be sent now? Combines the state, the order rate and the position limit.

        ``price``: limit price (quote per base unit, > 0); quantities in base units as in
        :meth:`allowed_qty`; ``now`` in ns. ``reduce_only``: a flattening order; it passes
        while paused or killed, clipped to what reduces exposure (the rate limit still applies).
        Call :meth:`on_order_sent` when the order is actually sent.
        """
        t = self._now(now)
        s = _side(side)
        p = to_decimal(price, "price")
        if p <= 0:
            raise ValueError(f"price must be > 0, got {price!r}")
        q = to_decimal(qty, "qty")
        if q <= 0:
            raise ValueError(f"qty must be > 0, got {qty!r}")
        conds = self._evaluate(t)
        if not reduce_only:
            if self._killed:
                self.refusals["killed"] += 1
                return RiskDecision(False, _ZERO, f"killed: {self.kill_reason}")
            if conds:
                self.refusals["paused"] += 1
                return RiskDecision(False, _ZERO, "paused: " + "; ".join(conds.values()))
        in_window = self.orders_in_window(t)
        if in_window + 1 > self.config.max_orders_per_second:
            self.rate_refusals += 1
            self.refusals["rate"] += 1
            if not self._rate_limited:
                self._rate_limited = True
                self._event(t, "rate_limit", f"{in_window} orders in the last second "
                                             f"(max {self.config.max_orders_per_second:g})")
            return RiskDecision(False, _ZERO, f"rate limit: {in_window} orders in the last second")
        self._rate_limited = False
        allowed = self.allowed_qty(s, q, position, open_buy_qty, open_sell_qty)
        if reduce_only:
            reducing = self._reducing_qty(s, to_decimal(position, "position"),
                                          to_decimal(open_buy_qty, "open_buy_qty"),
                                          to_decimal(open_sell_qty, "open_sell_qty"))
            allowed = min(allowed, reducing)
        if allowed <= 0:
            self.refusals["position"] += 1
            what = "nothing to reduce" if reduce_only else f"max_position {self.max_position}"
            return RiskDecision(False, _ZERO, f"position limit: {what}")
        if allowed < q:
            return RiskDecision(True, allowed, f"position limit: clipped {q} to {allowed}")
        return RiskDecision(True, q, "")

    # ------------------------------------------------------------------ PnL
    def on_equity(self, pnl: float, now: Optional[int] = None) -> None:
        """Mark-to-market PnL (quote currency; equity minus start equity, fees included).

        The daily loss is measured from the PnL in effect at the last 00:00 UTC (the first
        observation on the first day); the drawdown from the highest PnL seen. Reaching
        ``max_daily_loss`` or ``max_drawdown`` trips the kill switch (source ``"risk"``).
        """
        t = self._now(now)
        pnl = float(pnl)
        if not math.isfinite(pnl):
            log.warning("risk: ignoring non-finite pnl %r", pnl)
            return
        day = t // NS_PER_DAY
        if self._day is None or self._last_pnl is None:
            self._day, self._day_start_pnl, self._peak_pnl = day, pnl, pnl
        elif day > self._day:
            self._day, self._day_start_pnl = day, self._last_pnl
            self._event(t, "day_reset", f"daily loss reset; day starts at pnl {self._last_pnl:.2f}")
        self._last_pnl = pnl
        self._peak_pnl = max(self._peak_pnl, pnl)
        if self._killed:
            return
        loss, dd, frac = self.daily_loss, self.drawdown, self.drawdown_fraction
        cfg = self.config
        if loss >= cfg.max_daily_loss:
            self.kill(f"daily loss {loss:.2f} >= max_daily_loss {cfg.max_daily_loss:g}",
                      source="risk", now=t)
        elif frac >= cfg.max_drawdown:
            self.kill(f"drawdown {100 * frac:.2f} % of peak equity {self.capital + self._peak_pnl:,.2f} >= "
                      f"max_drawdown {100 * cfg.max_drawdown:g} %", source="risk", now=t)
        elif cfg.max_drawdown_abs is not None and dd >= cfg.max_drawdown_abs:
            self.kill(f"drawdown {dd:.2f} >= max_drawdown_abs {cfg.max_drawdown_abs:g}",
                      source="risk", now=t)

    @property
    def daily_loss(self) -> float:
        """Today's loss so far (quote currency, >= 0 means a loss)."""
        return 0.0 if self._last_pnl is None else self._day_start_pnl - self._last_pnl

    @property
    def drawdown(self) -> float:
        """Peak PnL minus current PnL (quote currency, >= 0)."""
        return 0.0 if self._last_pnl is None else self._peak_pnl - self._last_pnl

    @property
    def drawdown_fraction(self) -> float:
        """The drawdown as a fraction of the peak equity (``capital`` + peak PnL); 1.0 when
        the peak equity is not positive (nothing left to lose)."""
        if self._last_pnl is None:
            return 0.0
        peak = self.capital + self._peak_pnl
        return self.drawdown / peak if peak > 0 else 1.0

    def set_capital(self, capital: float) -> None:
        """The session's starting equity, quote currency (the engine marks the account)."""
        c = float(capital)
        if not (c > 0 and math.isfinite(c)):
            raise ValueError(f"capital must be finite and > 0, got {capital!r}")
        self.capital = c

    # ------------------------------------------------------------------ latency, feed, book
    def on_round_trip(self, ms: float, now: Optional[int] = None) -> None:
        """An order request's round trip (request sent -> answer), ms."""
        t = self._now(now)
        ms = float(ms)
        if not math.isfinite(ms) or ms < 0:
            log.warning("risk: ignoring round trip %r ms", ms)
            return
        self._rtt.add(t, ms)
        self._evaluate(t)

    def on_feed(self, exch_ts_ns: int, local_ts_ns: Optional[int] = None) -> None:
        """A market-data message: exchange event time and local receive time (ns).

        Its latency (local - exchange, ms; clock skew may make it negative, counted as 0)
        feeds the latency pause; its receive time resets the stale-feed timer.
        """
        t = self._now(local_ts_ns)
        ms = (t - int(exch_ts_ns)) / NS_PER_MS
        self._feed.add(t, max(0.0, ms))
        if self._last_feed_ns is None or t > self._last_feed_ns:
            self._last_feed_ns = t
        self._evaluate(t)

    def on_book_state(self, synced: bool, now: Optional[int] = None) -> None:
        """The local book is (``True``) or is not (``False``) in sync with the exchange."""
        self._book_synced = bool(synced)
        self._evaluate(self._now(now))

    # ------------------------------------------------------------------ kill switch
    def kill(self, reason: str, flatten: bool = False, source: str = "manual", now: Optional[int] = None) -> bool:
        """Trip the kill switch: state ``"killed"`` until :meth:`reset_kill`.

        Calls ``on_kill(reason, flatten)`` once. A repeated kill changes nothing, except
        that the first one asking to ``flatten`` (when the original did not) calls
        ``on_kill(reason, True)`` again. ``source``: ``"manual"``, ``"signal"``, ``"cli"``,
        ``"dashboard"``, ``"risk"``... Returns True if anything was done.
        """
        t = self._now(now)
        reason = str(reason) or "no reason given"
        if self._killed:
            if flatten and not self.kill_flatten:
                self.kill_flatten = True
                self._event(t, "kill", f"[{source}] flatten requested: {reason}")
                log.warning("risk: flatten requested after kill (%s): %s", source, reason)
                if self.on_kill is not None:
                    self.on_kill(reason, True)
                return True
            return False
        self._killed = True
        self.kill_reason, self.kill_source, self.kill_ts_ns, self.kill_flatten = reason, source, t, bool(flatten)
        self._event(t, "kill", f"[{source}] {reason}" + (" (flatten)" if flatten else ""))
        log.error("risk: KILL (%s)%s: %s", source, " with flatten" if flatten else "", reason)
        if self.on_kill is not None:
            self.on_kill(reason, bool(flatten))
        return True

    def reset_kill(self, now: Optional[int] = None) -> bool:
        """Clear the kill switch (operator action). The drawdown peak and the day's
        starting PnL are rebased to the latest PnL, so the limits apply afresh.
        Returns False if not killed."""
        t = self._now(now)
        if not self._killed:
            return False
        self._event(t, "kill_reset", f"kill cleared (was: {self.kill_reason})")
        log.warning("risk: kill switch reset (was: %s)", self.kill_reason)
        self._killed = False
        self.kill_reason = self.kill_source = None
        self.kill_ts_ns = None
        self.kill_flatten = False
        if self._last_pnl is not None:
            self._peak_pnl = self._day_start_pnl = self._last_pnl
        return True

    # ------------------------------------------------------------------ publishing
    def status(self, now: Optional[int] = None) -> dict[str, Any]:
        """Everything worth publishing, as plain values (ms, quote currency, ns)."""
        t = self._now(now)
        conds = self._evaluate(t)
        state = "killed" if self._killed else ("paused" if conds else "ok")
        age = None if self._last_feed_ns is None else (t - self._last_feed_ns) / NS_PER_MS
        return {
            "risk_state": state,
            "can_quote": state == "ok",
            "risk_reasons": list(conds.values()),
            "kill_reason": self.kill_reason,
            "kill_source": self.kill_source,
            "kill_ts_ns": self.kill_ts_ns,
            "kill_flatten": self.kill_flatten,
            "order_rtt_ms": self._rtt.last,
            "order_rtt_p90_ms": self._rtt.p90(t),
            "feed_latency_ms": self._feed.last,
            "feed_latency_p90_ms": self._feed.p90(t),
            "feed_age_ms": age,
            "book_synced": self._book_synced,
            "pnl": self._last_pnl,
            "peak_pnl": None if self._last_pnl is None else self._peak_pnl,
            "daily_loss": self.daily_loss,
            "drawdown": self.drawdown,
            "orders_last_second": self.orders_in_window(t),
            "orders_sent": self.orders_sent,
            "rate_refusals": self.rate_refusals,
            "refusals": dict(self.refusals),
        }

    #: keys of :meth:`status` that are columns of the state DB's ``status`` table
    PUBLISH_KEYS = ("risk_state", "kill_reason", "order_rtt_ms", "feed_age_ms", "feed_latency_ms")

    def publish_fields(self, now: Optional[int] = None) -> dict[str, Any]:
        """The subset of :meth:`status` named like ``hftmm.live.schema.STATUS_COLUMNS``."""
        st = self.status(now)
        return {k: st[k] for k in self.PUBLISH_KEYS}
