"""hftcore.binance: real captures, every message shape, malformed frames, and a
differential test against the json-based twin (hftmm.reference.binance)."""
import json
import os
import random
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hftcore
from hftcore import binance as hb
from hftmm.reference import binance as rb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import binance_frames as bf  # noqa: E402

NAUTILUS = os.path.join(bf.DATA, "nautilus-samples")
NO_ID = hftcore.NO_ID
MS = 1_000_000


def _nautilus(name):
    with open(os.path.join(NAUTILUS, name), "rb") as f:
        return f.read()


def outcome(dec, frame):
    """("ok", type, dict) or ("err", field) for a C or twin decoder."""
    try:
        msg = dec.decode(frame)
    except (hb.DecodeError, rb.DecodeError) as e:
        return ("err", e.field)
    return ("ok",) + bf.as_dict(msg)


# ------------------------------------------------------------ real samples
def test_nautilus_spot_trade():
    m = hb.BinanceDecoder("0.01", "0.0001").decode(_nautilus("ws_spot_trade.json"))
    assert isinstance(m, hb.Trade) and not m.is_aggregate
    assert (m.stream, m.symbol) == ("ethusdt@trade", "ETHUSDT")
    assert m.trade_id == m.first_trade_id == m.last_trade_id == 705291099
    assert (m.price, m.qty) == (414974, 4387)
    assert m.trade_time_ns == 1639351062243 * MS and m.event_time_ns == 1639351062244 * MS
    assert m.buyer_is_maker and m.side == hftcore.BID and m.trade_type is None


def test_nautilus_spot_agg_trade():
    m = hb.BinanceDecoder("0.01", "0.00001").decode(_nautilus("ws_spot_agg_trade.json"))
    assert isinstance(m, hb.Trade) and m.is_aggregate
    assert (m.trade_id, m.first_trade_id, m.last_trade_id) == (226532, 228423, 228423)
    assert (m.price, m.qty) == (163246, 34305)
    assert not m.buyer_is_maker and m.side == hftcore.ASK


def test_nautilus_spot_book_ticker_with_old_t_e():
    m = hb.BinanceDecoder("0.01", "0.0001").decode(_nautilus("ws_spot_ticker_book.json"))
    assert isinstance(m, hb.BookTicker)
    assert (m.update_id, m.bid_px, m.bid_qty, m.ask_px, m.ask_qty) == (
        12711621188, 450724, 23595, 450725, 28457)
    assert m.event_time_ns == 1646199228123 * MS and m.transaction_time_ns == 1646199228121 * MS


def test_nautilus_futures_book_ticker():
    m = hb.BinanceDecoder("0.0001", "0.01").decode(_nautilus("ws_futures_book_ticker.json"))
    assert isinstance(m, hb.BookTicker) and m.stream is None and m.symbol == "BNBUSDT"
    assert (m.bid_px, m.bid_qty, m.ask_px, m.ask_qty) == (253519, 3121, 253652, 4066)


def test_nautilus_futures_depth_update():
    m = hb.BinanceDecoder("0.01", "0.001").decode(_nautilus("ws_futures_depth_update.json"))
    assert isinstance(m, hb.DepthUpdate)
    assert (m.first_id, m.last_id, m.prev_id) == (390497796, 390497878, 390497794)
    assert m.transaction_time_ns == 1571889248276 * MS
    assert m.bid_ticks.tolist() == [740389, 740390, 740400, 740485, 740543]
    assert m.bid_lots.tolist() == [2, 3906, 1428, 5239, 2562]
    assert m.asks.tolist()[0] == [740596, 3340] and m.asks.shape == (5, 2)
    assert m.ask_lots.dtype == np.int64


def test_nautilus_rest_snapshot():
    m = hb.BinanceDecoder("0.01", "0.00001").decode(_nautilus("http_spot_market_depth.json"))
    assert isinstance(m, hb.DepthSnapshot)
    assert m.last_update_id == 14527958487 and (m.n_bids, m.n_asks) == (10, 10)
    assert m.bids[0].tolist() == [6065000, 213] and m.asks[-1].tolist() == [6065994, 96170]
    assert m.event_time_ns == 0 and m.stream is None and m.symbol is None


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NAUTILUS) if n.endswith(".json")))
def test_nautilus_samples_match_twin(name):
    frame = _nautilus(name)
    assert outcome(hb.BinanceDecoder("0.00000001", "0.00000001"), frame) == outcome(
        rb.BinanceDecoder("0.00000001", "0.00000001"), frame)


def test_hftbacktest_capture_matches_twin():
    dec = hb.BinanceDecoder("0.01", "0.00000001")
    twin = rb.BinanceDecoder("0.01", "0.00000001")
    kinds = {}
    n = 0
    for _, frame in bf.hftbacktest_lines():
        got = dec.decode(frame)
        assert bf.as_dict(got) == bf.as_dict(twin.decode(frame)), frame[:200]
        kinds[type(got).__name__] = kinds.get(type(got).__name__, 0) + 1
        n += 1
    assert n == 41249
    assert kinds == {"BookTicker": 28040, "Trade": 9757, "DepthUpdate": 3451, "DepthSnapshot": 1}


