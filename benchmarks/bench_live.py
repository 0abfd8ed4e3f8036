"""The live engine's strategy side, per market-data message, beside its floor.

Synthetic BTCUSDT-like messages (normalised events, as the engine gets them from
the decoder and the normaliser), each handed to

* ``book_only`` (the floor): the same Python loop over the message's records,
  applying them to an L2Book and reading the top -- what any Python strategy on
  this feed pays;
* ``strategy``: :class:`hftmm.live.engine.StrategyCore` -- book, pricer (EWMA,
  quote), QuoteManager decisions with the order tracker, the risk manager's
  checks and the requests to a gateway (a recording one: no I/O);
* ``paper``: the paper gateway's exchange model on top (the backtester's
  reference twin driven by the feed), per event, beside the compiled replay
  kernel on the same events (what a backtest pays).
"""
from __future__ import annotations

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftmm.backtesting.engine import kernel_params
from hftmm.config import RiskConfig, TradingConfig
from hftmm.live.engine import build_strategy
from hftmm.live.paper import PaperConfig
from hftmm.live.replay import equivalent_backtest, paper_replay
from hftmm.strategy.risk import RiskManager
from hftmm.synthetic import SyntheticConfig, generate_day

TICK, LOT = SyntheticConfig().tick_size, SyntheticConfig().lot_size
TRADING = TradingConfig(tick_size=float(TICK), lot_size=float(LOT), gamma=0.05, order_size=0.002,
                        quote_refresh_interval=0.05)
RISK = RiskConfig(max_position=0.02, max_orders_per_second=1e6, latency_threshold_ms=1e6,
                  max_daily_loss=1e9, max_drawdown=1e9)


@pytest.fixture(scope="module")
def messages(request):
    secs = 20.0 if request.config.getoption("benchmark_disable") else 300.0
    ev = np.concatenate(list(generate_day("2024-08-08", SyntheticConfig(seed=4), secs))).astype(EVENT_DTYPE)
    return [m for m in np.split(ev, np.flatnonzero(ev["flags"] & 0x02) + 1) if len(m)]


class RecordingGateway:
    name = "recording"

    def __init__(self) -> None:
        self.requests = 0

    def place_order(self, params) -> None:
        self.requests += 1

    cancel_order = query_order = place_order


def _core():
    gw = RecordingGateway()
    clock = [0]
    risk = RiskManager(RISK, clock=lambda: clock[0])
    core = build_strategy(TRADING, RISK, TICK, LOT, gw, risk_manager=risk)
    return core, risk, gw


@pytest.mark.benchmark(group="live")
def test_book_only(benchmark, messages, bench_record):
    def run():
        book = L2Book(TICK, LOT)
        for m in messages:
            for r in m.tolist():
                if r[7] == 3 and r[9] & 1:
                    book.clear()
                if r[7] in (1, 3):
                    book.apply(r[8], r[2], r[3])
            book.best_bid(), book.best_ask(), book.best_bid_qty(), book.best_ask_qty()
        return book

    book = benchmark.pedantic(run, rounds=3, iterations=1)
    assert book.best_bid() < book.best_ask()
    bench_record(benchmark, "live_book_only", len(messages))


@pytest.mark.benchmark(group="live")
def test_strategy(benchmark, messages, bench_record, bench_ratio):
    def run(core, risk, gw):
        for m in messages:
            t = int(m["local_ts"][-1])
            risk.on_feed(int(m["exch_ts"][-1]), t)
            risk.on_book_state(True, now=t)
            core.on_records(m)
        return core, gw

    core, gw = benchmark.pedantic(run, setup=lambda: (_core(), {}), rounds=3, iterations=1)
    assert core.qm.counters.quotes > 100 and gw.requests > 10
    bench_record(benchmark, "live_strategy", len(messages))
    r = bench_ratio("live_strategy", "live_book_only")
    if r is not None:
        print(f"\nstrategy side per message: {r:.1f}x the book-only floor")


@pytest.mark.benchmark(group="live")
def test_paper(benchmark, messages, bench_record):
    n = sum(len(m) for m in messages)

    def run():
        return paper_replay(messages, TRADING, RISK, TICK, LOT, PaperConfig())

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    assert res.counters["orders_submitted"] > 10
    bench_record(benchmark, "live_paper", n)


@pytest.mark.benchmark(group="live")
def test_kernel_same_events(benchmark, messages, bench_record, bench_ratio):
    ev = np.concatenate(messages).astype(EVENT_DTYPE)
    params, quote = kernel_params(equivalent_backtest(TRADING, RISK, PaperConfig()), float(TICK), float(LOT))

    def run():
        k = ReplayKernel(params, quote, 1)
        k.run(ev, 0, True)
        return k

    k = benchmark.pedantic(run, rounds=3, iterations=1)
    assert k.counters()["orders_submitted"] > 10
    bench_record(benchmark, "live_kernel", len(ev))
    r = bench_ratio("live_paper", "live_kernel")
    if r is not None:
        print(f"\npaper replay per event: {r:.0f}x the compiled kernel")
