"""The live session's risk supervisor: pauses and the kill switch, around the core's limits.

The pre-trade limits -- the position limit with every open order filled, the
order rate, the book-invalid guard, the daily loss and drawdown -- live in the
compiled :class:`hftcore.strategy.Trader`, the same in backtests, paper and live
trading. What only a live session has is here: quoting pauses while a
condition holds (the book not synced, the feed stale, order round trips or feed
latency above ``latency_threshold_ms``), and the kill switch from outside
(operator, signal, dashboard, ``hftmm kill``). Bound to a trader (``trader=``),
a pause pauses it (its orders are cancelled, nothing new is sent until the
condition clears) and a kill kills it (sticky; with ``flatten`` a market order
closes the position); a kill the trader trips itself (a loss limit) is reported
here by :meth:`RiskManager.sync_trader`.

Sans-I/O and deterministic given the injected ``clock`` (ns). Latencies in ms.

States: ``"killed"`` (sticky until :meth:`~RiskManager.reset_kill`), ``"paused"``
(:attr:`~RiskManager.reasons` says why; resumes by itself), ``"ok"``.
"""
from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from typing import Any, Callable, Optional

from hftmm.config import RiskConfig

__all__ = ["RiskManager", "RiskEvent", "RISK_STATES"]

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

RISK_STATES = ("ok", "paused", "killed")

