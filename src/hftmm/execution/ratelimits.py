"""Client-side Binance rate limiting from exchangeInfo ``rateLimits`` and response headers.

Windows are fixed and aligned to the epoch (Binance resets e.g. the 1-minute
weight at each wall-clock minute), so ``now`` should be wall-clock seconds.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter", "RateLimitBanned", "INTERVAL_SECONDS"]

INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_UNIT = {"S": "SECOND", "M": "MINUTE", "H": "HOUR", "D": "DAY"}
_HEADER = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$", re.I)


class RateLimitBanned(RuntimeError):
    """Raised by ``RateLimiter.check_banned`` while an HTTP 418 ban lasts."""


@dataclass
class RateLimit:
    kind: str          # REQUEST_WEIGHT, ORDERS, RAW_REQUESTS
    interval: str      # SECOND, MINUTE, HOUR, DAY
    interval_num: int
    limit: int
    used: int = 0
    window_start: float = 0.0

    @property
    def seconds(self) -> float:
        return float(INTERVAL_SECONDS[self.interval] * self.interval_num)

    def roll(self, now: float) -> None:
        start = (now // self.seconds) * self.seconds
        if start != self.window_start:
            self.window_start = start
            self.used = 0

    def wait(self, now: float, amount: int) -> float:
        self.roll(now)
        if amount <= 0 or self.used + amount <= self.limit:
            return 0.0
        return self.window_start + self.seconds - now


class RateLimiter:
    """``acquire(weight, orders)`` -> seconds to wait (0 = go, usage recorded).

    A non-zero answer records nothing: wait that long and call again.
    ``update_from_headers`` syncs with the server counters; ``on_429``/``on_418``
    stop everything until ``Retry-After`` has passed (418 = IP banned), except
    that a 429 for the order count (-1015) stops only requests that count as
    orders: cancels do not, and must still go out.

    Order requests in flight: ``acquire(orders=n)`` adds ``n`` to
    ``pending_orders`` and the sender calls ``settle(n)`` when the request's
    answer (or failure) is in, before feeding that answer's headers. The server's
    ``X-MBX-ORDER-COUNT-*`` does not include requests it has not seen yet, so the
    local count is the server's plus those still pending; taking the server's
    figure alone let concurrent senders place past the limit (HTTP 429 -1015).
    """

    def __init__(self, limits: list[RateLimit], clock: Callable[[], float] = time.time, safety: float = 1.0):
        self.limits = limits
        self.clock = clock
        self.safety = safety  # fraction of each limit we allow ourselves to use
        self.paused_until = 0.0
        self.orders_paused_until = 0.0   # after 429 -1015: only order-count requests wait
        self.banned = False
        self.pending_orders = 0          # order-count units acquired, answer not in yet

    @classmethod
    def from_exchange_info(cls, info: Mapping, clock: Callable[[], float] = time.time,
                           safety: float = 1.0) -> "RateLimiter":
        limits = []
        for r in info.get("rateLimits", []):
            interval = r["interval"]
            if interval not in INTERVAL_SECONDS:
                raise ValueError(f"unknown rate-limit interval {interval!r}")
            limits.append(RateLimit(r["rateLimitType"], interval, int(r["intervalNum"]), int(r["limit"])))
        return cls(limits, clock=clock, safety=safety)

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _cap(self, lim: RateLimit) -> int:
        return max(1, int(lim.limit * self.safety))

    def _amount(self, lim: RateLimit, weight: int, orders: int) -> int:
        return {"REQUEST_WEIGHT": weight, "ORDERS": orders, "RAW_REQUESTS": 1}.get(lim.kind, 0)

    def acquire(self, weight: int = 1, orders: int = 0, now: float | None = None) -> float:
        now = self._now(now)
        if now < self.paused_until:
            return self.paused_until - now
        if orders > 0 and now < self.orders_paused_until:
            return self.orders_paused_until - now
        self.banned = False
        waits = [0.0]
        for lim in self.limits:
            amount = self._amount(lim, weight, orders)
            if amount > self._cap(lim):
                raise ValueError(f"{lim.kind} {amount} exceeds the limit {self._cap(lim)} per "
                                 f"{lim.interval_num} {lim.interval}")
            lim.roll(now)
            if amount > 0 and lim.used + amount > self._cap(lim):
                waits.append(lim.window_start + lim.seconds - now)
        wait = max(waits)
        if wait > 0:
            return wait
        for lim in self.limits:
            lim.used += self._amount(lim, weight, orders)
        self.pending_orders += max(0, orders)
        return 0.0

    def settle(self, orders: int = 1) -> None:
        """An order request acquired with ``orders`` has its answer (or failed): no longer pending."""
        self.pending_orders = max(0, self.pending_orders - max(0, orders))

    def pause_remaining(self, orders: bool = False, now: float | None = None) -> float:
        """Seconds left of Binance's 429/418 pause for a request (``orders``: one that counts as an order)."""
        now = self._now(now)
        end = max(self.paused_until, self.orders_paused_until) if orders else self.paused_until
        return max(0.0, end - now)

    def update_from_headers(self, headers: Mapping[str, str], now: float | None = None) -> None:
        """Sync with ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-10S`` ... headers.

        Weight only grows within a window, so we keep the larger of local and
        server counts (requests may be in flight). The order count can shrink
        (fills decrement it), so it is the server value plus the order requests
        still in flight (``pending_orders``).
        """
        now = self._now(now)
        for name, value in headers.items():
            m = _HEADER.match(str(name).strip())
            if not m:
                continue
            kind = "REQUEST_WEIGHT" if m.group(1).lower() == "used-weight" else "ORDERS"
            num, interval = int(m.group(2)), _UNIT[m.group(3).upper()]
            try:
                used = int(str(value).strip())
            except ValueError:
                continue
            for lim in self.limits:
                if lim.kind == kind and lim.interval == interval and lim.interval_num == num:
                    lim.roll(now)
                    lim.used = max(lim.used, used) if kind == "REQUEST_WEIGHT" else used + self.pending_orders

    def on_429(self, retry_after_s: float, now: float | None = None, code: int | None = None) -> None:
        """HTTP 429: stop sending until Retry-After has passed; for -1015 (too many new
        orders, an account's order count) stop only requests that count as orders."""
        now = self._now(now)
        until = now + max(0.0, float(retry_after_s))
        if code == -1015:
            self.orders_paused_until = max(self.orders_paused_until, until)
        else:
            self.paused_until = max(self.paused_until, until)

    def on_418(self, retry_after_s: float, now: float | None = None) -> None:
        """HTTP 418: the IP is banned until Retry-After has passed."""
        self.on_429(retry_after_s, now)
        self.banned = True

    def is_banned(self, now: float | None = None) -> bool:
        return self.banned and self._now(now) < self.paused_until

    def check_banned(self, now: float | None = None) -> None:
        now = self._now(now)
        if self.is_banned(now):
            raise RateLimitBanned(f"IP banned by Binance for another {self.paused_until - now:.1f} s")

    def usage(self, now: float | None = None) -> dict[str, tuple[int, int]]:
        """{"REQUEST_WEIGHT 1 MINUTE": (used, limit), ...} for logging."""
        now = self._now(now)
        out = {}
        for lim in self.limits:
            lim.roll(now)
            out[f"{lim.kind} {lim.interval_num} {lim.interval}"] = (lim.used, lim.limit)
        return out
