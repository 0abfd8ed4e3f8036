"""Fault injection: what each WebSocket connection or REST call gets wrong.

Faults only perturb what one connection (or one REST answer) receives; the
exchange's ground truth is never touched.

Counting: WebSocket faults count the *data* messages offered to a connection
(depth, trade, aggTrade, bookTicker frames, from 1); REST faults count REST
requests (from 1, all paths). ``at_time_s`` is seconds since
``ExchangeSimulator.start()``.

Random faults: ``rates[kind]`` is a per-message probability. Each connection has
its own ``random.Random`` seeded from ``(seed, connection index)`` and draws one
number per offered data message, so a connection's fault sequence is a pure
function of the seed, its index and the sequence of messages it is offered
(REST: one draw per request from a separate RNG). At most one random fault per
message. ``skip``/``reorder`` need a depth message: drawn on another message,
they wait for the connection's next depth message.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

WS_KINDS = ("drop_connection", "skip", "duplicate", "reorder", "delay", "malformed", "silent",
            "server_shutdown")
REST_KINDS = ("stale_snapshot", "rest_error")
KINDS = WS_KINDS + REST_KINDS
#: kinds applied to the next data message (depth-only for skip/reorder)
MESSAGE_KINDS = ("skip", "duplicate", "reorder", "malformed")
#: kinds acting on the connection as a whole (fire immediately when timed)
CONNECTION_KINDS = ("drop_connection", "delay", "silent", "server_shutdown")
DEPTH_ONLY = ("skip", "reorder")

#: default parameters per kind (overridable per scripted Fault)
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "delay": {"ms": 300.0},
    "silent": {"seconds": 3.0},
    "server_shutdown": {"after_s": 1.0},
    "malformed": {"variant": None},        # None = random among MALFORMED_VARIANTS
    "stale_snapshot": {"age_s": 3.0},
    "rest_error": {"status": None, "retry_after": 1},   # None = random among 429/500/502/503/504
}
MALFORMED_VARIANTS = ("truncated", "garbage", "bad_price")
REST_ERROR_STATUSES = (429, 500, 502, 503, 504)

#: rates used by ``hftmm simulate --faults SEED``: a few faults a minute at
#: real time on a busy connection, rarer for the drastic ones
DEFAULT_RATES: dict[str, float] = {
    "skip": 2e-3,
    "duplicate": 2e-3,
    "reorder": 1e-3,
    "delay": 1e-3,
    "malformed": 1e-3,
    "drop_connection": 1e-4,
    "silent": 5e-5,
    "server_shutdown": 2e-5,
    "stale_snapshot": 0.2,
    "rest_error": 0.05,
}


class Fault:
    """One scripted fault: ``Fault(kind, at_message=N | at_time_s=T, connection=None|index, **params)``.

    ``connection``: index of the WebSocket connection (0 = first accepted) or
    None for every connection (``at_message``: each connection at its own
    N-th message; ``at_time_s``: every connection open at time T). Ignored for
    REST kinds. Params: delay ``ms``; silent ``seconds``; server_shutdown
    ``after_s``; malformed ``variant`` ("truncated" | "garbage" | "bad_price");
    stale_snapshot ``age_s``; rest_error ``status`` (429 adds Retry-After) and
    ``retry_after``.
    """

    __slots__ = ("kind", "at_message", "at_time_s", "connection", "params")

    def __init__(self, kind: str, at_message: Optional[int] = None, at_time_s: Optional[float] = None,
                 connection: Optional[int] = None, **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        if (at_message is None) == (at_time_s is None):
            raise ValueError("give exactly one of at_message and at_time_s")
        if at_message is not None and at_message < 1:
            raise ValueError("at_message counts from 1")
        self.kind = kind
        self.at_message = at_message
        self.at_time_s = at_time_s
        self.connection = connection
        self.params = {**DEFAULT_PARAMS.get(kind, {}), **params}

    def __repr__(self) -> str:
        when = f"at_message={self.at_message}" if self.at_message is not None else f"at_time_s={self.at_time_s}"
        return f"Fault({self.kind!r}, {when}, connection={self.connection}, {self.params})"


@dataclass
class FaultConfig:
    """Random (``rates``: kind -> probability per message / per REST request)
    and scripted (``script``: list of :class:`Fault`) faults, with a seed.

    ``endpoints``: the stream endpoints (0 = the main port, 1.. the simulator's
    ``extra_ports``) whose connections get WebSocket faults -- random ones and
    scripted ones without a ``connection``; None = all. A redundant client with
    one feed per endpoint then has faults on some feeds only, across reconnects.
    ``after_message``: random faults spare each connection's first N data messages."""

    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    script: list[Fault] = field(default_factory=list)
    endpoints: Optional[tuple[int, ...]] = None
    after_message: int = 0

    def __post_init__(self) -> None:
        for k, v in self.rates.items():
            if k not in KINDS:
                raise ValueError(f"unknown fault kind {k!r}")
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"rate of {k} must be in [0, 1]")
        self.script = list(self.script)

    @classmethod
    def default(cls, seed: int) -> "FaultConfig":
        return cls(seed=seed, rates=dict(DEFAULT_RATES))


