"""Helpers shared by the decoder tests and benchmarks: capture loaders and a
generator of random well-formed Binance frames (random key order, extra keys,
whitespace)."""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

PRICE_KEYS = ("b", "a", "p")


def hftbacktest_lines():
    """(local ns, frame bytes) of the hftbacktest-collector spot BTCUSDT capture."""
    path = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
    with gzip.open(path, "rb") as f:
        for line in f:
            ts, frame = line.rstrip(b"\n").split(b" ", 1)
            yield int(ts), frame


def cryptofeed_ws(prefix):
    """(local ts, frame str) of a cryptofeed ``<prefix>.ws.1.0`` capture."""
    with open(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0")) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("wss://"):
                continue
            ts, frame = line.split(": ", 1)
            yield float(ts), frame


def cryptofeed_http(prefix):
    """(url, frame str) of the REST depth snapshots of a cryptofeed capture."""
    with open(os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0")) as f:
        for line in f:
            if " -> " not in line:
                continue
            url, rest = line.rstrip("\n").split(" -> ", 1)
            yield url, rest.split(": ", 1)[1]


def cryptofeed_filters(prefix):
    """symbol -> (tickSize, stepSize) from the capture's exchangeInfo."""
    out = {}
    with open(os.path.join(DATA, "cryptofeed", f"{prefix}.0")) as f:
        for line in f:
            if " -> " in line and "exchangeInfo" in line:
                info = json.loads(line.split(" -> ", 1)[1].split(": ", 1)[1])
                for s in info["symbols"]:
                    flt = {x["filterType"]: x for x in s["filters"]}
                    out[s["symbol"]] = (flt["PRICE_FILTER"]["tickSize"], flt["LOT_SIZE"]["stepSize"])
    return out


def as_dict(msg):
    """A decoded message (C or twin) as (type name, dict of fields)."""
    if dataclasses.is_dataclass(msg):
        return type(msg).__name__, dataclasses.asdict(msg)
    return type(msg).__name__, msg.to_dict()


# ------------------------------------------------------------------ writer
WS = ["", "", "", " ", "\n", "\t", "  ", "\r\n "]


def dump(value, rnd: random.Random) -> str:
    """JSON text of value with random insignificant whitespace."""
    def ws():
        return rnd.choice(WS)

    if isinstance(value, dict):
        if not value:
            return "{" + ws() + "}"
        items = [ws() + json.dumps(k, ensure_ascii=rnd.random() < 0.5) + ws() + ":" + ws()
                 + dump(v, rnd) + ws() for k, v in value.items()]
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        if not value:
            return "[" + ws() + "]"
        return "[" + ",".join(ws() + dump(v, rnd) + ws() for v in value) + "]"
    if isinstance(value, RawNumber):
        return value.text
    return json.dumps(value, ensure_ascii=rnd.random() < 0.5)


class RawNumber:
    """A number written verbatim (e.g. 1e5, -0.5, 1.0)."""

    def __init__(self, text):
        self.text = text


EXTRA_KEYS = ["st", "ps", "M", "nq", "k", "zz", "id", "é", 'q"uote', "back\\slash", "x" * 40,
              "ü\u2603", "E2", "ee", "bb", "data2", "Stream"]


def random_json(rnd: random.Random, depth=0):
    r = rnd.random()
    if depth > 3 or r < 0.55:
        kind = rnd.randrange(8)
        if kind == 0:
            return None
        if kind == 1:
            return rnd.random() < 0.5
        if kind == 2:
            return rnd.randint(-(2**70), 2**70)
        if kind == 3:
            return RawNumber(rnd.choice(["1e5", "-0.5", "1.0", "0", "-0", "2E-3", "123.456e+7"]))
        if kind == 4:
            return "".join(rnd.choice('ab"\\/\b\f\n\r\t\u00e9\u2603\U0001F600 ,:{}[]')
                           for _ in range(rnd.randrange(8)))
        if kind == 5:
            return rnd.choice(["", "61837.63", "true", "null", "\u0000"])
        return rnd.random() * 1e6
    if r < 0.8:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {rnd.choice(EXTRA_KEYS + ["b", "a", "e"]): random_json(rnd, depth + 1)
            for _ in range(rnd.randrange(4))}


def dec_text(units: int, exponent: int, rnd: random.Random, extra_zeros=True) -> str:
    """Decimal text of units * 10**-exponent with random trailing zeros."""
    s = str(units).rjust(exponent + 1, "0")
    text = s[:-exponent] + "." + s[-exponent:] if exponent else s
    if extra_zeros and rnd.random() < 0.7:
        text = (text if "." in text else text + ".") + "0" * rnd.randrange(0, 7)
    return text


def random_frame(rnd: random.Random, px_exp: int, qty_exp: int):
    """A random well-formed frame (str) for a decoder with tick 10**-px_exp and
    lot 10**-qty_exp."""

    def px():
        return dec_text(rnd.randint(0, 10**rnd.randint(0, 12)), px_exp, rnd)

    def qty():
        return dec_text(rnd.randint(0, 10**rnd.randint(0, 12)), qty_exp, rnd)

    def tid():
        return rnd.randint(0, 2**62)

    def ms():
        return rnd.randint(0, 9_000_000_000_000)

    def levels():
        n = rnd.choice([0, 0, 1, 2, 3, 5, 20, 70])
        return [[px(), qty()] for _ in range(n)]

    sym = rnd.choice(["BTCUSDT", "ETHUSDT", "NKNUSDT", "1000SHIBUSDT"])
    kind = rnd.randrange(9)
    if kind == 0:  # spot depthUpdate
        body = {"e": "depthUpdate", "E": ms(), "s": sym, "U": tid(), "u": tid(), "b": levels(),
                "a": levels()}
        stream = sym.lower() + "@depth@100ms"
    elif kind == 1:  # futures depthUpdate
        body = {"e": "depthUpdate", "E": ms(), "T": ms(), "s": sym, "U": tid(), "u": tid(),
                "pu": tid(), "b": levels(), "a": levels()}
        stream = sym.lower() + "@depth@100ms"
    elif kind == 2:  # snapshot (spot REST / partial depth, or futures REST with E/T)
        body = {"lastUpdateId": tid(), "bids": levels(), "asks": levels()}
        if rnd.random() < 0.5:
            body.update({"E": ms(), "T": ms()})
        stream = sym.lower() + "@depth20@100ms"
    elif kind == 3:
        body = {"e": "trade", "E": ms(), "s": sym, "t": tid(), "p": px(), "q": qty(), "T": ms(),
                "m": rnd.random() < 0.5, "M": True}
        if rnd.random() < 0.3:
            body["X"] = rnd.choice(["MARKET", "INSURANCE_FUND", "ADL"])
        if rnd.random() < 0.3:  # old captures: buyer/seller order ids
            body.update({"b": tid(), "a": tid()})
        stream = sym.lower() + "@trade"
    elif kind == 4:
        body = {"e": "aggTrade", "E": ms(), "s": sym, "a": tid(), "p": px(), "q": qty(),
                "f": tid(), "l": tid(), "T": ms(), "m": rnd.random() < 0.5, "M": True}
        stream = sym.lower() + "@aggTrade"
    elif kind == 5:  # spot bookTicker (no e/E/T; old captures have T/E)
        body = {"u": tid(), "s": sym, "b": px(), "B": qty(), "a": px(), "A": qty()}
        if rnd.random() < 0.3:
            body.update({"T": ms(), "E": ms()})
        stream = sym.lower() + "@bookTicker"
    elif kind == 6:  # futures bookTicker
        body = {"e": "bookTicker", "u": tid(), "E": ms(), "T": ms(), "s": sym, "b": px(),
                "B": qty(), "a": px(), "A": qty()}
        stream = sym.lower() + "@bookTicker"
    elif kind == 7:  # unmodelled events
        body = rnd.choice([
            {"e": "serverShutdown", "E": ms()},
            {"e": "kline", "E": ms(), "s": sym, "k": {"t": ms(), "s": sym, "i": "1m", "o": "0.35"}},
            {"e": "markPriceUpdate", "E": ms(), "s": sym, "p": "-11794.151234567", "r": "0.0001",
             "T": ms()},
            {"e": "24hrTicker", "E": ms(), "s": sym, "p": "-94.999998", "b": "0.0000000001",
             "a": "x", "B": 1.5},
        ])
        stream = sym.lower() + "@other"
    else:  # replies / shapeless objects
        body = rnd.choice([{"result": None, "id": rnd.randint(0, 10**9)},
                           {"result": [sym.lower() + "@depth"], "id": "abc"},
                           {}, {"code": 2, "msg": "Invalid request"}, {"u": 5, "b": "1"}])
        stream = "x"
    # extra unknown keys
    for _ in range(rnd.choice([0, 0, 1, 2, 4])):
        k = rnd.choice(EXTRA_KEYS)
        if k not in body:
            body[k] = random_json(rnd)
    items = list(body.items())
    rnd.shuffle(items)
    body = dict(items)
    if rnd.random() < 0.6:
        wrapper = [("stream", stream), ("data", body)]
        if rnd.random() < 0.3:
            wrapper.reverse()
        if rnd.random() < 0.2:
            wrapper.insert(rnd.randrange(3), ("zz", random_json(rnd)))
        body = dict(wrapper)
    return rnd.choice(WS) + dump(body, rnd) + rnd.choice(WS)