@pytest.mark.parametrize("prefix", ["BINANCE", "BINANCE_FUTURES"])
def test_cryptofeed_capture_matches_twin(prefix):
    filters = bf.cryptofeed_filters(prefix)
    kinds = {}
    for _, frame in bf.cryptofeed_ws(prefix):
        sym = json.loads(frame)["stream"].split("@")[0].upper()
        tick = filters[sym][0]  # real tick size; quantities on a fine lot (see below)
        got = hb.BinanceDecoder(tick, "0.00000001").decode(frame)
        assert bf.as_dict(got) == bf.as_dict(rb.BinanceDecoder(tick, "0.00000001").decode(frame))
        name = type(got).__name__ if not isinstance(got, hb.UnknownEvent) else got.event_type
        kinds[name] = kinds.get(name, 0) + 1
    assert kinds.get("DepthUpdate") and kinds.get("BookTicker") and kinds.get("Trade")
    assert kinds.get("kline")
    # REST snapshots: deep levels sit off today's tick/lot grid (tick sizes change
    # over time), so these decode on a fine 1e-8 grid
    for _url, frame in bf.cryptofeed_http(prefix):
        got = hb.BinanceDecoder("0.00000001", "0.00000001").decode(frame)
        assert isinstance(got, hb.DepthSnapshot) and got.n_bids > 0
        assert bf.as_dict(got) == bf.as_dict(
            rb.BinanceDecoder("0.00000001", "0.00000001").decode(frame))
        if prefix == "BINANCE_FUTURES":
            assert got.event_time_ns > 0 and got.transaction_time_ns > 0


def test_real_snapshot_off_grid_is_refused_with_position():
    url, frame = next(bf.cryptofeed_http("BINANCE"))
    sym = url.split("symbol=")[1].split("&")[0]
    tick, lot = bf.cryptofeed_filters("BINANCE")[sym]
    with pytest.raises(hb.DecodeError) as ei:
        hb.BinanceDecoder(tick, lot).decode(frame)
    e = ei.value
    assert e.field in ("bids", "asks") and "not a whole multiple of" in str(e)
    assert frame[e.offset] == '"'


# ------------------------------------------------------------ shapes
DEPTH = {"e": "depthUpdate", "E": 1723161255208, "s": "BTCUSDT", "U": 10, "u": 12,
         "b": [["61837.63000000", "3.78826000"], ["61837.62", "0.617"]],
         "a": [["61837.64000000", "0.00000000"]]}


def _dec():
    return hb.BinanceDecoder("0.01", "0.00001")


def test_wrapper_and_plain_forms_agree():
    plain = json.dumps(DEPTH)
    wrapped = json.dumps({"stream": "btcusdt@depth@100ms", "data": DEPTH})
    rev = json.dumps({"data": DEPTH, "stream": "btcusdt@depth@100ms"})
    a, b, c = _dec().decode(plain), _dec().decode(wrapped), _dec().decode(rev)
    assert a.stream is None and b.stream == c.stream == "btcusdt@depth@100ms"
    da, db = a.to_dict(), b.to_dict()
    da.pop("stream"), db.pop("stream")
    assert da == db and c.to_dict() == b.to_dict()
    assert a.bid_ticks.tolist() == [6183763, 6183762] and a.bid_lots.tolist() == [378826, 61700]
    assert a.ask_lots.tolist() == [0]
    assert a.prev_id == NO_ID and a.transaction_time_ns == 0


def test_input_types():
    frame = json.dumps(DEPTH)
    d = _dec()
    ref = d.decode(frame).to_dict()
    for f in (frame.encode(), bytearray(frame.encode()), memoryview(frame.encode()), frame):
        assert d.decode(f).to_dict() == ref
    with pytest.raises(TypeError):
        d.decode(12)


def test_key_order_and_whitespace():
    d = _dec()
    ref = d.decode(json.dumps(DEPTH)).to_dict()
    items = list(DEPTH.items())
    rnd = random.Random(7)
    for _ in range(50):
        rnd.shuffle(items)
        assert d.decode(bf.dump(dict(items), rnd)).to_dict() == ref
    spaced = ' \n{ "e" :\t"depthUpdate" , "E":1723161255208,"s" : "BTCUSDT","U":10,"u":12,' \
             '"b" : [ [ "61837.63000000" , "3.78826000" ] , ["61837.62","0.617"]\n],' \
             '"a":[[ "61837.64000000","0.00000000"]] }\r\n'
    assert d.decode(spaced).to_dict() == ref


def test_unknown_keys_with_any_value_are_skipped():
    d = _dec()
    ref = d.decode(json.dumps(DEPTH)).to_dict()
    extra = dict(DEPTH)
    extra.update({
        "st": 1, "ps": "BTCUSDT", "neg": -12.5e-3, "big": 10**30, "t1": True, "f1": False,
        "n1": None, "esc": 'a\\"b\u00e9\u2603\n\t\\u0041', "nested": {"b": [[1, 2, {"a": []}]],
                                                                    "e": "trade", "x": [[], {}]},
        "arr": [1, "two", [3, [4, {"five": None}]]], "é": "ü",
    })
    for ensure_ascii in (True, False):
        assert d.decode(json.dumps(extra, ensure_ascii=ensure_ascii)).to_dict() == ref


def test_field_types_dispatch():
    d = _dec()
    agg = d.decode('{"e":"aggTrade","E":1,"s":"X","a":5,"p":"1.00","q":"2","f":7,"l":9,"T":2,"m":false}')
    assert (agg.trade_id, agg.first_trade_id, agg.last_trade_id, agg.qty) == (5, 7, 9, 200000)
    bbo = d.decode('{"u":5,"s":"X","b":"1.00","B":"1","a":"2.00","A":"3"}')
    assert isinstance(bbo, hb.BookTicker) and (bbo.bid_px, bbo.ask_px) == (100, 200)
    assert bbo.event_time_ns == 0
    old = d.decode('{"e":"trade","E":1,"s":"X","t":3,"p":"1.00","q":"2","b":88,"a":99,"T":2,"m":true,"M":true}')
    assert old.trade_id == 3 and old.side == hftcore.BID
    fut = d.decode('{"e":"trade","E":1,"T":2,"s":"X","t":3,"p":"1.00","q":"2","X":"MARKET","m":false}')
    assert fut.trade_type == "MARKET" and fut.side == hftcore.ASK