def _cumulative(rates: dict[str, float], kinds: Iterable[str]) -> list[tuple[float, str]]:
    out, acc = [], 0.0
    for k in kinds:
        r = float(rates.get(k, 0.0))
        if r > 0:
            acc += r
            out.append((acc, k))
    if acc > 1.0:
        raise ValueError("fault rates of one group sum to more than 1")
    return out


class Action:
    """A decided fault: kind + params."""

    __slots__ = ("kind", "params", "scripted")

    def __init__(self, kind: str, params: dict, scripted: bool) -> None:
        self.kind = kind
        self.params = params
        self.scripted = scripted

    def __repr__(self) -> str:
        return f"Action({self.kind}, {self.params})"


class ConnectionFaults:
    """Fault decisions for one WebSocket connection."""

    def __init__(self, config: FaultConfig, index: int, endpoint: int = 0) -> None:
        self.index = index
        self.endpoint = endpoint
        chosen = config.endpoints is None or endpoint in config.endpoints
        self.rng = random.Random(config.seed * 1_000_003 + index)
        self.cum = _cumulative(config.rates, WS_KINDS) if chosen else []
        self.script = sorted((f for f in config.script if f.kind in WS_KINDS and f.at_message is not None
                              and (f.connection == index or (f.connection is None and chosen))),
                             key=lambda f: f.at_message)
        self.pending: list[Action] = []
        self.count = 0
        self.after = config.after_message

    def add(self, fault: Fault) -> None:
        self.pending.append(Action(fault.kind, dict(fault.params), True))

    def _random_params(self, kind: str) -> dict:
        rng = self.rng
        p = dict(DEFAULT_PARAMS.get(kind, {}))
        if kind == "delay":
            p["ms"] = float(rng.randint(20, 500))
        elif kind == "silent":
            p["seconds"] = round(rng.uniform(0.5, 4.0), 3)
        elif kind == "malformed":
            p["variant"] = MALFORMED_VARIANTS[rng.randrange(len(MALFORMED_VARIANTS))]
        return p

    def decide(self, is_depth: bool) -> list[Action]:
        """Faults to apply to the next offered data message (in order)."""
        self.count += 1
        script = self.script
        while script and script[0].at_message <= self.count:
            self.add(script.pop(0))
        if self.cum and self.count > self.after:
            u = self.rng.random()
            for acc, kind in self.cum:
                if u < acc:
                    self.pending.append(Action(kind, self._random_params(kind), False))
                    break
        if not self.pending:
            return []
        now, keep = [], []
        for a in self.pending:
            (keep if (a.kind in DEPTH_ONLY and not is_depth) else now).append(a)
        self.pending = keep
        return now


class RestFaults:
    """Fault decisions for REST requests (one RNG, requests counted from 1)."""

    def __init__(self, config: FaultConfig) -> None:
        self.rng = random.Random(config.seed * 1_000_003 + 999_999_937)
        self.cum = _cumulative(config.rates, REST_KINDS)
        self.script = sorted((f for f in config.script if f.kind in REST_KINDS and f.at_message is not None),
                             key=lambda f: f.at_message)
        self.pending: list[Action] = []
        self.count = 0

    def add(self, fault: Fault) -> None:
        self.pending.append(Action(fault.kind, dict(fault.params), True))

    def decide(self, is_depth: bool) -> Optional[Action]:
        self.count += 1
        while self.script and self.script[0].at_message <= self.count:
            self.add(self.script.pop(0))
        if self.cum:
            u = self.rng.random()
            for acc, kind in self.cum:
                if u < acc:
                    p = dict(DEFAULT_PARAMS.get(kind, {}))
                    if kind == "rest_error":
                        p["status"] = REST_ERROR_STATUSES[self.rng.randrange(len(REST_ERROR_STATUSES))]
                    self.pending.append(Action(kind, p, False))
                    break
        for i, a in enumerate(self.pending):
            if a.kind == "rest_error" or is_depth:
                return self.pending.pop(i)
        return None
