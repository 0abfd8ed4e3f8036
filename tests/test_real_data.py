"""Real Binance captures replayed through decoder + sync + book: no gap, and the
rebuilt best bid/ask (prices and sizes) equal every bookTicker carrying the same
update id. Spot (hftbacktest collector, cryptofeed) and USD-M (cryptofeed)."""
import os

import pytest

from hftmm.captures import (CaptureStats, decoder_units, group_by_symbol, read_collector,
                            read_cryptofeed, read_exchange_info)
from hftmm.verify import verify_messages

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_spot_btcusdt_hftbacktest_capture():
    stats = CaptureStats()
    msgs = list(read_collector(os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz"),
                               symbol="BTCUSDT", stats=stats))
    assert stats.malformed == 0 and not stats.truncated and len(msgs) == 41249
    # quantities are printed with 8 decimals and are not all multiples of the
    # 0.00001 stepSize (levels aggregate orders), so lots of 1e-8
    rep = verify_messages(msgs, "0.01", "0.00000001", symbol="BTCUSDT")
    assert rep.market == "spot"
    assert rep.malformed == 0 and rep.gaps == 0 and rep.resyncs == 0 and rep.crossed == 0
    assert rep.snapshots == 1 and not rep.unrecovered
    assert rep.ticker_mismatches == 0, rep.mismatch_examples
    # 564 of the 28040 bookTickers carry the final update id u of a depth event
    # (counted independently from the raw lines); every one of them matches
    assert rep.ticker_checks == 564 and rep.book_tickers == 28040
    assert rep.trades > 0 and rep.applied > 3000


@pytest.mark.parametrize("market,prefix", [("spot", "BINANCE"), ("usdm", "BINANCE_FUTURES")])
def test_cryptofeed_captures(market, prefix):
    info = read_exchange_info(os.path.join(DATA, "cryptofeed", f"{prefix}.0"))
    msgs = read_cryptofeed(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0"),
                           os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0"))
    by_symbol = group_by_symbol(msgs)
    assert len(by_symbol) == 4
    total_checks = 0
    for sym, sym_msgs in by_symbol.items():
        tick, unit = decoder_units(info, sym)
        if market == "spot":
            # the 2021 spot snapshots hold a few deep levels off today's tick grid
            # (orders placed before a tick-size change): decode at 1e-8
            tick = "0.00000001"
        rep = verify_messages(sym_msgs, tick, unit, symbol=sym)
        assert rep.market == market, sym
        assert rep.malformed == 0, rep.malformed_examples
        assert rep.gaps == 0 and rep.resyncs == 0 and rep.crossed == 0, (sym, rep)
        assert rep.snapshots == 1 and not rep.unrecovered, sym
        assert rep.ticker_mismatches == 0, (sym, rep.mismatch_examples)
        assert rep.applied > 0
        total_checks += rep.ticker_checks
    assert total_checks > 0


@pytest.mark.parametrize("market,prefix", [("spot", None), ("usdm", "BINANCE_FUTURES")])
def test_loss_figures_on_real_captures(market, prefix):
    """Messages lost / expected and update ids lost / expected, separately, on real
    streams with every 40th (USD-M: 8th) depth message removed: the figures equal the count of
    what was removed (a real message carries ~50 ids on spot, thousands on USD-M,
    so the two rates differ)."""
    import json

    if market == "spot":
        msgs = list(read_collector(os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz"),
                                   symbol="BTCUSDT"))
        tick, unit = "0.01", "0.00000001"
    else:
        info = read_exchange_info(os.path.join(DATA, "cryptofeed", f"{prefix}.0"))
        by = group_by_symbol(read_cryptofeed(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0"),
                                             os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0")))
        sym = max(by, key=lambda s: len(by[s]))
        msgs = by[sym]
        tick, unit = decoder_units(info, sym)
    clean = verify_messages(msgs, tick, unit)
    assert clean.messages_lost == 0 and clean.ids_lost == 0 and clean.message_loss_rate == 0.0
    assert clean.messages_expected == clean.depth_updates
    kept, removed, removed_ids, n = [], 0, 0, 0
    every = 40 if market == "spot" else 8
    for m in msgs:
        obj = json.loads(m.payload)
        d = obj.get("data", obj)
        if isinstance(d, dict) and d.get("e") == "depthUpdate":
            n += 1
            if n % every == every // 2:
                removed += 1
                removed_ids += d["u"] - (d["U"] - 1 if market == "spot" else d["pu"])
                continue
        kept.append(m)
    rep = verify_messages(kept, tick, unit)
    assert removed >= 5
    assert rep.messages_lost == removed and rep.messages_expected == clean.messages_expected
    assert rep.ids_lost == removed_ids and rep.ids_expected == clean.ids_expected
    assert rep.message_loss_rate == pytest.approx(removed / clean.messages_expected)
    assert rep.id_loss_rate == pytest.approx(removed_ids / clean.ids_expected)
