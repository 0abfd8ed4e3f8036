"""Paper trading = backtest: the live strategy with the PaperGateway makes the same
quote decisions and fills as the backtester on the same events."""
from __future__ import annotations

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.backtest import ReplayKernel
from hftmm.backtesting.engine import _concat, kernel_params
from hftmm.backtesting.reference import ReferenceReplay
from hftmm.config import RiskConfig, TradingConfig
from hftmm.live.paper import PaperConfig
from hftmm.live.replay import equivalent_backtest, paper_replay
from hftmm.synthetic import SyntheticConfig, generate_day

TICK, LOT = SyntheticConfig().tick_size, SyntheticConfig().lot_size


class LoggedReference(ReferenceReplay):
    """The backtester's reference twin, logging its quote decisions."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.log = []

    def _submit(self, side, px, now):
        before = self.orders_submitted
        super()._submit(side, px, now)
        if self.orders_submitted != before:
            self.log.append((now, "new", "BUY" if side == 0 else "SELL", px))

    def _cancel(self, o, now):
        if o.local != 2:
            self.log.append((now, "cancel", "BUY" if o.side == 0 else "SELL", o.px))
        super()._cancel(o, now)


def _events(seconds: float, seed: int = 7) -> np.ndarray:
    syn = SyntheticConfig(seed=seed)
    return np.concatenate(list(generate_day("2024-08-08", syn, seconds))).astype(EVENT_DTYPE)


def _run_backtests(events, bt):
    params, quote = kernel_params(bt, float(TICK), float(LOT))
    ref = LoggedReference(params, quote, bt.seed)
    ker = ReplayKernel(params, quote, bt.seed)
    out = {}
    for name, k in (("ref", ref), ("kernel", ker)):
        fills, carry, applied = [], events[:0], 0
        for i in range(0, len(events), 5000):
            arr = _concat(carry, events[i:i + 5000])
            j = k.run(arr, applied, False)
            carry, applied = arr[j:], len(arr) - j
            fills.append(k.take_fills())
        k.run(carry, applied, True)
        fills.append(k.take_fills())
        out[name] = (np.concatenate(fills), k.counters())
    return ref.log, out


@pytest.mark.parametrize("variant", [
    dict(),
    dict(trading=dict(model="glft", fair_value="micro", requote_threshold=2),
         paper=dict(queue_model="power", order_latency=0.02, response_latency=0.01)),
    dict(trading=dict(post_only=True, estimate_intensity=False, min_spread=0.0),
         paper=dict(feed_latency=0.003, fill_model="intensity", fill_A=2.0, fill_k=0.5)),
    dict(max_position=0.004, trading=dict(gamma=0.001, k=2.0, estimate_intensity=False),
         paper=dict(fill_model="intensity", fill_A=5.0, fill_k=0.5)),
    # gaps in the data (BOOK_INVALID ... SNAPSHOT): both cancel at the mark and wait for the snapshot
    dict(gaps=5, paper=dict(queue_model="power", order_latency=0.01)),
    # a binding order-rate limit: the backtest refuses the same new orders
    dict(rate=4.0, trading=dict(quote_refresh_interval=0.02, requote_threshold=0)),
])
def test_paper_makes_the_backtests_decisions(variant):
    events = _events(240.0)
    if variant.get("gaps"):
        from tests.test_backtest_reference import _with_gaps
        events, _ = _with_gaps(events, variant["gaps"], 3)
    trading = TradingConfig(**{"tick_size": float(TICK), "lot_size": float(LOT), "gamma": 0.05,
                               "time_horizon": 30.0, "order_size": 0.002, **variant.get("trading", {})})
    # the live risk manager runs too; its position limit (which counts orders in
    # flight) binds in the last variant, where the backtest applies the same rule
    risk = RiskConfig(max_position=variant.get("max_position", 0.02),
                      max_orders_per_second=variant.get("rate", 1000.0),
                      latency_threshold_ms=2000.0, max_daily_loss=1e6, max_drawdown=1.0)
    paper = PaperConfig(**variant.get("paper", {}))
    bt = equivalent_backtest(trading, risk, paper)
    ref_log, bts = _run_backtests(events, bt)
    # message-sized chunks, as the live feed delivers them
    ends = np.flatnonzero(events["flags"] & 0x02) + 1
    chunks = np.split(events, ends)
    res = paper_replay(chunks, trading, risk, TICK, LOT, paper)
    paper_log = [(d.ts_ns, d.action, d.side, d.px) for d in res.decisions]
    assert len(ref_log) > 50
    assert paper_log == ref_log
    kfills, kcount = bts["kernel"]
    assert len(kfills) > 5
    np.testing.assert_array_equal(res.fills, kfills)
    for key in ("orders_submitted", "orders_rejected", "orders_cancelled", "cancels_sent", "fills",
                "maker_lots", "taker_lots", "submitted_lots"):
        assert res.counters[key] == kcount[key], key
    assert res.core.qm.counters.risk_blocked == kcount["risk_blocked"]
    if "max_position" in variant:
        assert kcount["risk_blocked"] > 0               # the limit did bind
    if "rate" in variant:
        assert kcount["rate_blocked"] > 10 and res.core.qm.risk.refusals["rate"] == kcount["rate_blocked"]
    if variant.get("gaps"):
        assert kcount["book_invalid"] == res.core.book_invalid == variant["gaps"]
    # the limit holds with every order in flight: never past max_position
    max_lots = round(risk.max_position / float(LOT))
    assert np.abs(kfills["position"]).max() <= max_lots
    # the live side's own accounting agrees with the exchange side's
    qm = res.core.qm
    assert qm.position_lots * 1 == int(kfills["position"][-1]) if len(kfills) else True


def test_quote_manager_forgets_old_final_orders():
    events = _events(60.0)
    trading = TradingConfig(tick_size=float(TICK), lot_size=float(LOT), gamma=0.05, order_size=0.002)
    risk = RiskConfig(max_position=0.02, max_orders_per_second=1000.0, latency_threshold_ms=2000.0)
    res = paper_replay(np.split(events, np.flatnonzero(events["flags"] & 0x02) + 1), trading, risk, TICK, LOT)
    qm = res.core.qm
    final = [o for o in qm.tracker.orders.values() if o.is_terminal]
    assert len(final) > 20
    live = {o.client_order_id for o in qm.tracker.active_orders()}
    n = qm.prune(keep_ns=10_000_000_000)
    assert n > 0 and all(o.updated_ns >= qm.now - 10_000_000_000 for o in qm.tracker.orders.values()
                         if o.is_terminal)
    assert live <= set(qm.tracker.orders)             # live orders are never forgotten


def test_realized_pnl_is_average_cost():
    from decimal import Decimal

    from hftmm.execution.orders import Fill
    from hftmm.strategy import AvellanedaStoikovPricer, QuoteManager

    qm = QuoteManager("BTCUSDT", AvellanedaStoikovPricer(tick_size=0.01, lot_size=0.001), None,
                      tick_size="0.01", lot_size="0.001")

    def fill(side, px, qty):
        q, p = Decimal(qty), Decimal(px)
        qm._apply_fill(Fill("x", None, p, q, p * q, Decimal(0), "USDT", True, 0, side))

    fill("BUY", "100", "0.002")
    fill("BUY", "103", "0.001")        # avg 101
    fill("SELL", "105", "0.002")       # +4 x 0.002
    assert abs(qm.realized_pnl - 0.008) < 1e-12 and qm.position_lots == 1
    fill("SELL", "99", "0.003")        # closes 0.001 at -2, opens short 0.002 at 99
    assert abs(qm.realized_pnl - 0.006) < 1e-12 and qm.avg_entry == 99.0 and qm.position_lots == -2
    fill("BUY", "98", "0.002")         # +1 x 0.002
    assert abs(qm.realized_pnl - 0.008) < 1e-12 and qm.position_lots == 0
    # realised + unrealised = cash + position x mid (no fees here)
    assert abs(qm.equity(100.0) - qm.realized_pnl) < 1e-12