#: one entry of :attr:`RiskManager.events`: (ts_ns, kind, detail)
RiskEvent = tuple[int, str, str]


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
    """Pauses and the kill switch of one live session (see the module doc).

    ``config``: :class:`hftmm.config.RiskConfig` (the defaults when None);
    ``clock``: ns (``time.time_ns``); ``feed_stale_ms``: no market message for this
    long pauses (default ``4 * latency_threshold_ms``); ``resume_after_s``: a
    latency pause ends after this many seconds of healthy measurements;
    ``on_kill(reason, flatten)``: called once when the kill switch trips;
    ``latency_window_s``: latency p90s over this window; ``trader``: the core
    trader it pauses and kills (optional); ``watch_book``: pause while
    :meth:`on_book_state` says the book is not synced (False where the driver
    loop already keeps the trader off an invalid book, as paper trading does).
    """

    def __init__(self, config: Optional[RiskConfig] = None, *, clock: Callable[[], int] = time.time_ns,
                 feed_stale_ms: Optional[float] = None, resume_after_s: float = 5.0,
                 on_kill: Optional[Callable[[str, bool], None]] = None, latency_window_s: float = 2.0,
                 trader: Any = None, watch_book: bool = True) -> None:
        if config is None:
            config = RiskConfig()
        if not isinstance(config, RiskConfig):
            raise TypeError(f"config must be a RiskConfig, got {type(config).__name__}")
        self.config = config
        self.clock = clock
        self.on_kill = on_kill
        self.trader = trader
        stale = config.latency_threshold_ms * 4 if feed_stale_ms is None else float(feed_stale_ms)
        if not (stale > 0 and math.isfinite(stale)):
            raise ValueError(f"feed_stale_ms must be finite and > 0, got {feed_stale_ms!r}")
        if not (resume_after_s >= 0 and math.isfinite(resume_after_s)):
            raise ValueError(f"resume_after_s must be finite and >= 0, got {resume_after_s!r}")
        if not (latency_window_s > 0 and math.isfinite(latency_window_s)):
            raise ValueError(f"latency_window_s must be finite and > 0, got {latency_window_s!r}")
        self.feed_stale_ms = stale
        self._resume_ns = int(resume_after_s * NS_PER_S)
        self.events: deque[RiskEvent] = deque(maxlen=10_000)
        self._killed = False
        self.kill_reason: Optional[str] = None
        self.kill_source: Optional[str] = None
        self.kill_ts_ns: Optional[int] = None
        self.kill_flatten = False
        window_ns = int(latency_window_s * NS_PER_S)
        self._rtt = _Latency("order rtt", window_ns)
        self._feed = _Latency("feed latency", window_ns)
        self._last_feed_ns: Optional[int] = None
        self._lat_reason: Optional[str] = None
        self._healthy_since: Optional[int] = None
        self._book_synced = False
        self.watch_book = bool(watch_book)
        self._extra: dict[str, str] = {}          # pauses set from outside (user stream down, ...)
        self.on_rtt: Optional[Callable[[float], None]] = None   # each round trip, ms (metrics)
        self._conds: dict[str, str] = {}
        self._paused_trader = False
        self._evaluate(self.clock())

    # ------------------------------------------------------------------ helpers
    def _now(self, now: Optional[int]) -> int:
        return self.clock() if now is None else int(now)

    def _event(self, ts: int, kind: str, detail: str) -> None:
        self.events.append((ts, kind, detail))

    def take_events(self) -> list[RiskEvent]:
        """Remove and return the recorded ``(ts_ns, kind, detail)`` events, oldest first
        (kinds: ``pause``, ``resume``, ``kill``, ``kill_reset``)."""
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
        conds: dict[str, str] = dict(self._extra)
        if self.watch_book and not self._book_synced:
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
        paused = bool(conds)
        if self.trader is not None and paused != self._paused_trader:
            self._paused_trader = paused
            self.trader.pause(paused, now)
        return conds

    def set_condition(self, key: str, reason: Optional[str], now: Optional[int] = None) -> None:
        """A pause from outside (``reason``; None clears it), e.g. the user-data
        stream down or the position not read yet."""
        if reason is None:
            self._extra.pop(key, None)
        else:
            self._extra[key] = str(reason)
        self._evaluate(self._now(now))

    # ------------------------------------------------------------------ state
    def state_at(self, now: Optional[int] = None) -> str:
        """``"killed"``, ``"paused"`` or ``"ok"`` at ``now`` (ns)."""
        conds = self._evaluate(self._now(now))
        if self._killed:
            return "killed"
        return "paused" if conds else "ok"

    @property
    def state(self) -> str:
        return self.state_at()

    @property
    def can_quote(self) -> bool:
        return self.state_at() == "ok"

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def reasons(self) -> list[str]:
        """Why quoting is paused now (empty when not paused)."""
        return list(self._evaluate(self.clock()).values())

    # ------------------------------------------------------------------ measurements
    def on_round_trip(self, ms: float, now: Optional[int] = None) -> None:
        """An order request's round trip (request sent -> answer), ms."""
        t = self._now(now)
        ms = float(ms)
        if not math.isfinite(ms) or ms < 0:
            log.warning("risk: ignoring round trip %r ms", ms)
            return
        self._rtt.add(t, ms)
        if self.on_rtt is not None:
            self.on_rtt(ms)
        self._evaluate(t)

    def on_feed(self, exch_ts_ns: int, local_ts_ns: Optional[int] = None) -> None:
        """A market-data message: exchange event time and local receive time (ns). Its
        latency (ms; a negative one -- clock skew -- counts as 0) feeds the latency
        pause; its receive time resets the stale-feed timer."""
        t = self._now(local_ts_ns)
        ms = (t - int(exch_ts_ns)) / NS_PER_MS
        self._feed.add(t, max(0.0, ms))
        if self._last_feed_ns is None or t > self._last_feed_ns:
            self._last_feed_ns = t
        self._evaluate(t)

    def on_message(self, local_ts_ns: int) -> None:
        """A market message arrived at ``local_ts_ns`` (our clock): the feed is
        alive (no latency sample: for messages without an exchange time)."""
        t = int(local_ts_ns)
        if self._last_feed_ns is None or t > self._last_feed_ns:
            self._last_feed_ns = t
        self._evaluate(t)

    def on_book_state(self, synced: bool, now: Optional[int] = None) -> None:
        """The local book is (True) or is not (False) in sync with the exchange."""
        self._book_synced = bool(synced)
        self._evaluate(self._now(now))

    # ------------------------------------------------------------------ kill switch
    def kill(self, reason: str, flatten: bool = False, source: str = "manual", now: Optional[int] = None) -> bool:
        """Trip the kill switch: ``"killed"`` until :meth:`reset_kill`; the trader (if
        bound) cancels everything and, with ``flatten``, closes the position. Calls
        ``on_kill(reason, flatten)`` once (again when a later kill first asks to
        flatten). Returns True if anything was done."""
        t = self._now(now)
        reason = str(reason) or "no reason given"
        if self._killed:
            if flatten and not self.kill_flatten:
                self.kill_flatten = True
                self._event(t, "kill", f"[{source}] flatten requested: {reason}")
                log.warning("risk: flatten requested after kill (%s): %s", source, reason)
                if self.trader is not None:
                    self.trader.flatten(t)
                if self.on_kill is not None:
                    self.on_kill(reason, True)
                return True
            return False
        self._killed = True
        self.kill_reason, self.kill_source, self.kill_ts_ns, self.kill_flatten = reason, source, t, bool(flatten)
        self._event(t, "kill", f"[{source}] {reason}" + (" (flatten)" if flatten else ""))
        log.error("risk: KILL (%s)%s: %s", source, " with flatten" if flatten else "", reason)
        if self.trader is not None and not self.trader.killed:
            self.trader.kill(t, flatten=bool(flatten))
        if self.on_kill is not None:
            self.on_kill(reason, bool(flatten))
        return True

    def sync_trader(self, now: Optional[int] = None) -> bool:
        """Report a kill the trader tripped itself (a loss limit) as this session's.
        True when it did just now."""
        tr = self.trader
        if tr is None or not tr.killed or self._killed:
            return False
        t = self._now(now)
        lim = tr.limits
        what = tr.kill_reason_name
        detail = {"max_daily_loss": f"daily loss {tr.daily_loss:.2f} >= max_daily_loss {lim['max_daily_loss']:g}",
                  "max_drawdown": f"drawdown {tr.drawdown:.2f} >= max_drawdown {100 * lim['max_drawdown']:g} % "
                                  f"of the peak equity",
                  "max_drawdown_abs": f"drawdown {tr.drawdown:.2f} >= max_drawdown_abs "
                                      f"{lim['max_drawdown_abs']:g}"}.get(what, str(what))
        self._killed = True
        self.kill_reason, self.kill_source, self.kill_ts_ns = detail, "risk", t
        self.kill_flatten = bool(lim["flatten_on_kill"])
        self._event(t, "kill", f"[risk] {detail}" + (" (flatten)" if self.kill_flatten else ""))
        log.error("risk: KILL (risk): %s", detail)
        if self.on_kill is not None:
            self.on_kill(detail, self.kill_flatten)
        return True

    def reset_kill(self, now: Optional[int] = None) -> bool:
        """Clear the kill switch (operator action). Returns False if not killed. A
        trader, once killed, stays so: a new session starts a new one."""
        t = self._now(now)
        if not self._killed:
            return False
        self._event(t, "kill_reset", f"kill cleared (was: {self.kill_reason})")
        log.warning("risk: kill switch reset (was: %s)", self.kill_reason)
        self._killed = False
        self.kill_reason = self.kill_source = None
        self.kill_ts_ns = None
        self.kill_flatten = False
        return True

    # ------------------------------------------------------------------ publishing
    def status(self, now: Optional[int] = None) -> dict[str, Any]:
        """Everything worth publishing, as plain values (ms, quote currency, ns)."""
        t = self._now(now)
        conds = self._evaluate(t)
        state = "killed" if self._killed else ("paused" if conds else "ok")
        age = None if self._last_feed_ns is None else (t - self._last_feed_ns) / NS_PER_MS
        tr = self.trader
        return {
            "risk_state": state, "can_quote": state == "ok", "risk_reasons": list(conds.values()),
            "kill_reason": self.kill_reason, "kill_source": self.kill_source, "kill_ts_ns": self.kill_ts_ns,
            "kill_flatten": self.kill_flatten,
            "order_rtt_ms": self._rtt.last, "order_rtt_p90_ms": self._rtt.p90(t),
            "feed_latency_ms": self._feed.last, "feed_latency_p90_ms": self._feed.p90(t),
            "feed_age_ms": age, "book_synced": self._book_synced,
            "daily_loss": None if tr is None else tr.daily_loss,
            "drawdown": None if tr is None else tr.drawdown,
            "orders_sent": None if tr is None else tr.sent,
            "rate_refusals": None if tr is None else tr.refused_rate,
            "position_refusals": None if tr is None else tr.refused_position,
        }

    #: keys of :meth:`status` that are columns of the state DB's ``status`` table
    PUBLISH_KEYS = ("risk_state", "kill_reason", "order_rtt_ms", "feed_age_ms", "feed_latency_ms")

    def publish_fields(self, now: Optional[int] = None) -> dict[str, Any]:
        """The subset of :meth:`status` named like ``hftmm.live.schema.STATUS_COLUMNS``."""
        st = self.status(now)
        return {k: st[k] for k in self.PUBLISH_KEYS}