def test_microseconds():
    d = hb.BinanceDecoder("0.01", "0.00001", time_unit="us")
    m = d.decode('{"e":"trade","E":1723161255343123,"s":"X","t":3,"p":"1.00","q":"2","T":1723161255342999,"m":true}')
    assert m.event_time_ns == 1723161255343123000 and m.trade_time_ns == 1723161255342999000
    with pytest.raises(ValueError):
        hb.BinanceDecoder("0.01", "0.00001", time_unit="s")
    with pytest.raises(ValueError):
        hb.BinanceDecoder("0.00", "0.00001")


@pytest.mark.parametrize("frame, event_type", [
    ('{"e":"serverShutdown","E":1}', "serverShutdown"),
    ('{"stream":"x@kline_1m","data":{"e":"kline","E":1,"s":"BTC","k":{"t":1,"o":"0.1"}}}', "kline"),
    ('{"e":"markPriceUpdate","E":1,"s":"BTC","p":"-11794.15123","P":"1","r":"0.0001","T":1}',
     "markPriceUpdate"),
    ('{"e":"24hrTicker","E":1,"s":"BTC","p":"-94.99","b":"0.000000001","a":"x"}', "24hrTicker"),
])
def test_unknown_event_types(frame, event_type):
    m = _dec().decode(frame)
    assert isinstance(m, hb.UnknownEvent) and m.event_type == event_type
    assert m.payload_keys == () and m.to_events(1).shape == (0,)
    assert event_type in repr(m)


@pytest.mark.parametrize("frame, keys", [
    ('{"result":null,"id":1}', ("result", "id")),
    ('{ }', ()),
    ('{"code": 2, "msg": "Invalid \\"request\\""}', ("code", "msg")),
    ('{"u":5,"b":"1.00"}', ("u", "b")),
    ('{"lastUpdateId":5}', ("lastUpdateId",)),
    ('{"k\\u00e9y":1,"data":[1]}', ("k\u00e9y", "data")),
    ('{"stream":"a","result":null}', ("stream", "result")),
])
def test_shapeless_objects(frame, keys):
    m = _dec().decode(frame)
    assert isinstance(m, hb.UnknownEvent) and m.event_type == "" and m.payload_keys == keys
    assert outcome(_dec(), frame) == outcome(rb.BinanceDecoder("0.01", "0.00001"), frame)


def test_symbol_and_stream_are_cached_strs():
    d = _dec()
    f = json.dumps({"stream": "btcusdt@depth@100ms", "data": DEPTH})
    a, b = d.decode(f), d.decode(f)
    assert a.symbol == "BTCUSDT" and a.symbol is b.symbol and a.stream is b.stream
    other = d.decode(f.replace("BTCUSDT", "ETHUSDT"))
    assert other.symbol == "ETHUSDT"


def test_repr_mentions_ids():
    r = repr(_dec().decode(json.dumps(DEPTH)))
    assert "DepthUpdate" in r and "U=10" in r and "u=12" in r and "BTCUSDT" in r


# ------------------------------------------------------------ to_events
def test_to_events_depth():
    m = _dec().decode(json.dumps({**DEPTH, "pu": 9, "T": 1723161255207}))
    ev = m.to_events(123)
    assert ev.dtype == hftcore.EVENT_DTYPE and len(ev) == 3
    assert ev["local_ts"].tolist() == [123] * 3
    assert ev["exch_ts"].tolist() == [1723161255207 * MS] * 3       # T (the matching engine's), not E
    assert _dec().decode(json.dumps(DEPTH)).to_events(0)["exch_ts"][0] == 1723161255208 * MS  # spot: E
    assert ev["px"].tolist() == [6183763, 6183762, 6183764]
    assert ev["qty"].tolist() == [378826, 61700, 0]
    assert ev["side"].tolist() == [hftcore.BID, hftcore.BID, hftcore.ASK]
    assert ev["kind"].tolist() == [hftcore.EV_DEPTH] * 3
    assert ev["flags"].tolist() == [hftcore.EVF_BEGIN, 0, hftcore.EVF_END]
    assert (ev["first_id"] == 10).all() and (ev["last_id"] == 12).all() and (ev["prev_id"] == 9).all()
    assert bytes(ev.tobytes()[59:64]) == b"\0" * 5  # padding zeroed


def test_to_events_empty_update_and_snapshot():
    m = _dec().decode(json.dumps({**DEPTH, "b": [], "a": []}))
    ev = m.to_events(5)
    assert len(ev) == 1 and ev["flags"][0] == hftcore.EVF_EMPTY | hftcore.EVF_BEGIN | hftcore.EVF_END
    assert (ev["px"][0], ev["qty"][0], ev["side"][0]) == (0, 0, 0)
    assert ev["prev_id"][0] == NO_ID and ev["first_id"][0] == 10
    assert m.bids.shape == (0, 2) and m.bid_ticks.shape == (0,)
    s = _dec().decode('{"lastUpdateId":77,"E":5,"T":4,"bids":[["1.00","1"]],"asks":[]}')
    ev = s.to_events(1)
    assert len(ev) == 1 and ev["kind"][0] == hftcore.EV_SNAPSHOT
    assert ev["flags"][0] == hftcore.EVF_BEGIN | hftcore.EVF_END
    assert (ev["first_id"][0], ev["last_id"][0], ev["exch_ts"][0]) == (77, 77, 4 * MS)      # T first
    s2 = _dec().decode('{"lastUpdateId":77,"bids":[],"asks":[]}').to_events(1)
    assert s2["flags"][0] & hftcore.EVF_EMPTY and s2["exch_ts"][0] == 0


