"""BinanceDecoder.decode_lines: collector lines -> event records, equal to
decode(json).to_events(ns) line by line, on real captures, chunked, and fuzzed."""
import gzip
import os
import random

import numpy as np
import pytest

from hftcore import EVENT_DTYPE, EV_SNAPSHOT
from hftcore.binance import BinanceDecoder, DecodeError
from hftmm.captures import group_by_symbol, read_cryptofeed

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
INT64_MAX = 2**63 - 1


def _reference(dec, raw):
    """Per-line decode + to_events; (records, malformed line numbers)."""
    out, bad = [], []
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line:
            continue
        ts, sep, js = line.partition(b" ")
        if not sep or not ts.isdigit() or len(ts) > 19 or int(ts) > INT64_MAX:
            bad.append(lineno)
            continue
        try:
            out.append(dec.decode(js).to_events(int(ts)))
        except DecodeError:
            bad.append(lineno)
    ev = np.concatenate(out) if out else np.zeros(0, EVENT_DTYPE)
    return ev, bad


@pytest.fixture(scope="module")
def capture():
    with gzip.open(CAPTURE, "rb") as fh:
        return fh.read()


def test_real_capture_equals_to_events(capture):
    dec = BinanceDecoder("0.01", "0.00000001")
    ev, st = dec.decode_lines(capture, final=True)
    ref, bad = _reference(dec, capture)
    assert ev.dtype == EVENT_DTYPE and not bad
    assert np.array_equal(ev, ref)
    assert st["lines"] == st["messages"] == 41249 and st["malformed"] == 0
    assert st["consumed"] == len(capture) and st["events"] == len(ev)
    assert st["snapshot"] == 1 and st["book_ticker"] == 28040
    snap = ev[ev["kind"] == EV_SNAPSHOT]
    assert len(snap) > 0 and (snap["first_id"] == snap["last_id"]).all()


def test_chunks_with_carried_tail_equal_whole(capture):
    dec = BinanceDecoder("0.01", "0.00000001")
    whole, _ = dec.decode_lines(capture, final=True)
    rnd = random.Random(5)
    parts, tail, pos, lines = [], b"", 0, 0
    while pos < len(capture):
        n = rnd.randint(1, 200_000)
        chunk = tail + capture[pos:pos + n]
        pos += n
        ev, st = dec.decode_lines(chunk, final=pos >= len(capture), line_offset=lines)
        lines += st["lines"]
        tail = chunk[st["consumed"]:]
        parts.append(ev)
    assert tail == b"" and lines == 41249
    assert np.array_equal(np.concatenate(parts), whole)


def test_partial_last_line_is_left_unless_final():
    dec = BinanceDecoder("0.01", "0.001")
    buf = (b'1 {"e":"trade","E":1,"s":"X","t":1,"p":"1.00","q":"1.000","T":2,"m":true}\n'
           b'2 {"e":"trade","E":1,"s":"X","t":2,"p":"1.00",')
    ev, st = dec.decode_lines(buf)
    assert len(ev) == 1 and st["consumed"] == buf.index(b"\n") + 1 and st["malformed"] == 0
    ev, st = dec.decode_lines(buf, final=True)
    assert len(ev) == 1 and st["malformed"] == 1 and st["errors"][0][0] == 2
    assert st["consumed"] == len(buf)


def test_malformed_lines_counted_with_line_numbers(capture):
    dec = BinanceDecoder("0.01", "0.00000001")
    lines = capture.split(b"\n")[:2000]
    lines[10] = b"garbage"
    lines[20] = lines[20][:-7]                   # truncated JSON
    lines[30] = b"\x00\xff\xfe binary junk"
    lines[40] = lines[40].replace(b'"', b"'", 3)
    lines[50] = b""                              # empty lines are skipped silently
    buf = b"\n".join(lines)
    ev, st = dec.decode_lines(buf, final=True, line_offset=100)
    ref, bad = _reference(dec, buf)
    assert np.array_equal(ev, ref)
    assert st["malformed"] == len(bad) == 4
    assert [n for n, _ in st["errors"]] == [100 + b for b in bad] == [111, 121, 131, 141]
    assert st["empty"] == 1


def test_max_errors_and_never_raises():
    dec = BinanceDecoder("0.01", "0.001")
    buf = b"x\n" * 100
    ev, st = dec.decode_lines(buf, max_errors=3)
    assert len(ev) == 0 and st["malformed"] == 100 and len(st["errors"]) == 3


