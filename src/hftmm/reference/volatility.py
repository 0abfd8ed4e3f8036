"""Pure-Python twins of hftcore.volatility: slow, obviously right.

Same names and semantics as the compiled kernels (see hftcore/volatility.pyx):
times in int ns since the epoch, EWMA variance per second of log returns,
intensity A in trades per second and k per price unit.
"""
from __future__ import annotations

import math
from collections import deque

LN2 = 0.6931471805599453
_PRICE_LIMIT = 1 << 61


class EwmaVolatility:
    """EWMA of r*r/dt over irregular times; half_life_s in seconds."""

    def __init__(self, half_life_s: float) -> None:
        h = float(half_life_s)
        if not (h > 0.0 and math.isfinite(h)):
            raise ValueError(f"half_life_s must be a finite number > 0, got {half_life_s!r}")
        self.half_life_s = h
        self.reset()

    def reset(self) -> None:
        self._var = 0.0
        self._ref_mid: float | None = None
        self._ref_t: int | None = None
        self._count = 0

    def update(self, t_ns: int, mid: float) -> None:
        mid = float(mid)
        if not (mid > 0.0 and math.isfinite(mid)):
            return  # invalid mid: ignored
        if self._ref_mid is None:
            self._ref_mid, self._ref_t = mid, int(t_ns)
            return
        if t_ns <= self._ref_t:
            return  # dt <= 0: no update, reference stays
        dt = (t_ns - self._ref_t) / 1e9  # seconds
        r = math.log(mid / self._ref_mid)
        x = r * r / dt
        if self._count == 0:
            self._var = x
        else:
            # alpha = 1 - exp(-ln2 dt / half_life), via expm1: exact for tiny dt
            alpha = -math.expm1(-LN2 / self.half_life_s * dt)
            self._var = (1.0 - alpha) * self._var + alpha * x
        self._count += 1
        self._ref_mid, self._ref_t = mid, int(t_ns)

    @property
    def variance(self) -> float:
        return self._var if self._count > 0 else 0.0

    @property
    def sigma(self) -> float:
        return math.sqrt(self._var) if self._count > 0 else 0.0

    @property
    def sigma_price(self) -> float:
        return self.sigma * (self._ref_mid or 0.0)

    @property
    def count(self) -> int:
        return self._count

    @property
    def ready(self) -> bool:
        return self._count > 0

    @property
    def last_time_ns(self) -> int | None:
        return self._ref_t

    @property
    def last_mid(self) -> float | None:
        return self._ref_mid


def ewma_volatility(t_ns, mid, half_life_s: float) -> list[float]:
    """sigma after each observation (0 before ready), as a list."""
    if len(t_ns) != len(mid):
        raise ValueError("t_ns and mid differ in length")
    ev = EwmaVolatility(half_life_s)
    out = []
    for t, m in zip(t_ns, mid):
        ev.update(int(t), float(m))
        out.append(ev.sigma)
    return out


class IntensityEstimator:
    """lambda(delta) = A exp(-k delta) fitted by OLS on log tail rates in a rolling window."""

    def __init__(self, window_s: float, tick_size: float, max_depth_ticks: int = 50,
                 min_trades: int = 20) -> None:
        w, ts = float(window_s), float(tick_size)
        if not (w > 0.0 and math.isfinite(w) and w * 1e9 < 9.0e18):
            raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
        if not (ts > 0.0 and math.isfinite(ts)):
            raise ValueError(f"tick_size must be a finite number > 0, got {tick_size!r}")
        if isinstance(max_depth_ticks, bool) or not isinstance(max_depth_ticks, int) \
                or not 1 <= max_depth_ticks <= 1_000_000:
            raise ValueError(f"max_depth_ticks must be an int in [1, 1000000], got {max_depth_ticks!r}")
        if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 0:
            raise ValueError(f"min_trades must be an int >= 0, got {min_trades!r}")
        self.window_s = w
        self.window_ns = round(w * 1e9)
        self.tick_size = ts
        self.max_depth_ticks = max_depth_ticks
        self.min_trades = min_trades
        self._trades: deque[tuple[int, int]] = deque()  # (t_ns, depth bucket in half ticks)
        self.A = math.nan
        self.k_per_tick = math.nan
        self.ready = False

    @property
    def k(self) -> float:
        return self.k_per_tick / self.tick_size

    @property
    def count(self) -> int:
        return len(self._trades)

    def expire(self, now_ns: int) -> None:
        cutoff = now_ns - self.window_ns
        while self._trades and self._trades[0][0] < cutoff:
            self._trades.popleft()

    def on_trade(self, t_ns: int, price_ticks: int, mid_x2: int) -> None:
        if not (-_PRICE_LIMIT < price_ticks < _PRICE_LIMIT and -_PRICE_LIMIT < mid_x2 < _PRICE_LIMIT):
            raise ValueError("price_ticks/mid_x2 out of range (|x| >= 2**61)")
        self.expire(t_ns)
        depth_half_ticks = min(abs(2 * price_ticks - mid_x2), 2 * self.max_depth_ticks)
        self._trades.append((t_ns, depth_half_ticks))

    def histogram(self) -> list[int]:
        h = [0] * (2 * self.max_depth_ticks + 1)
        for _, d in self._trades:
            h[d] += 1
        return h

    def fit(self, now_ns: int) -> tuple[float, float]:
        self.expire(now_ns)
        self.ready, self.A, self.k_per_tick = False, math.nan, math.nan
        if len(self._trades) < self.min_trades:
            return self.A, self.k
        hist = self.histogram()
        xs, ys = [], []
        cum = 0
        for j in range(len(hist) - 1, -1, -1):  # deepest level first, as the kernel
            if hist[j] > 0:
                cum += hist[j]  # trades at depth >= j half ticks
                xs.append(0.5 * j)  # depth in ticks
                ys.append(math.log(cum / self.window_s))  # ln(rate per second)
        n = float(len(xs))
        if n < 2:
            return self.A, self.k
        sx = sy = sxx = sxy = 0.0
        for x, y in zip(xs, ys):
            sx += x
            sy += y
            sxx += x * x
            sxy += x * y
        den = n * sxx - sx * sx
        if not den > 0.0:
            return self.A, self.k
        slope = (n * sxy - sx * sy) / den
        intercept = (sy - slope * sx) / n
        if not (-slope > 0.0 and math.isfinite(slope) and math.isfinite(intercept)):
            return self.A, self.k
        self.k_per_tick = -slope
        self.A = math.exp(intercept)
        self.ready = True
        return self.A, self.k