def test_to_events_trade_and_bbo():
    t = _dec().decode('{"e":"aggTrade","E":9,"s":"X","a":5,"p":"1.00","q":"2","f":7,"l":9,"T":8,"m":true}')
    ev = t.to_events(1)
    assert len(ev) == 1 and ev["kind"][0] == hftcore.EV_TRADE and ev["side"][0] == hftcore.BID
    assert (ev["first_id"][0], ev["last_id"][0], ev["exch_ts"][0]) == (7, 9, 8 * MS)
    assert (ev["px"][0], ev["qty"][0]) == (100, 200000)
    assert ev["flags"][0] == hftcore.EVF_BEGIN | hftcore.EVF_END
    b = _dec().decode('{"u":5,"s":"X","b":"1.00","B":"1","a":"2.00","A":"3","T":7}')
    ev = b.to_events(1)
    assert ev["kind"].tolist() == [hftcore.EV_BBO] * 2 and ev["side"].tolist() == [0, 1]
    assert ev["px"].tolist() == [100, 200] and ev["qty"].tolist() == [100000, 300000]
    assert ev["last_id"].tolist() == [5, 5] and ev["exch_ts"].tolist() == [7 * MS] * 2
    assert ev["flags"].tolist() == [hftcore.EVF_BEGIN, hftcore.EVF_END]
    fb = _dec().decode('{"e":"bookTicker","u":5,"E":9,"T":7,"s":"X","b":"1.00","B":"1","a":"2.00","A":"3"}')
    assert fb.to_events(0)["exch_ts"].tolist() == [7 * MS] * 2     # USD-M: T, the matching engine's time


def test_to_events_whole_capture_is_consistent():
    dec = hb.BinanceDecoder("0.01", "0.00000001")
    chunks = [dec.decode(f).to_events(ts) for ts, f in bf.hftbacktest_lines()]
    ev = np.concatenate(chunks)
    assert ((ev["flags"] & hftcore.EVF_BEGIN) != 0).sum() == len(chunks)
    assert ((ev["flags"] & hftcore.EVF_END) != 0).sum() == len(chunks)
    assert set(np.unique(ev["kind"]).tolist()) == {1, 2, 3, 4}


# ------------------------------------------------------------ malformed
GOOD = json.dumps(DEPTH)