def test_out_array_stops_before_a_line_that_does_not_fit(capture):
    dec = BinanceDecoder("0.01", "0.00000001")
    whole, _ = dec.decode_lines(capture, final=True)
    out = np.zeros(7000, EVENT_DTYPE)
    got, pos, lines = [], 0, 0
    while pos < len(capture):
        ev, st = dec.decode_lines(capture[pos:], out=out, final=True, line_offset=lines)
        assert st["consumed"] > 0
        pos += st["consumed"]
        lines += st["lines"]
        got.append(ev.copy())
    assert lines == 41249 and np.array_equal(np.concatenate(got), whole)
    with pytest.raises(ValueError):
        dec.decode_lines(capture, out=np.zeros(10, np.int64))


def test_symbol_filter_and_snapshot_lines():
    dec = BinanceDecoder("0.01", "0.001")
    buf = (b'1 {"lastUpdateId":5,"bids":[["1.00","1.000"]],"asks":[["2.00","1.000"],["3.00","2.000"]]}\n'
           b'2 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00",'
           b'"q":"1.000","T":2,"m":false}}\n'
           b'3 {"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1.00",'
           b'"q":"1.000","T":2,"m":false}}\n'
           b'4 {"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1.00","q":"1.000","T":2,"m":false}\n'
           b'5 {"result":null,"id":1}\n')
    ev, st = dec.decode_lines(buf, symbol="btcusdt")
    assert st["skipped"] == 2 and st["snapshot"] == 1 and st["trade"] == 1 and st["other"] == 1
    assert list(ev["kind"]) == [EV_SNAPSHOT] * 3 + [2]
    assert list(ev["local_ts"]) == [1, 1, 1, 2] and list(ev["first_id"][:3]) == [5, 5, 5]
    ev_all, st_all = dec.decode_lines(buf)
    assert st_all["skipped"] == 0 and st_all["trade"] == 3


