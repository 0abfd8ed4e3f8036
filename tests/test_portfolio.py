"""Several symbols in one engine (hftmm.live.portfolio): two paper symbols against two
simulators, one state DB, a binding portfolio notional limit, one kill switch for all,
and a second session on the same state DB refused."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from hftmm.config import (ConfigError, ExchangeModelConfig, PortfolioConfig, RiskConfig, TradingConfig,
                          build_portfolio_config)
from hftmm.live.engine import LiveEngine
from hftmm.live.portfolio import PortfolioEngine
from hftmm.live.state import SessionInUse, running_session, send_command
from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.synthetic import SyntheticConfig

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _sims():
    return {s: ExchangeSimulator(market="spot", source=SyntheticSource(
        SyntheticConfig(symbol=s, seed=11 + i, book_levels=400), speed=4.0)).start()
        for i, s in enumerate(SYMBOLS)}


def _tradings():
    return [TradingConfig(symbol=s, gamma=0.05, order_size=0.001, quote_refresh_interval=0.05,
                          estimate_intensity=False, k=0.5) for s in SYMBOLS]


def _wait(pred, timeout_s=60.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_two_symbols_binding_portfolio_limit_one_kill_switch(tmp_path):
    db = str(tmp_path / "state.db")
    sims = _sims()
    risk = RiskConfig(max_position=0.005, latency_threshold_ms=2000.0, max_orders_per_second=100.0,
                      max_daily_loss=1e6)
    # one order is ~62 quote: room for about two -- the first fill makes it bind
    cap = 130.0
    # paper fills from the intensity model (within seconds, whatever the machine's load: the
    # queue model's fills depend on where the quotes sit when the market trades)
    eng = PortfolioEngine(_tradings(), risk, PortfolioConfig(max_total_notional=cap), mode="paper",
                          rest_url={s: sim.rest_url for s, sim in sims.items()},
                          ws_url={s: sim.ws_url for s, sim in sims.items()}, state_db=db,
                          connector_options={"feeds": 1},
                          exchange=ExchangeModelConfig(fill_model="intensity", fill_A=5.0, fill_k=0.3))
    out: dict = {}
    th = threading.Thread(target=lambda: out.update(eng.run(180.0)))     # (ended by the test's kill)
    th.start()
    try:
        assert _wait(lambda: all(leg.session_id for leg in eng.legs) and running_session(db) is not None
                     and len(running_session(db)["sessions"]) == 2)
        who = running_session(db)
        assert set(who["sessions"]) == {leg.session_id for leg in eng.legs}
        assert set(who["symbol"].split(",")) == set(SYMBOLS) and who["mode"] == "paper"
        # one session per state DB: a second engine, one symbol or two, is refused
        with pytest.raises(SessionInUse, match="in use by running session"):
            LiveEngine(_tradings()[0], risk, mode="paper", rest_url=sims["BTCUSDT"].rest_url,
                       ws_url=sims["BTCUSDT"].ws_url, state_db=db).run(duration_s=1.0)
        with pytest.raises(SessionInUse):
            PortfolioEngine(_tradings(), risk, mode="paper", state_db=db).run(1.0)
        # the limit binds after a fill; each trader holds its cap (its position + a share of the room)
        assert _wait(lambda: any(k == "portfolio_limit" for _, k, _ in eng.events), 150.0), eng.totals()
        assert sum(leg.trader.counters()["fills"] for leg in eng.legs) >= 1
        assert all(leg.trader.cap_lots >= 0 for leg in eng.legs)
        # one kill switch: hftmm kill addresses the running session; every symbol stops
        cid = send_command(db, "kill", {"reason": "test"}, session_id=who["session_id"])
        assert _wait(lambda: all(leg.risk.killed for leg in eng.legs), 30.0)
        assert eng.killed_reason and "killed" in eng.killed_reason
    finally:
        eng.stop("test over")
        th.join(120.0)
        for sim in sims.values():
            sim.stop()
    assert not th.is_alive() and out["symbols"] == list(SYMBOLS)
    assert out["max_notional"] <= cap * 1.01, out["max_notional"]       # (the mids move a little)
    fills = {s: out["legs"][s]["fills"] for s in SYMBOLS}
    assert sum(fills.values()) > 0, fills
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT s.symbol, r.kind FROM risk_events r JOIN sessions s USING (session_id)").fetchall()
    kinds = {s: {k for sym, k in rows if sym == s} for s in SYMBOLS}
    for s in SYMBOLS:
        assert "portfolio_limit" in kinds[s] and "kill" in kinds[s], kinds
    ended = conn.execute("SELECT symbol, ended_ns, end_reason FROM sessions").fetchall()
    assert {r[0] for r in ended} == set(SYMBOLS) and all(r[1] for r in ended)
    assert conn.execute("SELECT consumed_ns FROM commands WHERE id = ?", (cid,)).fetchone()[0] is not None
    assert running_session(db) is None
    # every order of both symbols ended (paper: the model cancelled them at the end)
    assert all(out["legs"][s]["open_orders"] == 0 for s in SYMBOLS)


def test_portfolio_configuration():
    assert PortfolioConfig().max_total_notional is None
    assert build_portfolio_config({"portfolio": {"max_total_notional": 5000}}).max_total_notional == 5000
    for bad in ({"max_total_notional": 0}, {"max_total_daily_loss": -1}, {"resume_fraction": 1.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            PortfolioConfig(**bad)
    with pytest.raises(ConfigError, match="portfolio.nope"):
        build_portfolio_config({"portfolio": {"nope": 1}})
    risk = RiskConfig()
    with pytest.raises(ValueError, match="distinct"):
        PortfolioEngine([_tradings()[0], _tradings()[0]], risk)
    with pytest.raises(ValueError, match="RiskConfig for ETHUSDT"):
        PortfolioEngine(_tradings(), {"BTCUSDT": risk})


def test_portfolio_backtest_two_symbols():
    from hftmm.backtesting import BacktestConfig, BacktestEngine

    eng = BacktestEngine(synthetic_day_seconds=900)
    base = dict(start_date="2024-08-08", end_date="2024-08-08", order_size=0.001, max_position=0.005,
                max_daily_loss=1e6, maker_fee=-0.0001, gamma=0.05)
    cfgs = [BacktestConfig(symbol=s, **base) for s in SYMBOLS]
    # no portfolio limit: every symbol's result is its own single backtest, fill for fill
    free = eng.run_portfolio_backtest(cfgs, PortfolioConfig(max_total_daily_loss=0))
    for c in cfgs:
        alone = eng.run_backtest(c)
        got = free.results[c.symbol]
        assert len(alone.trades) > 0
        assert got.trades.equals(alone.trades), c.symbol
        assert got.performance.total_pnl == pytest.approx(alone.performance.total_pnl)
    assert free.total_pnl == pytest.approx(sum(r.performance.total_pnl for r in free.results.values()))
    assert not free.events and free.max_notional > 0
    # a binding notional limit: reduce-only, the total held at the cap (one order of slack)
    mid = float(free.results["BTCUSDT"].timeseries["mid"].iloc[0])
    cap = 2.5 * 0.001 * mid
    bound = eng.run_portfolio_backtest(cfgs, PortfolioConfig(max_total_notional=cap, max_total_daily_loss=0))
    kinds = [k for _, k, _ in bound.events]
    assert "bound" in kinds and bound.max_notional <= cap * 1.01, (bound.max_notional, cap)   # (mid moves)
    assert free.max_notional > cap
    assert "Max Total Notional" in bound.summary() and "bound" in bound.summary()
    # one kill switch: a total daily loss limit trips and kills every symbol
    # (Binance's real fees: the fills lose their fees, so the total loss gets there)
    paid = [c.replace(maker_fee=None) for c in cfgs]
    killed = eng.run_portfolio_backtest(paid, PortfolioConfig(max_total_daily_loss=0.2))
    assert killed.killed and "portfolio daily loss" in killed.killed, killed.summary()
    assert all(r.counters["killed"] for r in killed.results.values())
    assert [k for _, k, _ in killed.events] == ["kill"]


def test_cli_backtest_several_symbols(tmp_path, capsys):
    from hftmm.cli import main

    png = tmp_path / "portfolio.png"
    rc = main(["backtest", "--symbol", "BTCUSDT,ETHUSDT", "--date", "2024-08-08", "--synthetic-seconds", "600",
               "--max-total-notional", "150", "--max-daily-loss", "1000000", "--maker-fee", "-0.0001",
               "--no-progress", "--plot", str(png), "--save", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0 and "Portfolio Summary:" in out and "BTCUSDT:" in out and "ETHUSDT:" in out
    assert "limit $150.00" in out and png.stat().st_size > 10_000
    assert (tmp_path / "out" / "BTCUSDT" / "trades.parquet").exists()
    assert (tmp_path / "out" / "portfolio.parquet").exists()