@pytest.mark.parametrize("frame, field, needle", [
    ("", None, "empty frame"),
    ("   ", None, "empty frame"),
    ("{", None, "end of frame"),
    (GOOD[:-1], None, "end of frame"),
    (GOOD[:GOOD.index('"61837.62"') + 5], "b", "unterminated string"),
    (GOOD[:GOOD.index('"61837.62"') - 1], "b", "end of frame"),
    (GOOD + "x", None, "trailing data"),
    (GOOD + "{}", None, "trailing data"),
    ("[1,2]", None, "not a JSON object"),
    ('"str"', None, "not a JSON object"),
    ("nul", None, "not a JSON object"),
    ('{"e":"depthUpdate",}', None, "expected a string key"),
    ('{"e" "x"}', "e", "expected ':'"),
    ('{"e":"x" "E":1}', None, "expected ','"),
    ('{"x":tru}', None, "invalid literal"),
    ('{"x":[1,]}', None, "expected a JSON value"),
    ('{"x":01}', None, "expected ','"),
    ('{"x":-}', None, "invalid number"),
    ('{"x":1.}', None, "digit expected"),
    ('{"x":"a\\q"}', None, "invalid escape"),
    ('{"x":"\\u12g4"}', None, "\\u escape"),
    ('{"x":"a\x01b"}', None, "control character"),
    ('{"x":' + "[" * 200 + "]" * 200 + "}", None, "nesting too deep"),
    (GOOD.replace('"u": 12, ', ""), "u", "missing required field"),
    (GOOD.replace('"U": 10, ', ""), "U", "missing required field"),
    (GOOD.replace('"E": 1723161255208, ', ""), "E", "missing required field"),
    (GOOD.replace('"a": [', '"x": ['), "a", "missing required field"),
    (GOOD.replace('"u": 12', '"u": "12"'), "u", "expected an integer, got a string"),
    (GOOD.replace('"u": 12', '"u": 12.5'), "u", "int64"),
    (GOOD.replace('"u": 12', '"u": 1e3'), "u", "int64"),
    (GOOD.replace('"u": 12', '"u": 9223372036854775808'), "u", "int64"),
    (GOOD.replace('"E": 1723161255208', '"E": 9223372036854775'), "E", "nanosecond range"),
    (GOOD.replace('"s": "BTCUSDT"', '"s": 5'), "s", "expected a string"),
    (GOOD.replace('"e": "depthUpdate"', '"e": 5'), "e", "expected a string"),
    (GOOD.replace('"a": [[', '"a": "x", "zz": [['), "a", "expected an array"),
    (GOOD.replace('"61837.62"', '"61837.625"'), "b", 'level 1 price "61837.625": not a whole multiple of tick 0.01'),
    (GOOD.replace('"0.617"', '"0.6171234"'), "b", "qty \"0.6171234\": not a whole multiple of lot 0.00001"),
    (GOOD.replace('"0.617"', '"-0.617"'), "b", "negative"),
    (GOOD.replace('"0.617"', '"1e5"'), "b", "not a plain decimal"),
    (GOOD.replace('"0.617"', '""'), "b", "no digits"),
    (GOOD.replace('"0.617"', '"99999999999999999"'), "b", "out of the int64 range"),
    (GOOD.replace('["61837.62", "0.617"]', '["61837.62", "0.617", "1"]'), "b", "2-element"),
    (GOOD.replace('["61837.62", "0.617"]', '["61837.62"]'), "b", "two strings"),
    (GOOD.replace('["61837.62", "0.617"]', '[61837.62, "0.617"]'), "b", "two strings"),
    (GOOD.replace('["61837.62", "0.617"]', '"61837.62"'), "b", "[price, qty]"),
    (GOOD.replace('["61837.62", "0.617"]', '{}'), "b", "[price, qty]"),
    ('{"e":"trade","E":1,"s":"X","t":3,"p":1.5,"q":"2","T":2,"m":true}', "p", "expected a decimal string"),
    ('{"e":"trade","E":1,"s":"X","t":3,"p":"1.001","q":"2","T":2,"m":true}', "p", "not a whole multiple of tick"),
    ('{"e":"trade","E":1,"s":"X","t":3,"p":"1.00","q":"2","T":2,"m":"true"}', "m", "expected a boolean"),
    ('{"e":"trade","E":1,"s":"X","t":3,"p":"1.00","q":"2","T":2}', "m", "missing"),
    ('{"e":"trade","E":1,"s":"X","t":3,"p":"1.00","q":"2","T":2,"m":true,"X":1}', "X", "expected a string"),
    ('{"e":"aggTrade","E":1,"s":"X","a":3,"p":"1.00","q":"2","T":2,"m":true,"l":4}', "f", "missing"),
    ('{"e":"bookTicker","E":1,"s":"X","u":3,"b":"1.00","B":"2","a":"1.00"}', "A", "missing"),
    ('{"u":3,"b":"1.00","B":"2","a":"1.00","A":null}', "A", "expected a decimal string, got null"),
    ('{"lastUpdateId":1,"bids":[]}', "asks", "missing"),
    ('{"lastUpdateId":"1","bids":[],"asks":[]}', "lastUpdateId", "expected an integer"),
    ('{"stream":"x","data":{"e":"depthUpdate"}}', "U", "missing"),
    ('{"stream":"x","data":{"e":"depthUpdate"', "data", "end of frame"),
])
def test_malformed_frames(frame, field, needle):
    with pytest.raises(hb.DecodeError) as ei:
        _dec().decode(frame)
    e = ei.value
    assert isinstance(e, ValueError)
    assert e.field == field, str(e)
    assert needle in str(e), str(e)
    assert 0 <= e.offset <= len(frame.encode())
    assert f"(at byte {e.offset})" in str(e)
    if field is not None:
        assert f'field "{field}"' in str(e)


def test_decimal_error_message_points_at_the_value():
    frame = GOOD.replace('"61837.62"', '"61837.635"')
    with pytest.raises(hb.DecodeError) as ei:
        _dec().decode(frame)
    e = ei.value
    assert str(e) == (f'field "b" level 1 price "61837.635": not a whole multiple of tick 0.01 '
                      f"(at byte {e.offset})")
    assert frame[e.offset:e.offset + 11] == '"61837.635"'


def test_errors_leave_decoder_usable():
    d = _dec()
    for _ in range(3):
        with pytest.raises(hb.DecodeError):
            d.decode(GOOD.replace('"0.617"', '"0.6171234"'))
        assert d.decode(GOOD).to_dict() == _dec().decode(GOOD).to_dict()


def test_many_levels_grow_scratch():
    d = _dec()
    big = dict(DEPTH)
    big["b"] = [[f"{i}.01", f"{i}.5"] for i in range(5000)]
    big["a"] = [[f"{i}.02", "1"] for i in range(3000)]
    m = d.decode(json.dumps(big))
    assert m.n_bids == 5000 and m.n_asks == 3000
    assert m.bid_ticks[-1] == 499901 and m.bid_lots[-1] == 499950000 and m.ask_ticks[-1] == 299902
    small = d.decode(GOOD)
    assert small.n_bids == 2 and m.n_bids == 5000  # earlier message untouched


# ------------------------------------------------------------ differential
@settings(max_examples=400, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from([(2, 5), (8, 8), (0, 0), (4, 3)]),
       st.sampled_from(["ms", "us"]))
def test_random_frames_match_twin(rnd, exps, unit):
    px_exp, qty_exp = exps
    tick = "1" if px_exp == 0 else "0." + "0" * (px_exp - 1) + "1"
    lot = "1" if qty_exp == 0 else "0." + "0" * (qty_exp - 1) + "1"
    frame = bf.random_frame(rnd, px_exp, qty_exp)
    c = outcome(hb.BinanceDecoder(tick, lot, unit), frame)
    r = outcome(rb.BinanceDecoder(tick, lot, unit), frame)
    assert c == r, frame
    assert c[0] == "ok"


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_random_off_grid_frames_match_twin(rnd):
    # decoded with a coarser grid than generated: errors must agree (field too)
    frame = bf.random_frame(rnd, 4, 4)
    c = outcome(hb.BinanceDecoder("0.01", "0.5"), frame)
    r = outcome(rb.BinanceDecoder("0.01", "0.5"), frame)
    assert c == r, frame


