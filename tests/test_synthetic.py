"""The synthetic market: deterministic, consistent (ids, book never crossed at
message ends, replayed events rebuild the generator's book), BTCUSDT-like
statistics, and Binance-format rendering that our own decoder + sync accept."""
import numpy as np
import pytest

from hftcore import EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVF_BEGIN, EVF_END, EVENT_DTYPE
from hftcore.book import L2Book
from hftcore.synth import SyntheticMarket
from hftmm.synthetic import BinanceRenderer, DecimalFormatter, SyntheticConfig, generate, generate_day


def run(seed=3, seconds=600.0):
    m = SyntheticMarket(seed=seed)
    snap = m.initial_snapshot()
    ev = m.generate(seconds)
    return m, snap, ev


def test_deterministic_and_seeded():
    _, s1, e1 = run(5, 120)
    _, s2, e2 = run(5, 120)
    _, s3, e3 = run(6, 120)
    assert s1.tobytes() == s2.tobytes() and e1.tobytes() == e2.tobytes()
    assert e1.tobytes() != e3.tobytes()
    # chunking does not change the stream
    m = SyntheticMarket(seed=5)
    m.initial_snapshot()
    parts = [m.generate(30.0) for _ in range(4)]
    assert b''.join(p.tobytes() for p in parts) == e1.tobytes()


def test_events_are_consistent():
    m, snap, ev = run(11, 900)
    assert ev.dtype == EVENT_DTYPE and len(ev) > 100_000
    assert (snap["kind"] == EV_SNAPSHOT).all() and snap["flags"][0] & EVF_BEGIN and snap["flags"][-1] & EVF_END
    assert (np.diff(ev["exch_ts"]) >= 0).all() and (np.diff(ev["local_ts"]) >= 0).all()
    assert (ev["local_ts"] >= ev["exch_ts"]).all()
    book = L2Book(0.1)
    b = snap[snap["side"] == 0]
    a = snap[snap["side"] == 1]
    book.load_snapshot(b["px"], b["qty"], a["px"], a["qty"])
    depth = ev[ev["kind"] == EV_DEPTH]
    # each depth message: ids [first, last] contiguous with the previous message's last (prev_id)
    begins = np.flatnonzero(depth["flags"] & EVF_BEGIN)
    firsts = depth["first_id"][begins]
    lasts = depth["last_id"][begins]
    prevs = depth["prev_id"][begins]
    assert (firsts[1:] == lasts[:-1] + 1).all() and (prevs[1:] == lasts[:-1]).all()
    assert prevs[0] == snap["last_id"][0] and firsts[0] == snap["last_id"][0] + 1
    assert ((lasts - firsts + 1) == np.diff(np.append(begins, len(depth)))).all()
    crossed = 0
    for rec in ev:
        if rec["kind"] == EV_DEPTH:
            book.apply(int(rec["side"]), int(rec["px"]), int(rec["qty"]))
            if rec["flags"] & EVF_END:
                crossed += book.is_crossed()
    assert crossed == 0
    for side in (0, 1):
        t1, q1 = book.levels(side)
        t2, q2 = m.book.levels(side)
        assert (t1 == t2).all() and (q1 == q2).all()


def test_statistics_are_btcusdt_like():
    m, snap, ev = run(2024, 3600)
    rate = len(ev) / 3600
    assert 100 < rate < 2000                      # events per second
    trades = ev[ev["kind"] == EV_TRADE]
    assert 5 < len(trades) / 3600 < 200           # trades per second
    assert (trades["qty"] > 0).all()
    # spread of one to a few ticks, sampled each second
    book = L2Book(0.1)
    b, a = snap[snap["side"] == 0], snap[snap["side"] == 1]
    book.load_snapshot(b["px"], b["qty"], a["px"], a["qty"])
    spreads, mids, depths = [], [], []
    next_t = ev["exch_ts"][0]
    for rec in ev:
        if rec["kind"] == EV_DEPTH:
            book.apply(int(rec["side"]), int(rec["px"]), int(rec["qty"]))
        elif rec["kind"] == EV_TRADE:
            depths.append(abs(rec["px"] - book.mid_ticks()))
        if rec["exch_ts"] >= next_t:
            spreads.append(book.best_ask() - book.best_bid())
            mids.append(book.mid())
            next_t += 1_000_000_000
    spreads = np.array(spreads)
    assert np.median(spreads) <= 3 and np.percentile(spreads, 99) <= 10
    # trades reach deeper levels with a roughly exponentially decaying frequency
    d = np.array(depths)
    frac = [np.mean(d >= x) for x in (0.5, 1.5, 2.5, 3.5)]
    assert frac[0] == 1.0 and frac[1] > frac[2] > frac[3] > 0
    ratios = np.array(frac[1:]) / np.array(frac[:-1])
    assert (ratios < 0.6).all()
    # volatility clusters: |1-minute returns| are autocorrelated
    r = np.abs(np.diff(np.array(mids)[::60]))
    assert np.corrcoef(r[:-1], r[1:])[0, 1] > 0.05


def test_generate_day_chunks_bounded():
    chunks = generate(SyntheticConfig(seed=1), seconds=1200.0, chunk_seconds=300.0)
    first = next(chunks)
    assert (first["kind"] == EV_SNAPSHOT).all()
    rest = list(chunks)
    assert len(rest) == 4 and all(len(c) > 0 for c in rest)
    d1 = next(generate_day("2024-08-08"))
    d2 = next(generate_day("2024-08-09"))
    assert d1.tobytes() != d2.tobytes()


def test_bad_parameters():
    with pytest.raises(ValueError, match="stationary"):
        SyntheticMarket(mkt_alpha=3.0, mkt_beta=2.0)
    with pytest.raises(ValueError, match="sigma0"):
        SyntheticMarket(sigma0=0)
    m = SyntheticMarket()
    with pytest.raises(RuntimeError):
        m.generate(1.0)


def test_decimal_formatter():
    assert DecimalFormatter("0.01", 8)(6183763) == "61837.63000000"
    assert DecimalFormatter("0.10")(618376) == "61837.6"
    assert DecimalFormatter("0.10", 2)(618376) == "61837.60"
    assert DecimalFormatter("0.5")(201) == "100.5"
    assert DecimalFormatter("10")(12) == "120"
    assert DecimalFormatter("0.001", 8)(25) == "0.02500000"


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_rendered_stream_formats(market):
    m, snap, ev = run(8, 60)
    r = BinanceRenderer(market=market)
    r.feed(snap)
    out = r.feed(ev) + r.flush(ev["exch_ts"][-1] + 10**9)
    kinds = {c for _, c, _ in out}
    assert kinds == {"depth", "trade", "aggTrade", "bookTicker"}
    assert all(out[i][0] <= out[i + 1][0] for i in range(len(out) - 1))
    import json
    depth = [json.loads(p) for _, c, p in out if c == "depth"]
    assert all(d["e"] == "depthUpdate" and d["s"] == "BTCUSDT" for d in depth)
    for a, b in zip(depth, depth[1:]):
        assert b["U"] == a["u"] + 1
        if market == "usdm":
            assert b["pu"] == a["u"]
    assert ("pu" in depth[0]) == (market == "usdm")
    # the renderer's book equals the generator's
    for side in (0, 1):
        assert (r.book.levels(side)[0] == m.book.levels(side)[0]).all()
