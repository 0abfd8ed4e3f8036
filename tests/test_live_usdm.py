"""USD-M end to end on the simulator (127.0.0.1): a paper session equals the backtest
of its recording; a testnet session (``hftmm live --testnet --market usdm
--leverage 5``) trades GTX quotes through the futures gateway and ends with nothing
open; the margin limits kill (and flatten reduce-only) before the exchange's own
liquidation would happen."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from decimal import Decimal as D

import numpy as np

from hftmm.backtesting import BacktestConfig
from hftmm.config import ExchangeModelConfig, RiskConfig, TradingConfig
from hftmm.data import store
from hftmm.data.convert import convert
from hftmm.execution.signing import HmacSigner
from hftmm.live.engine import LiveEngine
from hftmm.live.futures_gateway import BinanceFuturesGateway
from hftmm.live.futures_risk import FuturesRisk
from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_binance_gateway import Events  # noqa: E402
from test_live_engine import _backtest_kernel, assert_same_decisions  # noqa: E402

SYM = "BTCUSDT"


def _sim(seed: int = 5, speed: float = 1.0, **kw) -> ExchangeSimulator:
    return ExchangeSimulator(market="usdm", source=SyntheticSource(SyntheticConfig(seed=seed, book_levels=400),
                                                                   speed=speed), **kw)


def test_usdm_paper_session_equals_the_backtest_of_its_recording(tmp_path):
    trading = TradingConfig(symbol=SYM, market="usdm", gamma=0.01, time_horizon=1.0, order_size=0.002,
                            quote_refresh_interval=0.05, estimate_intensity=False, k=5.0, leverage=5)
    risk = RiskConfig(max_position=0.02, max_daily_loss=1e6, max_drawdown=1.0, latency_threshold_ms=2000.0,
                      max_orders_per_second=1000.0)
    exchange = ExchangeModelConfig(order_latency=0.004, cancel_latency=0.004, response_latency=0.003,
                                   fill_model="intensity", fill_A=5.0, fill_k=0.3)
    rec = tmp_path / "raw"
    # funding every 3 s of market time, on the markPrice@1s stream the session records
    with _sim(speed=5.0, funding_interval_s=3.0, funding_rate="0.0005") as sim:
        eng = LiveEngine(trading, risk, mode="paper", exchange=exchange, rest_url=sim.rest_url, ws_url=sim.ws_url,
                         record_dir=str(rec), record_decisions=True)
        summary = eng.run(duration_s=8.0)
    assert summary["frames"] > 300 and summary["orders_sent"] > 10 and summary["open_orders"] == 0, summary
    # USD-M fees by default: Binance's regular tier
    assert eng.exchange_config.fees("usdm") == (0.0002, 0.0005)
    paper_intents = np.concatenate(eng.decisions)
    out = tmp_path / "store"
    info = eng.exchange_info_path
    report = convert(sorted(str(p) for p in rec.iterdir() if str(p) != info), str(out), exchange_info=info)
    meta = store.store_metadata(str(out), SYM)
    assert meta.get("market") == "usdm"
    day = meta["day"] if "day" in meta else store.available_dates(str(out), SYM)[0]
    bt = BacktestConfig.compose(trading, exchange, risk, data_path=str(out), start_date=day, end_date=day,
                                feed_latency=None, clock_correction=False)
    k = _backtest_kernel(bt, str(out), meta)
    assert_same_decisions(paper_intents, eng.paper_fills, k.take_intents(0), k.take_fills(0), summary)
    # funding: the settlements the session applied are the recording's, paid on the same position
    bt_trader = k.agent(0)[1]
    assert summary["fundings"] >= 3 and report.fundings[SYM] == summary["fundings"]
    assert bt_trader.fundings == eng.trader.fundings and eng.trader.fundings >= 1
    assert bt_trader.funding == eng.trader.funding


def test_usdm_testnet_session_leverage_5_ends_with_nothing_open(tmp_path):
    key, secret = "f" * 64, "t" * 64
    with _sim(seed=9) as sim:
        sim.add_account(key, hmac_secret=secret, balances={"USDT": "10000"})
        env = dict(os.environ, BINANCE_API_KEY=key, BINANCE_API_SECRET=secret,
                   HFTMM_RISK_LATENCY_THRESHOLD_MS="2000", HFTMM_TRADING_QUOTE_REFRESH_INTERVAL="0.05",
                   HFTMM_TRADING_ORDER_SIZE="0.002", HFTMM_RISK_MAX_POSITION="0.01")
        db = str(tmp_path / "usdm.db")
        r = subprocess.run([sys.executable, "-m", "hftmm.cli", "live", "--testnet", "--market", "usdm",
                            "--leverage", "5", "--symbol", SYM, "--rest-url", sim.rest_url, "--ws-url", sim.ws_url,
                            "--duration", "6", "--no-status", "--env-file", str(tmp_path / "none.env"),
                            "--state-db", db],
                           capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
        orders = sim.orders_of(key)
        pos = sim.positions(key)[0]
    assert r.returncode == 0, r.stderr[-3000:]
    assert secret not in r.stdout + r.stderr and key not in r.stdout + r.stderr
    assert "open_orders=0" in r.stdout, r.stdout
    assert pos["leverage"] == "5"
    assert len(orders) > 5 and not [o for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    quotes = [o for o in orders if o["type"] == "LIMIT"]
    assert quotes and all(o["timeInForce"] == "GTX" for o in quotes)
    assert abs(D(pos["positionAmt"])) <= D("0.01")
    # the margin figures reach the state store (the dashboard's margin tiles)
    from hftmm.live.state import StateReader

    last = StateReader(db).latest_status()
    assert last["margin_ratio"] is not None and 0 <= last["margin_ratio"] < 0.5
    assert 9000 < last["wallet_balance"] <= 10000


def _engine(sim, key: str, wallet: str, leverage: int, duration_s: float, **risk_kw):
    """A testnet engine on the simulator's USD-M account ``key`` (started in a thread)."""
    sim.add_account(key, hmac_secret="x", balances={"USDT": wallet})
    gw = BinanceFuturesGateway(SYM, HmacSigner(key, "x"), rest_url=sim.rest_url, ws_url=sim.ws_url,
                               leverage=leverage)
    trading = TradingConfig(symbol=SYM, market="usdm", gamma=0.01, order_size=0.002, k=5.0,
                            estimate_intensity=False, quote_refresh_interval=0.05)
    metrics_port = risk_kw.pop("metrics_port", None)
    risk = RiskConfig(**{"latency_threshold_ms": 5000.0, "max_orders_per_second": 50.0, "flatten_on_kill": True,
                         **risk_kw})
    eng = LiveEngine(trading, risk, mode="testnet", gateway=gw, rest_url=sim.rest_url, ws_url=sim.ws_url,
                     metrics_port=metrics_port)
    th = threading.Thread(target=eng.run, kwargs={"duration_s": duration_s})
    th.start()
    assert eng.setup_done.wait(30)
    return eng, th


