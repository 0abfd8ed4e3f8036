"""USD-M funding: Binance's funding-rate files read exactly, EV_FUNDING records in the
replay kernel, and a backtest whose PnL moves by exactly rate x position notional at
each funding time."""
from __future__ import annotations

import json
import zipfile
from decimal import Decimal

import numpy as np
import pytest

from hftcore import EV_FUNDING, EVENT_DTYPE, EVF_BEGIN, EVF_END, FUNDING_RATE_SCALE, NO_ID
from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftcore.strategy import Strategy
from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.config import ConfigError, RiskConfig
from hftmm.data.funding import funding_events, read_funding, with_funding
from hftmm.strategy import core
from hftmm.synthetic import day_start_ns

# data.binance.vision futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.csv (its layout)
CSV = """calc_time,funding_interval_hours,last_funding_rate
1704067200000,8,0.00037409
1704096000000,8,0.00022340
1704124800000,8,-0.00010000
"""


def test_read_binance_funding_csv_json_and_zip(tmp_path):
    (tmp_path / "a.csv").write_text(CSV)
    rows = read_funding(str(tmp_path / "a.csv"))
    assert [r.time_ms for r in rows] == [1704067200000, 1704096000000, 1704124800000]
    assert rows[0].rate == Decimal("0.00037409") and rows[2].rate == Decimal("-0.00010000")
    assert all(r.mark_price is None for r in rows)
    # GET /fapi/v1/fundingRate
    js = [{"symbol": "BTCUSDT", "fundingTime": 1704067200000, "fundingRate": "0.00037409",
           "markPrice": "42314.00000000"},
          {"symbol": "ETHUSDT", "fundingTime": 1704067200000, "fundingRate": "0.00010000", "markPrice": "2281.1"},
          {"symbol": "BTCUSDT", "fundingTime": 1704153600000, "fundingRate": "0.00010000", "markPrice": ""}]
    (tmp_path / "b.json").write_text(json.dumps(js))
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("BTCUSDT-fundingRate-2024-01.csv", CSV)
    both = read_funding([str(tmp_path / "b.json"), str(tmp_path / "c.zip")], symbol="BTCUSDT")
    assert [r.time_ms for r in both] == [1704067200000, 1704096000000, 1704124800000, 1704153600000]
    assert both[0].mark_price == Decimal("42314.00000000")      # the JSON's mark price is kept
    assert both[3].mark_price is None
    assert len(read_funding(str(tmp_path), symbol="BTCUSDT")) == 4   # a folder: every file in it
    # a folder of data.binance.vision files of several symbols: only the symbol's
    (tmp_path / "ETHUSDT-fundingRate-2024-01.csv").write_text(CSV.replace("0.00037409", "0.00099999"))
    assert len(read_funding(str(tmp_path), symbol="BTCUSDT")) == 4


def test_bad_funding_files_are_refused_with_what_is_wrong(tmp_path):
    (tmp_path / "x.csv").write_text("time,price\n1,2\n")
    with pytest.raises(ValueError, match="not a Binance funding-rate file"):
        read_funding(str(tmp_path / "x.csv"))
    (tmp_path / "y.csv").write_text("calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,abc\n")
    with pytest.raises(ValueError, match="line 2: funding rate 'abc'"):
        read_funding(str(tmp_path / "y.csv"))
    (tmp_path / "z.csv").write_text(CSV + "1704067200000,8,0.5\n")
    with pytest.raises(ValueError, match="given twice"):
        read_funding(str(tmp_path / "z.csv"))
    with pytest.raises(FileNotFoundError):
        read_funding(str(tmp_path / "none.csv"))


def test_funding_events_are_exact_and_merge_in_receive_order():
    rows = read_funding_text(CSV)
    ev = funding_events(rows, "0.10")
    assert (ev["kind"] == EV_FUNDING).all() and (ev["px"] == 0).all()
    assert ev["qty"][0] == 3740900 and ev["qty"][2] == -1000000       # rate x 1e10, exact
    assert ev["exch_ts"][0] == 1704067200000 * 1_000_000
    chunk = np.zeros(4, dtype=EVENT_DTYPE)
    chunk["local_ts"] = [1704067100000, 1704067200000, 1704100000000, 1704100000001]
    chunk["local_ts"] *= 1_000_000
    early = funding_events(read_funding_text("calc_time,funding_interval_hours,last_funding_rate\n"
                                             "1704000000000,8,0.00010000\n"), "0.10")
    out = list(with_funding([chunk[:2], chunk[2:]], np.concatenate([early, ev]).astype(EVENT_DTYPE)))
    assert [len(c) for c in out] == [3, 3]     # the first before the event at its time; the last after the data
    assert out[0]["kind"][1] == EV_FUNDING and out[1]["kind"][0] == EV_FUNDING
    assert np.all(np.diff(np.concatenate(out)["local_ts"]) >= 0)