# ------------------------------------------------------------ fuzz
def _mutations(frame: bytes, rnd: random.Random):
    yield frame[: rnd.randrange(len(frame) + 1)]
    b = bytearray(frame)
    for _ in range(rnd.randint(1, 4)):
        b[rnd.randrange(len(b))] = rnd.randrange(256)
    yield bytes(b)
    b = bytearray(frame)
    i = rnd.randrange(len(b))
    b[i:i] = bytes([rnd.choice(b'{}[]",:\\0123456789.-eE \x00\xff')])
    yield bytes(b)
    i, j = sorted(rnd.randrange(len(frame) + 1) for _ in range(2))
    yield frame[:i] + frame[j:]


def test_fuzz_never_crashes_and_agrees_with_twin():
    # a quick in-suite mutation run (the full differential fuzz is tests/fuzz):
    # every outcome agrees with the json+Decimal twin, accept or refuse
    rnd = random.Random(20240808)
    seeds = [f for _, f in zip(range(300), (f for _, f in bf.hftbacktest_lines()))]
    seeds += [f.encode() for _, f in bf.cryptofeed_ws("BINANCE_FUTURES")][:200]
    seeds += [_nautilus(n) for n in os.listdir(NAUTILUS) if n.endswith(".json")]
    dec = hb.BinanceDecoder("0.00000001", "0.00000001")
    twin = rb.BinanceDecoder("0.00000001", "0.00000001")
    n = 0
    disagreements = []
    for _ in range(3000):
        for frame in _mutations(rnd.choice(seeds), rnd):
            try:
                m = dec.decode(frame)
            except hb.DecodeError as e:
                assert 0 <= e.offset <= len(frame)
                m = None
            else:
                assert isinstance(m, hb.Message)
                m.to_events(0)
            n += 1
            try:
                r = twin.decode(frame)
            except rb.DecodeError:
                r = None
            if (m is None) != (r is None) or (m is not None and bf.as_dict(m) != bf.as_dict(r)):
                disagreements.append(frame)
    assert n == 12000
    assert not disagreements, disagreements[:5]


# ------------------------------------------------------------ issue 15 reproducers
TRADE = '{"e":"trade","E":5,"s":"X","t":1,"p":"1.00","q":"1.000","T":4,"m":true}'
SNAP = '{"lastUpdateId":5,"bids":[["1.00","1.000"]],"asks":[["2.00","2.000"]]}'


def _d3():
    return hb.BinanceDecoder("0.01", "0.001")


def _both(frame):
    """outcome of the C decoder; the twin (json+Decimal) must agree (on the
    field too, except for text the twin's json.loads refuses: field None there)."""
    c = outcome(_d3(), frame)
    r = outcome(rb.BinanceDecoder("0.01", "0.001"), frame)
    assert c == r or (r == ("err", None) and c[0] == "err"), (frame, c, r)
    return c


def test_depth_update_ignores_a_bids_key():
    depth = ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.00","1.000"]],"a":[],'
             '"bids":[["9.00","9.000"],["8.00","8.000"]]}')
    m = _d3().decode(depth)
    assert m.bids.tolist() == [[100, 1000]] and m.n_asks == 0
    # also when "bids" comes first, and when it is not levels at all
    m = _d3().decode(depth.replace('"bids":[["9.00","9.000"],["8.00","8.000"]]', '"asks":[["7.00","7.000"]]'))
    assert m.asks.shape == (0, 2)
    for stray in ('"bids":[[1,2]]', '"bids":[["x","y"]]', '"asks":"x"', '"bids":[["1.005","1"]]'):
        f = '{"bids":[["9.00","9.000"]],' + stray + "," + depth[1:].replace(',"bids":[["9.00","9.000"],["8.00","8.000"]]', "")
        f = f.replace('"bids":[["9.00","9.000"]],"bids"', '"bids"')
        assert _both(f)[0] == "ok", f
        assert _d3().decode(f).bids.tolist() == [[100, 1000]]


def test_snapshot_ignores_b_and_a_keys():
    for extra in ('"b":[["9.00","9.000"]]', '"a":[["9.00","9.000"]]', '"b":[[1]]', '"a":"x"',
                  '"b":[["9.00","9.000"]],"a":[["9.00","9.000"]]'):
        for f in ('{' + extra + ',' + SNAP[1:], SNAP[:-1] + ',' + extra + '}'):
            m = _d3().decode(f)
            assert isinstance(m, hb.DepthSnapshot), f
            assert m.bids.tolist() == [[100, 1000]] and m.asks.tolist() == [[200, 2000]], f
            assert _both(f)[0] == "ok"


def test_unread_level_keys_never_fail_other_messages():
    # a stray levels-looking key in a message that does not read it
    for f in ('{"e":"kline","E":1,"s":"X","b":[["bad"]],"k":{}}',
              '{"e":"trade","E":5,"s":"X","t":1,"p":"1.00","q":"1.000","T":4,"m":true,"b":[["1.001","x"]]}',
              '{"u":5,"b":"1.00","B":"1","a":"2.00","A":"3","bids":[["x"]]}',
              '{"result":null,"id":1,"asks":[[1,2,3]]}'):
        assert _both(f)[0] == "ok", f


def test_read_level_keys_still_fail():
    f = '{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.005","1"]],"a":[],"bids":[]}'
    assert _both(f) == ("err", "b")
    with pytest.raises(hb.DecodeError, match=r'field "b" level 0 price "1.005": not a whole multiple'):
        _d3().decode(f)
    assert _both(SNAP.replace('"2.000"', '2')) == ("err", "asks")