def _wait_flat_and_stop(sim, key: str, eng, th) -> list[dict]:
    deadline = time.monotonic() + 20
    while D(sim.positions(key)[0]["positionAmt"]) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    eng.stop("test end")
    th.join(30)
    return sim.orders_of(key)


def _assert_flattened_reduce_only(sim, key: str, orders: list[dict]) -> None:
    flat = [o for o in orders if o["type"] == "MARKET"]
    assert flat and all(o["reduceOnly"] for o in flat) and flat[-1]["status"] == "FILLED"
    assert D(sim.positions(key)[0]["positionAmt"]) == 0
    assert not [o for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def test_margin_limit_kills_and_flattens_reduce_only():
    """A margin-ratio limit the first fill crosses: the engine kills, cancels every
    order and closes the position with a reduce-only market order."""
    key = "m" * 64
    with _sim(seed=4) as sim:
        eng, th = _engine(sim, key, "10000", 5, 60.0, max_position=0.01, max_margin_ratio=0.0001,
                          metrics_port=0)
        try:
            deadline = time.monotonic() + 30
            while not eng.risk.killed and time.monotonic() < deadline:
                if eng.qm is not None and eng.qm.open_quotes()[0] is not None:
                    bid = eng.qm.open_quotes()[0]
                    sim.inject_trade(str(bid.price), "5", buyer_maker=True)     # a sell hits our bid
                time.sleep(0.1)
            assert eng.risk.killed and "margin ratio" in eng.risk.status()["kill_reason"]
            import urllib.request

            from prometheus_client.parser import text_string_to_metric_families
            with urllib.request.urlopen(eng.metrics.url, timeout=10) as r:
                fam = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
            assert fam["hftmm_margin_ratio"].samples[0].value >= 0.0001      # what tripped the kill
            assert fam["hftmm_wallet_balance"].samples[0].value > 9000
        finally:
            orders = _wait_flat_and_stop(sim, key, eng, th)
        _assert_flattened_reduce_only(sim, key, orders)


def test_the_margin_limit_trips_before_the_exchange_liquidates():
    """The simulator liquidates at its own margin ratio of 100 %; a mark walked down
    step by step trips FuturesRisk (limit 80 %) while the position is still open."""
    with _sim(seed=2, margin_call_ratio="0.99") as sim:
        key = "l" * 64
        sim.add_account(key, hmac_secret="x", balances={"USDT": "1000"})
        gw = BinanceFuturesGateway(SYM, HmacSigner(key, "x"), rest_url=sim.rest_url, ws_url=sim.ws_url,
                                   leverage=20)
        ev = Events()
        gw.start(ev)
        try:
            ev.wait_kind("account")
            gw.place_order({"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.250",
                            "newClientOrderId": "open"})
            ev.wait(lambda it: any(e.kind == "account_position" for e in it))
            fr = FuturesRisk(SYM, gw.brackets, max_margin_ratio=0.8, min_liquidation_distance=None, max_leverage=None)
            for e in ev.of("account_position"):
                fr.on_account_update(e.data)
            assert fr.size == D("0.250")
            mark = D(sim.positions(key)[0]["markPrice"])
            tripped_at = None
            for _ in range(400):
                mark = (mark * D("0.999")).quantize(D("0.1"))
                sim.set_mark_price(str(mark))
                open_on_exchange = D(sim.positions(key)[0]["positionAmt"]) != 0
                if fr.check(mark)[0] == "kill" and tripped_at is None:
                    tripped_at = mark
                    assert open_on_exchange          # detected before the exchange liquidates
                if not open_on_exchange:
                    break
            assert tripped_at is not None and mark < tripped_at
            assert sim.stats()["trading"]["engine"]["liquidations"] == 1
        finally:
            sim.set_mark_price(None)
            gw.stop()


def test_exchange_funding_fee_enters_the_traders_pnl():
    """Testnet/live: Binance's FUNDING_FEE (ACCOUNT_UPDATE, the wallet's change ``bc``)
    goes into the trader's cash, so the PnL and the loss limits count it."""
    from hftmm.execution.margin import LeverageBrackets
    from hftmm.simulator.futures import DEFAULT_BRACKETS
    from hftmm.simulator.rest import exchange_info
    from test_restart_orders import ScriptedGateway, ev

    gw = ScriptedGateway()
    gw.brackets = LeverageBrackets.from_api(DEFAULT_BRACKETS)
    info = exchange_info("usdm", SYM, "0.10", "0.001", int(time.time() * 1000))
    eng = LiveEngine(TradingConfig(symbol=SYM, market="usdm"), RiskConfig(max_position=0.05), mode="testnet",
                     gateway=gw, exchange_info=info)
    eng._setup()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    eng._sink(ev("open_orders", orders=[]))
    eng._sink(ev("account", gw.read_tag(), totalWalletBalance="1000.00000000",
                 positions=[{"symbol": SYM, "positionSide": "BOTH", "positionAmt": "0.020", "entryPrice": "60000.0"}]))
    assert abs(eng.trader.position * eng.lot - 0.02) < 1e-12 and eng.futures_risk.size == D("0.020")
    cash = eng.trader.cash
    eng._sink(ev("account_position", e="ACCOUNT_UPDATE", E=1, T=1, m="FUNDING_FEE",
                 B=[{"a": "USDT", "wb": "999.88000000", "cw": "999.88000000", "bc": "-0.12000000"}], P=[]))
    assert abs(eng.trader.funding - 0.12) < 1e-12 and abs((cash - eng.trader.cash) - 0.12) < 1e-12
    assert eng.futures_risk.wallet == D("999.88")


def test_futures_risk_reads_v3_accounts_and_ignores_stale_snapshots():
    """GET /fapi/v3/account has no entry price: it is (notional - unrealizedProfit) /
    positionAmt; a snapshot older than an ACCOUNT_UPDATE already applied is ignored."""
    from hftmm.execution.margin import LeverageBrackets
    from hftmm.simulator.futures import DEFAULT_BRACKETS

    fr = FuturesRisk(SYM, LeverageBrackets.from_api(DEFAULT_BRACKETS))
    # short 0.05 entered at 60000, mark 60100: notional -3005, unrealised -5
    fr.on_account({"totalWalletBalance": "1000.0", "assets": [{"asset": "USDT", "updateTime": 100}],
                   "positions": [{"symbol": SYM, "positionSide": "BOTH", "positionAmt": "-0.050",
                                  "notional": "-3005.0", "unrealizedProfit": "-5.0", "updateTime": 100}]})
    assert (fr.size, fr.entry) == (D("-0.050"), D("60000"))
    st = fr.state(D("60100"))
    assert st.equity == D("995.0") and fr.check(D("60100")) == (None, "")
    fr.on_account_update({"e": "ACCOUNT_UPDATE", "T": 200, "m": "ORDER",
                          "B": [{"a": "USDT", "wb": "990.0", "cw": "990.0", "bc": "0"}],
                          "P": [{"s": SYM, "pa": "-0.080", "ep": "60010.0", "mt": "cross", "iw": "0", "ps": "BOTH"}]})
    fr.on_account({"totalWalletBalance": "1000.0", "assets": [{"asset": "USDT", "updateTime": 150}],
                   "positions": [{"symbol": SYM, "positionSide": "BOTH", "positionAmt": "-0.050",
                                  "notional": "-3005.0", "unrealizedProfit": "-5.0", "updateTime": 150}]})
    assert (fr.size, fr.entry, fr.wallet, fr.stale) == (D("-0.080"), D("60010.0"), D("990.0"), 1)


def test_usdm_testnet_session_under_order_and_user_stream_faults_keeps_the_exact_position():
    """Lost, failed, timed-out, refused and delayed order answers, a dropped user stream
    and an expired listenKey during a session that trades: every outcome is resolved
    (queries, reconciles), the session ends with nothing open on the exchange, and the
    engine's position is the exchange's positionAmt, to the lot."""
    key = "q" * 64
    faults = [("drop_answer", {"hold_s": 1.5}), ("error_after", {}), ("timeout_after", {}), ("unavailable", {}),
              ("delay", {"ms": 300.0})]
    with _sim(seed=6) as sim:
        sim.add_account(key, hmac_secret="x", balances={"USDT": "10000"})
        gw = BinanceFuturesGateway(SYM, HmacSigner(key, "x"), rest_url=sim.rest_url, ws_url=sim.ws_url,
                                   leverage=5, request_timeout_s=1.0, backoff_initial_s=0.05)
        trading = TradingConfig(symbol=SYM, market="usdm", gamma=0.01, order_size=0.002, k=5.0,
                                estimate_intensity=False, quote_refresh_interval=0.05)
        risk = RiskConfig(max_position=0.02, latency_threshold_ms=5000.0, max_orders_per_second=50.0,
                          max_daily_loss=1e6, max_drawdown=1.0)
        eng = LiveEngine(trading, risk, mode="testnet", gateway=gw, rest_url=sim.rest_url, ws_url=sim.ws_url)
        th = threading.Thread(target=eng.run, kwargs={"duration_s": 14.0})
        th.start()
        assert eng.setup_done.wait(30)
        t0 = time.monotonic()
        n = 0
        while th.is_alive() and time.monotonic() - t0 < 11.0:
            kind, params = faults[n % len(faults)]
            sim.inject_order_fault(kind, **params)
            q = eng.qm.open_quotes() if eng.qm is not None else (None, None)
            if n % 3 == 0 and q[0] is not None:
                sim.inject_trade(str(q[0].price), "0.001", buyer_maker=True)        # part of our bid fills
            elif n % 3 == 1 and q[1] is not None:
                sim.inject_trade(str(q[1].price), "0.001", buyer_maker=False)       # part of our ask fills
            if n == 8:
                sim.close_user_streams(key)                                          # the stream drops
            if n == 16:
                sim.terminate_user_streams(key)                                      # listenKeyExpired
            n += 1
            time.sleep(0.4)
        th.join(60)
        assert not th.is_alive()
        orders = sim.orders_of(key)
        exch_pos = D(sim.positions(key)[0]["positionAmt"])
    assert sim.stats()["trading"]["order_faults"], "no fault was applied"
    assert eng.unconfirmed == []
    assert not [o for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    assert gw.subscriptions >= 3                                  # the first, after the drop, after the expiry
    assert sum(1 for o in orders if D(o["executedQty"]) > 0) >= 2
    assert D(eng.trader.position) * D(eng.lot_s) == exch_pos


def test_forced_liquidation_scenario_the_engine_kills_before_the_exchange_liquidates():
    """The mark walks down on the simulator (its markPrice stream carries it): the
    engine's margin limit (min_liquidation_distance 5 %) kills and flattens reduce-only
    while the simulator's own liquidation (at 100 %) has not happened."""
    key = "z" * 64
    with _sim(seed=8) as sim:
        eng, th = _engine(sim, key, "120", 10, 90.0, max_position=0.006, max_daily_loss=1e6, max_drawdown=1.0,
                          max_leverage=None)
        try:
            deadline = time.monotonic() + 30
            while D(sim.positions(key)[0]["positionAmt"]) < D("0.004") and time.monotonic() < deadline:
                bid = eng.qm.open_quotes()[0] if eng.qm is not None else None
                if bid is not None:
                    sim.inject_trade(str(bid.price), "1", buyer_maker=True)       # our bids fill
                time.sleep(0.2)
            with eng.lock:                      # hold the long: no quotes (and fills) from here
                eng.risk.set_condition("test", "test: holding the position")
            time.sleep(0.5)
            size = D(sim.positions(key)[0]["positionAmt"])
            assert size >= D("0.004")
            mark = D(sim.positions(key)[0]["markPrice"])
            deadline = time.monotonic() + 60
            while not eng.risk.killed and time.monotonic() < deadline:
                mark = (mark * D("0.97")).quantize(D("0.1"))
                sim.set_mark_price(str(mark))
                assert not sim.stats()["trading"]["engine"].get("liquidations"), "the exchange liquidated first"
                assert D(sim.positions(key)[0]["positionAmt"]) == size
                time.sleep(1.1)                                                   # markPrice@1s carries it
            assert eng.risk.killed and "liquidation price" in eng.risk.status()["kill_reason"]
        finally:
            orders = _wait_flat_and_stop(sim, key, eng, th)
            sim.set_mark_price(None)
    assert sim.stats()["trading"]["engine"].get("liquidations", 0) == 0
    assert not [o for o in orders if o["clientOrderId"].startswith("autoclose-")]
    _assert_flattened_reduce_only(sim, key, orders)