def read_funding_text(text: str):
    from hftmm.data.funding import _rows_from_text

    return _rows_from_text(text, "test", None)


class Idle(Strategy):
    """Quotes nothing: only funding moves the cash."""


def _rec(ts, kind, px, qty, side=0, flags=EVF_BEGIN | EVF_END):
    r = np.zeros(1, dtype=EVENT_DTYPE)
    r[0] = (ts, ts, px, qty, 1, 1, NO_ID, kind, side, flags)
    return r


def test_kernel_pays_position_times_mark_times_rate():
    from hftcore import EV_SNAPSHOT

    tick, lot = 0.1, 0.001
    trader = core.trader(RiskConfig(max_position=1.0), tick, lot)
    kernel = ReplayKernel(L2Book("0.1", "0.001"), [(Idle(), trader)], None, -1, 0, False)
    trader.inherit_position(250)                      # 0.25 BTC long
    t = 1_700_000_000_000_000_000
    snap = np.zeros(2, dtype=EVENT_DTYPE)
    snap[0], snap[1] = _rec(t, EV_SNAPSHOT, 500000, 10, 0, EVF_BEGIN)[0], _rec(t, EV_SNAPSHOT, 500010, 10, 1, EVF_END)[0]
    kernel.run(snap)                                 # mid 50000.5: the inherited position enters the cash
    c0 = trader.cash
    rate = Decimal("0.00037409")
    kernel.run(_rec(t + 1, EV_FUNDING, 0, int(rate * FUNDING_RATE_SCALE)))      # no mark: the mid
    paid = 0.25 * 50000.5 * 0.00037409
    assert trader.cash == pytest.approx(c0 - paid, rel=0, abs=1e-9)
    assert trader.funding == pytest.approx(paid, abs=1e-12) and trader.fundings == 1
    # a mark price on the record wins over the mid; a negative rate pays the long
    kernel.run(_rec(t + 2, EV_FUNDING, 499000, -1000000))                      # 49900.0, -0.0001
    assert trader.cash == pytest.approx(c0 - paid + 0.25 * 49900.0 * 0.0001, abs=1e-9)
    assert trader.fundings == 2 and trader.counters()["fundings"] == 2
    # flat: nothing to pay
    flat = core.trader(RiskConfig(max_position=1.0), tick, lot)
    assert flat.apply_funding(50000.0, 0.001) == 0.0 and flat.fundings == 0
    short = core.trader(RiskConfig(max_position=1.0), tick, lot)
    short.inherit_position(-100)
    assert short.apply_funding(50000.0, 0.0001) == pytest.approx(-0.5)          # a short receives
    assert short.cash == pytest.approx(0.5)


def test_usdm_backtest_pnl_moves_by_exactly_the_funding(tmp_path):
    day = "2024-08-08"
    t0 = day_start_ns(day) // 1_000_000
    # funding every 2 minutes of the first 10 (a test schedule; Binance: every 8 h)
    lines = ["calc_time,funding_interval_hours,last_funding_rate"] + \
        [f"{t0 + k * 120_000},8,{r}" for k, r in ((1, "0.00050000"), (2, "-0.00030000"), (3, "0.00100000"),
                                                   (4, "0.00020000"))]
    path = tmp_path / "BTCUSDT-fundingRate-2024-08.csv"
    path.write_text("\n".join(lines) + "\n")
    lines.insert(1, f"{t0 - 8 * 3600_000},8,0.00050000")   # before the data (a monthly file's earlier rows)
    path.write_text("\n".join(lines) + "\n")
    eng = BacktestEngine(synthetic_day_seconds=600)
    base = BacktestConfig(start_date=day, end_date=day, market="usdm", max_position=0.05, order_size=0.01)
    plain = eng.run_backtest(base)
    funded = eng.run_backtest(base.replace(funding_path=str(path)))
    # funding moves cash only: the same decisions and fills (their cash column aside)
    assert plain.trades.drop(columns="cash").equals(funded.trades.drop(columns="cash")) and len(plain.trades) > 0
    assert not plain.trades["cash"].equals(funded.trades["cash"])
    c = funded.counters
    assert c["fundings"] >= 1 and c["funding"] != 0.0
    # the whole difference in PnL is the funding paid, to the cent and far below
    assert funded.performance.total_pnl == pytest.approx(plain.performance.total_pnl - c["funding"], abs=1e-9)
    assert funded.performance.total_funding == c["funding"]
    p = funded.performance
    assert p.pnl_spread + p.pnl_inventory - p.total_fees - p.total_funding == pytest.approx(p.total_pnl, abs=1e-9)
    assert "Spread + Inventory - Fees - Funding" in funded.summary()
    assert "no funding data given" in plain.summary()
    # the replay starts at the data, not at the earlier funding row
    assert int(funded.timeseries["ts"].iloc[0]) == int(plain.timeseries["ts"].iloc[0])
    assert len(funded.timeseries) == len(plain.timeseries)
    # one payment per funding time with a position (the trader's, from the fills it knew of)
    tr = funded.trades
    known = tr["report_ts"].to_numpy()
    pos_at = []
    for k in (1, 2, 3, 4):
        t = (t0 + k * 120_000) * 1_000_000
        before = tr["position_qty"].to_numpy()[known < t]
        pos_at.append(float(before[-1]) if len(before) else 0.0)
    assert c["fundings"] == sum(1 for p_ in pos_at if abs(p_) > 1e-12)