@pytest.mark.parametrize("frame, field", [
    ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[],"b":[["1.00","1.000"]]}', "b"),
    ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[],"U":3}', "U"),
    ('{"e":"trade","e":"trade","E":5,"s":"X","t":1,"p":"1.00","q":"1.000","T":4,"m":true}', "e"),
    (SNAP[:-1] + ',"bids":[]}', "bids"),
    (TRADE[:-1] + ',"M":true,"M":false}', "M"),            # an unknown key, also
    (TRADE[:-1] + ',"x":1,"\\u0078":2}', "x"),              # the same key, escaped
    (TRADE[:-1] + ',"\\u0070":"2.00"}', "p"),               # a known key, escaped
    (TRADE[:-1] + ',"\\ud83d\\ude00":1,"😀":2}', "😀"),
    ('{"stream":"x@trade","data":' + TRADE + ',"stream":"y@trade"}', "stream"),
    ('{"stream":"x@trade","data":' + TRADE + ',"data":{}}', "data"),
    ('{"stream":"x@trade","data":' + TRADE[:-1] + ',"q":"2.000"}}', "q"),
    ('{"stream":"x@trade","data":' + TRADE[:-1] + ',"k":{},"k":[]}}', "k"),
    # many unknown keys (the sorting check) with one repeated, escaped or not
    (TRADE[:-1] + "".join(f',"k{i}":{i}' for i in range(40)) + ',"k7":0}', "k7"),
    (TRADE[:-1] + "".join(f',"k{i}":{i}' for i in range(40)) + ',"\\u006b39":0}', "k39"),
    ('{"result":null,"id":1,"id":2}', "id"),
])
def test_duplicate_keys_are_malformed(frame, field):
    assert _both(frame) == ("err", field)
    with pytest.raises(hb.DecodeError, match="duplicate key") as ei:
        _d3().decode(frame)
    # the offset is the repeated key's opening quote
    assert frame.encode()[ei.value.offset:ei.value.offset + 1] == b'"'
    ev, st = _d3().decode_lines(b"7 " + frame.encode() + b"\n")
    assert st["malformed"] == 1 and st["messages"] == 0 and len(ev) == 0
    assert "duplicate key" in st["errors"][0][1]


@pytest.mark.parametrize("frame", [
    # objects the message is not read from may repeat keys (they are skipped)
    TRADE[:-1] + ',"k":{"x":1,"x":2}}',
    TRADE[:-1] + ',"k":[{"b":1,"b":2}]}',
    '{"result":null,"data":{"x":1,"x":2}}',                   # "data" of no combined stream
    TRADE[:-1] + "".join(f',"k{i}":{i}' for i in range(300)) + "}",
    TRADE[:-1] + "".join(f',"\\u006b{i}":{i}' for i in range(30)) + "}",
    TRADE[:-1] + ',"\\u0078":1,"\\u0079":2,"xy":3,"z":4}',
])
def test_repeated_keys_elsewhere_are_fine(frame):
    assert _both(frame)[0] == "ok"


@pytest.mark.parametrize("frame, check", [
    ('{"\\u0065":"trade","\\u0045":5,"s":"X","\\u0074":1,"p":"1.00","q":"1.000","T":4,"\\u006d":true}',
     lambda m: isinstance(m, hb.Trade) and m.trade_id == 1 and m.event_time_ns == 5 * MS),
    ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"\\u0062":[["1.00","1.000"]],"\\u0061":[["2.00","2.000"]]}',
     lambda m: m.bids.tolist() == [[100, 1000]] and m.asks.tolist() == [[200, 2000]]),
    ('{"\\u006castUpdateId":5,"\\u0062ids":[["1.00","1.000"]],"asks":[]}',
     lambda m: isinstance(m, hb.DepthSnapshot) and m.last_update_id == 5 and m.n_bids == 1),
    ('{"u":5,"\\u0062":"1.00","\\u0042":"1","\\u0061":"2.00","\\u0041":"3"}',
     lambda m: isinstance(m, hb.BookTicker) and (m.bid_px, m.ask_qty) == (100, 3000)),
    # escaped values: the event type, decimals (in levels and fields), symbol, stream
    ('{"e":"depth\\u0055pdate","E":1,"s":"X","U":1,"u":2,"b":[["1\\u002e0\\u0030","\\u0031"]],"a":[]}',
     lambda m: isinstance(m, hb.DepthUpdate) and m.bids.tolist() == [[100, 1000]]),
    ('{"e":"trade","E":5,"s":"B\\u0054C","t":1,"p":"\\u0031.00","q":"1.00\\u0030","T":4,"m":true,"X":"M\\u0041RKET"}',
     lambda m: (m.symbol, m.price, m.qty, m.trade_type) == ("BTC", 100, 1000, "MARKET")),
    ('{"stream":"btc\\u0040trade","data":{"e":"aggTrade","E":5,"s":"X","a":1,"p":"1.00","q":"1","f":1,"l":2,"T":4,'
     '"m":true,"X":5}}',
     lambda m: m.stream == "btc@trade" and m.is_aggregate and m.trade_type is None),
    ('{"\\u0073tream":"x","\\u0064ata":' + TRADE + '}', lambda m: m.stream == "x" and m.trade_id == 1),
])
def test_escaped_keys_and_values_read_as_json_does(frame, check):
    m = _d3().decode(frame)
    assert check(m), m
    assert _both(frame)[0] == "ok"
    ev, st = _d3().decode_lines(b"3 " + frame.encode() + b"\n")
    assert st["malformed"] == 0 and np.array_equal(ev, m.to_events(3))