@pytest.mark.parametrize("prefix", ["BINANCE", "BINANCE_FUTURES"])
def test_cryptofeed_frames_as_lines(prefix):
    msgs = read_cryptofeed(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0"),
                           os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0"))
    for sym, sym_msgs in group_by_symbol(msgs).items():
        dec = BinanceDecoder("0.00000001", "0.00000001")
        buf = b"".join(b"%d %s\n" % (m.local_ns, m.payload) for m in sym_msgs)
        ev, st = dec.decode_lines(buf)
        ref, bad = _reference(dec, buf)
        assert st["malformed"] == len(bad)
        assert np.array_equal(ev, ref), sym


def test_fuzzed_lines_match_per_line_decoding(capture):
    dec = BinanceDecoder("0.01", "0.00000001")
    rnd = random.Random(11)
    lines = [ln for ln in capture.split(b"\n")[1:3000] if ln]
    out = []
    for ln in lines:
        b = bytearray(ln)
        for _ in range(rnd.choice([0, 0, 1, 2])):
            i = rnd.randrange(len(b))
            op = rnd.random()
            if op < 0.4:
                b[i] = rnd.choice(b'"{}[],:0123456789.-eE \\x')
            elif op < 0.7:
                del b[i:i + rnd.randint(1, 5)]
            else:
                b[i:i] = bytes(rnd.choice(b'"{}[],: 0.') for _ in range(rnd.randint(1, 3)))
        out.append(bytes(b).replace(b"\n", b" "))
    buf = b"\n".join(out) + b"\n"
    ev, st = dec.decode_lines(buf)
    ref, bad = _reference(dec, buf)
    assert st["malformed"] == len(bad) > 0
    assert np.array_equal(ev, ref)


def test_gil_free_scan_errors_in_line_order_and_capped():
    # the scan runs without the GIL and stops at a malformed frame, whose message
    # is made with the GIL: format errors and decode errors keep their line order
    dec = BinanceDecoder("0.01", "0.001")
    ok = b'{"e":"trade","E":1,"s":"X","t":%d,"p":"1.00","q":"1.000","T":2,"m":true}'
    esc = b'{"e":"tr\\u0061de","E":1,"s":"X","t":9,"p":"1.00","q":"1.000","T":2,"m":true}'
    lines = [b"1 " + ok % 1, b"junk", b"2 " + ok % 2, b'3 {"e":"trade","t":"x"}', b"zz", b"4 " + esc,
             b"5 " + (ok % 5).replace(b'"1.00"', b'"1.005"'), b"6 " + ok % 6]
    buf = b"\n".join(lines) + b"\n"
    ev, st = dec.decode_lines(buf)
    assert list(ev["first_id"]) == [1, 2, 9, 6] and st["messages"] == 4 and st["malformed"] == 4
    assert [n for n, _ in st["errors"]] == [2, 4, 5, 7]
    assert st["errors"][0][1] == "not '<ns> <json>'" and "t" in st["errors"][1][1]
    ev2, st2 = dec.decode_lines(buf, max_errors=2)
    assert np.array_equal(ev2, ev) and [n for n, _ in st2["errors"]] == [2, 4] and st2["malformed"] == 4
    ev3, st3 = dec.decode_lines(buf, max_errors=0)
    assert np.array_equal(ev3, ev) and st3["errors"] == [] and st3["malformed"] == 4


# ------------------------------------------------------------ issue 15
TRADE = b'{"e":"trade","E":5,"s":"BTCUSDT","t":1,"p":"1.00","q":"1.000","T":4,"m":true}'


def test_receive_time_beyond_int64_is_malformed():
    # it wrapped to -8446744073709551617 with malformed=0
    dec = BinanceDecoder("0.01", "0.001")
    lines = [b"%d " % INT64_MAX + TRADE, b"%d " % (INT64_MAX + 1) + TRADE, b"18446744073709551617 " + TRADE,
             b"9999999999999999999 " + TRADE, b"0000000000000000001 " + TRADE]
    ev, st = dec.decode_lines(b"\n".join(lines) + b"\n")
    assert st["messages"] == 2 and st["malformed"] == 3
    assert ev["local_ts"].tolist() == [INT64_MAX, 1]
    assert st["errors"] == [(2, "receive time beyond the int64 nanosecond range"), (3, "not '<ns> <json>'"),
                            (4, "receive time beyond the int64 nanosecond range")]


def test_issue15_frames_as_lines_match_per_line_decoding():
    dec = BinanceDecoder("0.01", "0.001")
    frames = [
        TRADE,
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.00","1.000"]],"a":[],"bids":[["9.00","9.000"]]}',
        b'{"lastUpdateId":5,"b":[["9.00","9.000"]],"bids":[["1.00","1.000"]],"asks":[]}',
        TRADE[:-1] + b',"p":"2.00"}',                                     # duplicate key
        TRADE.replace(b'"t":1', b'"t":-1'),                                # negative id
        TRADE.replace(b'"E":5', b'"E":-5'),                                # negative time
        TRADE.replace(b'"s":"BTCUSDT"', b'"s":"BTC\xff"'),                 # invalid UTF-8
        TRADE.replace(b'"e":"trade"', b'"\\u0065":"tr\\u0061de"'),         # escaped key and type
        TRADE.replace(b'"1.00"', b'"1\\u002e00"'),                         # escaped decimal
        b'{"stream":"btcusdt@trade","data":' + TRADE + b',"data":{}}',    # duplicate at the top
    ]
    buf = b"".join(b"%d %s\n" % (i + 1, f) for i, f in enumerate(frames))
    ev, st = dec.decode_lines(buf)
    ref, bad = _reference(dec, buf)
    assert np.array_equal(ev, ref)
    assert [n for n, _ in st["errors"]] == bad == [4, 5, 6, 7, 10]
    assert st["messages"] == 5 and st["trade"] == 3 and st["depth"] == 1 and st["snapshot"] == 1
    assert ev[ev["kind"] == EV_SNAPSHOT]["px"].tolist() == [100]


def test_symbol_filter_reads_escaped_names():
    dec = BinanceDecoder("0.01", "0.001")
    buf = (b'1 {"stream":"btc\\u0075sdt@trade","data":' + TRADE + b'}\n'
           b'2 ' + TRADE.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"') + b'\n'
           b'3 ' + TRADE.replace(b'"s":"BTCUSDT"', b'"s":"BTCUSD{"') + b'\n'
           b'4 ' + TRADE.replace(b'"s":"BTCUSDT"', b'"s":"btcusdt"') + b'\n')
    ev, st = dec.decode_lines(buf, symbol="BTCUSDT")
    assert st["skipped"] == 1 and st["messages"] == 3 and list(ev["local_ts"]) == [1, 2, 4]
    # case folding is for ASCII letters only ("{" is not "[")
    ev, st = dec.decode_lines(b"1 " + TRADE.replace(b'"s":"BTCUSDT"', b'"s":"AB{"') + b"\n", symbol="AB[")
    assert st["skipped"] == 1 and len(ev) == 0