def test_funding_needs_usdm():
    with pytest.raises(ConfigError, match="funding_path"):
        BacktestConfig(market="spot", funding_path="x.csv")
    with pytest.raises(ConfigError, match="funding applies to USD-M"):
        BacktestEngine(synthetic_day_seconds=5).run_backtest(BacktestConfig(funding_path="x.csv"))


def test_cli_backtest_with_funding(tmp_path, capsys):
    from hftmm.cli import main

    t0 = day_start_ns("2024-08-08") // 1_000_000
    path = tmp_path / "f.csv"
    path.write_text(f"calc_time,funding_interval_hours,last_funding_rate\n{t0 + 60_000},8,0.00100000\n")
    assert main(["backtest", "--synthetic-seconds", "120", "--market", "usdm", "--funding", str(path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Spread + Inventory - Fees - Funding" in out and "no funding data given" not in out


def test_mark_price_stream_reveals_each_settlement_once():
    """markPrice@1s: the first update at or after T reveals the settlement, with the rate
    and the mark of the last update before T, stamped with its own receive time; a second
    feed's duplicates, other symbols and broken updates change nothing."""
    from hftmm.data.funding import FundingMerger, MarkFunding, mark_price_update

    mf = MarkFunding("BTCUSDT", "0.10")
    T = 1_700_000_000_000

    def upd(e, t, r, p, s="BTCUSDT"):
        return {"e": "markPriceUpdate", "E": e, "s": s, "p": p, "i": p, "P": p, "r": r, "T": t}

    assert not len(mf.feed(10, upd(T - 2000, T, "0.00010000", "60000.00")))
    assert not len(mf.feed(11, upd(T - 1000, T, "0.00012000", "60010.00")))
    assert not len(mf.feed(12, upd(T - 500, T, "0.5", "1", s="ETHUSDT")))
    assert not len(mf.feed(13, {"e": "markPriceUpdate", "E": T - 400, "s": "BTCUSDT", "p": "x", "r": "1", "T": T}))
    rec = mf.feed(20, upd(T + 1, T + 8 * 3600_000, "0.00030000", "60100.00"))
    assert len(rec) == 1 and rec["kind"][0] == EV_FUNDING and rec["local_ts"][0] == 20
    assert rec["exch_ts"][0] == T * 1_000_000 and rec["px"][0] == 600100            # the last mark before T
    assert rec["qty"][0] == 12 * FUNDING_RATE_SCALE // 100_000                       # 0.00012 exactly
    assert not len(mf.feed(21, upd(T + 1, T + 8 * 3600_000, "0.00030000", "60100.00")))   # the other feed's copy
    assert mf.settlements == 1 and mf.bad == 1
    raw = json.dumps({"stream": "btcusdt@markPrice@1s", "data": upd(T, T, "0", "1")}).encode()
    assert mark_price_update(raw)["E"] == T and mark_price_update(b'{"e":"trade"}') is None
    # merged in by receive time; funding files on top of recorded funding are refused
    m = FundingMerger(rec)
    chunk = np.zeros(3, dtype=EVENT_DTYPE)
    chunk["local_ts"] = [5, 20, 30]
    out = m.merge(chunk)
    assert out["local_ts"].tolist() == [5, 20, 20, 30] and out["kind"][1] == EV_FUNDING and m.pending == 0
    with pytest.raises(ValueError, match="already carry funding"):
        FundingMerger(rec).merge(out)


def test_mark_funding_ignores_a_lagging_feed_and_stale_times():
    from hftmm.data.funding import MarkFunding

    T, T2 = 1_700_000_000_000, 1_700_028_800_000
    up = lambda e, t, p="60000.0": {"e": "markPriceUpdate", "E": e, "s": "BTCUSDT", "p": p, "r": "0.0001", "T": t}  # noqa: E731
    mf = MarkFunding("BTCUSDT", "0.10")
    assert not len(mf.feed(1, up(T - 2000, T))) and not len(mf.feed(2, up(T - 1000, T)))
    assert len(mf.feed(3, up(T + 1, T2))) == 1
    # feed B, more than one update behind: its older copies change nothing
    assert not len(mf.feed(4, up(T - 1000, T))) and not len(mf.feed(5, up(T + 1, T2)))
    # an update past T that still names T (stale) does not settle T again
    assert not len(mf.feed(6, up(T + 2, T))) and mf.settlements == 1
    assert len(mf.feed(7, up(T2, T2 + 8 * 3600_000))) == 1 and mf.settlements == 2


def test_convert_keeps_a_settlement_split_over_two_hourly_files(tmp_path):
    """The recorder rotates hourly and funding falls on the hour: the last update before T
    in one file, the one that reveals it opening the next -- still one settlement."""
    import gzip

    from hftmm.data import store
    from hftmm.data.convert import convert

    T = 1_700_006_400_000            # a funding time (xx:00 UTC)
    ms = 1_000_000

    def agg(i, t):
        return {"e": "aggTrade", "E": t, "a": i, "s": "BTCUSDT", "p": "60000.0", "q": "0.010", "f": i, "l": i,
                "T": t, "m": True}

    def mark(e, t, p):
        return {"stream": "btcusdt@markPrice@1s",
                "data": {"e": "markPriceUpdate", "E": e, "s": "BTCUSDT", "p": p, "i": p, "P": p,
                         "r": "0.00010000", "T": t}}
    a = [(T - 3000, agg(1, T - 3000)), (T - 1000, mark(T - 1000, T, "60123.40")), (T - 500, agg(2, T - 500))]
    b = [(T + 400, mark(T + 400, T + 8 * 3600_000, "60130.00")), (T + 900, agg(3, T + 900))]
    paths = []
    for name, rows in (("a", a), ("b", b)):
        p = tmp_path / f"usdm_btcusdt_{name}.gz"
        with gzip.open(p, "wt") as fh:
            for t, obj in rows:
                fh.write(f"{t * ms} {json.dumps(obj)}\n")
        paths.append(str(p))
    rep = convert(paths, str(tmp_path / "store"), market="usdm", symbol="BTCUSDT", tick_size="0.10",
                  lot_size="0.001", normalize=False)
    assert rep.fundings == {"BTCUSDT": 1}
    ev = np.concatenate(list(store.read_events(str(tmp_path / "store"), "BTCUSDT")))
    f = ev[ev["kind"] == EV_FUNDING]
    assert len(f) == 1 and f["local_ts"][0] == (T + 400) * ms and f["px"][0] == 601234
    assert ev["kind"].tolist().index(EV_FUNDING) == 2        # after the two trades before it, before the third


def test_usdm_backtest_summary_checks_the_margin_along_the_equity_curve(tmp_path):
    """The exchange model does not liquidate: the USD-M summary says, from the equity
    samples and Binance's brackets, how close the account came, where the live margin
    limit would have killed it and where Binance would have liquidated it."""
    from hftmm.execution.margin import DEFAULT_BTCUSDT_BRACKETS, LeverageBrackets, margin_ratio

    day = "2024-08-08"
    eng = BacktestEngine(synthetic_day_seconds=600)
    base = BacktestConfig(start_date=day, end_date=day, market="usdm", max_position=0.05, order_size=0.01,
                          max_daily_loss=1e9, max_drawdown=1.0)
    roomy = eng.run_backtest(base)
    p = roomy.performance
    ts = roomy.timeseries
    # the vectorised path is the Decimal arithmetic of hftmm.execution.margin, sample by sample
    b = LeverageBrackets.from_api(DEFAULT_BTCUSDT_BRACKETS)
    i = int(np.argmax([abs(x) for x in ts["position_qty"]]))
    row = ts.iloc[i]
    d = lambda x: Decimal(repr(float(x)))  # noqa: E731
    want = margin_ratio(b, d(row.position_qty), d(row.mid), d(row.mid), d(row.equity))
    assert 0 < p.max_margin_ratio < 0.01 and p.max_margin_ratio >= float(want) - 1e-12
    assert "never at the live limit (50%)" in roomy.summary()
    # the same market on 40 USDT of capital: the live limit trips, then Binance's liquidation
    thin = eng.run_backtest(base.replace(initial_capital=40.0, max_margin_ratio=0.2))
    q = thin.performance
    assert q.max_margin_ratio >= 1 and 0 <= q.margin_limit_at_s <= q.liquidation_at_s
    assert "would have LIQUIDATED the account" in thin.summary()
    assert BacktestEngine(synthetic_day_seconds=60).run_backtest(
        base.replace(symbol="ETHUSDT")).performance.to_dict()["max_margin_ratio"] is None  # no brackets: n/a