def test_escaped_decimal_errors_point_at_the_value():
    f = TRADE.replace('"1.00"', '"1.00\\u0035"')
    with pytest.raises(hb.DecodeError, match=r'field "p" "1.00\\u0035": not a whole multiple of tick') as ei:
        _d3().decode(f)
    assert f[ei.value.offset:].startswith('"1.00\\u0035"')
    assert _both(TRADE.replace('"1.00"', '"\\u002d1.00"')) == ("err", "p")    # "-1.00" spelled


def test_lone_surrogate_in_a_str_frame_is_a_decode_error():
    f = TRADE.replace('"s":"X"', '"s":"X\ud800"')      # a real lone surrogate in the str
    assert "\ud800" in f
    with pytest.raises(hb.DecodeError, match="lone surrogate U\\+D800") as ei:
        _d3().decode(f)
    assert ei.value.offset == f.index("\ud800") and ei.value.field is None
    assert _both(f)[0] == "err"
    # an escaped lone surrogate is valid JSON: json.loads reads it as that str
    m = _d3().decode(TRADE.replace('"s":"X"', '"s":"X\\ud800"'))
    assert m.symbol == "X\ud800"


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
                                 b"\x80", b"\xf8\x88\x80\x80\x80", b"\xe0\x80\xaf"])
@pytest.mark.parametrize("where", ["symbol", "unknown value", "key", "nested"])
def test_invalid_utf8_is_refused(bad, where):
    t = TRADE.encode()
    if where == "symbol":
        f = t.replace(b'"s":"X"', b'"s":"X' + bad + b'"')
    elif where == "unknown value":
        f = t[:-1] + b',"zz":"' + bad + b'"}'
    elif where == "key":
        f = t[:-1] + b',"z' + bad + b'":1}'
    else:
        f = t[:-1] + b',"zz":[{"k":"' + bad + b'"}]}'
    with pytest.raises(hb.DecodeError, match="invalid UTF-8") as ei:
        _d3().decode(f)
    assert f[ei.value.offset:ei.value.offset + len(bad)] == bad
    assert _both(f)[0] == "err"
    ev, st = _d3().decode_lines(b"1 " + f + b"\n")
    assert st["malformed"] == 1 and "invalid UTF-8" in st["errors"][0][1]


def test_valid_utf8_of_every_length_is_read():
    for ch in ("\u00e9", "\u20ac", "\U0001F600", "\U0010FFFF", "\u07ff", "\ud7ff", "\ue000"):
        f = TRADE.replace('"s":"X"', f'"s":"X{ch}","z{ch}":"{ch * 9}"').encode()
        m = _d3().decode(f)
        assert m.symbol == "X" + ch
        assert _both(f)[0] == "ok"


@pytest.mark.parametrize("frame, field", [
    ('{"e":"depthUpdate","E":1,"s":"X","U":-1,"u":2,"b":[],"a":[]}', "U"),
    ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":-2,"b":[],"a":[]}', "u"),
    ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"pu":-1,"b":[],"a":[]}', "pu"),
    ('{"e":"depthUpdate","E":-1,"s":"X","U":1,"u":2,"b":[],"a":[]}', "E"),
    ('{"e":"depthUpdate","E":1,"T":-1,"s":"X","U":1,"u":2,"b":[],"a":[]}', "T"),
    ('{"lastUpdateId":-5,"bids":[],"asks":[]}', "lastUpdateId"),
    ('{"lastUpdateId":5,"E":-9223372036854775808,"bids":[],"asks":[]}', "E"),
    (TRADE.replace('"t":1', '"t":-1'), "t"),
    (TRADE.replace('"T":4', '"T":-4'), "T"),
    (TRADE.replace('"E":5', '"E":-5'), "E"),
    ('{"e":"aggTrade","E":5,"s":"X","a":-1,"p":"1.00","q":"1","f":1,"l":2,"T":4,"m":true}', "a"),
    ('{"e":"aggTrade","E":5,"s":"X","a":1,"p":"1.00","q":"1","f":-1,"l":2,"T":4,"m":true}', "f"),
    ('{"e":"aggTrade","E":5,"s":"X","a":1,"p":"1.00","q":"1","f":1,"l":-2,"T":4,"m":true}', "l"),
    ('{"u":-5,"b":"1.00","B":"1","a":"2.00","A":"3"}', "u"),
    ('{"e":"bookTicker","u":5,"E":-1,"b":"1.00","B":"1","a":"2.00","A":"3"}', "E"),
])
def test_negative_ids_and_times_are_refused(frame, field):
    assert _both(frame) == ("err", field)
    with pytest.raises(hb.DecodeError, match=f'field "{field}": expected a non-negative integer, got -'):
        _d3().decode(frame)
    # "-0" is the integer 0 for json.loads: accepted
    assert _both(re.sub(r":-[0-9]+", ":-0", frame, count=1))[0] == "ok"


def test_decoder_prices_on_a_grid_beyond_value_times_ten_to_the_e():
    # issue 15's decimal reproducer inside a frame: tick 0.00000025
    d = hb.BinanceDecoder("0.00000025", "1")
    f = '{"e":"trade","E":5,"s":"X","t":1,"p":"2036854775808","q":"1","T":4,"m":true}'
    assert d.decode(f).price == 8147419103232000000
    assert outcome(d, f) == outcome(rb.BinanceDecoder("0.00000025", "1"), f)


def test_strided_memoryview_frame():
    raw = bytes(b for c in TRADE.encode() for b in (c, 0))    # every other byte is the frame
    m = _d3().decode(memoryview(raw)[::2])
    assert isinstance(m, hb.Trade) and m.trade_id == 1
