"""Fuzz machinery for the Binance decoder and the decimal parser, shared by the
bounded run in the test suite (test_fuzz_*.py) and the long run
(``python -m tests.fuzz.fuzz_decoder``).

The oracle is json.loads + decimal.Decimal: hftmm.reference.binance (the
decoder's twin: json.loads on the strict UTF-8 text, the decimals through
hftmm.reference.decimal, i.e. Decimal) for frames, and ``exact_units`` below
(Decimal division, nothing else) for decimal texts. Every input must either
decode to exactly what the oracle reads, or be refused by both; an error must
be a DecodeError / DecimalError, never another exception, a crash or a hang.

Inputs are mutations of seeds: the real captures in tests/data (hftbacktest
collector, cryptofeed, nautilus samples) and tests/fuzz/corpus (regression
inputs and hand-written edge frames). The mutator knows JSON's shape (keys,
strings, numbers), so most mutants stay valid JSON and reach the decoder's
semantics: escaped keys, repeated keys, stray level keys, negative or huge
numbers, escaped or broken UTF-8, off-grid decimals.
"""
from __future__ import annotations

import os
import random
import re
from decimal import Decimal, localcontext
from typing import Callable, Iterable

import hftcore
from hftcore import binance as hb
from hftcore import decimal as hd
from hftmm.reference import binance as rb

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
CORPUS = os.path.join(HERE, "corpus")
INT64_MAX = 2**63 - 1

# decoder configurations the inputs are decoded with (tick, lot, time unit):
# the captures' grids, a fine grid, a coarse one (off-grid errors), a mantissa
# > 1 (value * 10**e beyond int64 while the count fits), microseconds
DECODER_CONFIGS = [
    ("0.01", "0.00000001", "ms"),
    ("0.00000001", "0.00000001", "ms"),
    ("0.1", "0.001", "ms"),
    ("0.00000025", "0.5", "us"),
    ("0.01", "0.00001", "us"),
]
SCALES = ["0.01", "0.00001", "0.00000001", "0.5", "0.25", "1", "10", "0.00000025", "0.000000000000000003",
          "9223372036854775807", "1234567.891", "0.1", "0.001", "5", "0.000000000000000001"]


# ------------------------------------------------------------------ seeds
def capture_frames(max_bytes: int | None = 6000, per_source: int | None = None) -> list[bytes]:
    """Frames of the real captures in tests/data (at most max_bytes each,
    at most per_source from each capture), in file order."""
    from hftmm.captures import read_collector, read_cryptofeed

    out: list[bytes] = []

    def take(frames: Iterable[bytes]) -> None:
        n = 0
        for f in frames:
            if max_bytes is not None and len(f) > max_bytes:
                continue
            out.append(f)
            n += 1
            if per_source is not None and n >= per_source:
                break

    take(m.payload for m in read_collector(os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")))
    for prefix in ("BINANCE", "BINANCE_FUTURES"):
        take(m.payload for m in read_cryptofeed(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0"),
                                                os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0")))
    naut = os.path.join(DATA, "nautilus-samples")
    nframes = []
    for name in sorted(os.listdir(naut)):
        if name.endswith(".json"):
            with open(os.path.join(naut, name), "rb") as fh:
                nframes.append(fh.read())
    take(nframes)
    return out


def corpus_files(kind: str) -> list[str]:
    """Paths of tests/fuzz/corpus/<kind>/* (kind "decoder" or "decimal")."""
    d = os.path.join(CORPUS, kind)
    return sorted(os.path.join(d, n) for n in os.listdir(d) if not n.startswith("."))


def corpus_inputs(kind: str) -> list[bytes]:
    out = []
    for p in corpus_files(kind):
        with open(p, "rb") as fh:
            out.append(fh.read())
    return out


def sample_seeds(rnd: random.Random, frames: list[bytes], n: int) -> list[bytes]:
    """n frames spread over the kinds present (the captures are mostly bookTickers)."""
    by_kind: dict[bytes, list[bytes]] = {}
    for f in frames:
        m = re.search(rb'"e"\s*:\s*"([^"]*)"', f)
        k = m.group(1) if m else (b"snapshot" if b"lastUpdateId" in f else b"other")
        by_kind.setdefault(k, []).append(f)
    kinds = sorted(by_kind)
    return [rnd.choice(by_kind[kinds[i % len(kinds)]]) for i in range(n)]


# ------------------------------------------------------------------ mutator
_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:')
_STR = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_NUM = re.compile(rb'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
_DEC = re.compile(rb'"([0-9.]+)"')
_PAIR = re.compile(rb'"(?:[^"\\]|\\.)*"\s*:\s*(?:"(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null|\[[^\[\]]*\]|\[\[[^\]]*\](?:,\[[^\]]*\])*\])')

TOKENS = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b" ", b"\n", b"0", b"1", b"-", b".", b"e", b"E",
          b"null", b"true", b"false", b"-0", b"1e5", b"9223372036854775807", b"9223372036854775808",
          b"-9223372036854775808", b"18446744073709551616", b"0.00000001", b"1.5",
          b"\\u0061", b"\\u0062", b"\\u0000", b"\\ud800", b"\\udc00", b"\\ud83d\\ude00", b"\\\\", b'\\"', b"\\/",
          b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xc3\xa9", b"\xf0\x9f\x98\x80",
          b'"b":[["1.00","1"]],', b'"bids":[["9.00","9"]],', b'"asks":[],', b'"a":[["1","1"]],', b'"e":"trade",',
          b'"e":"depthUpdate",', b'"u":5,', b'"U":-1,', b'"pu":7,', b'"E":1,', b'"T":-1,', b'"lastUpdateId":3,',
          b'"s":"BTCUSDT",', b'"data":{},', b'"stream":"x@y",', b'"X":"MARKET",', b'"m":true,', b'"p":"1.00",']
KNOWN_KEYS = [b"e", b"E", b"T", b"s", b"U", b"u", b"pu", b"b", b"a", b"B", b"A", b"t", b"p", b"q", b"f", b"l",
              b"m", b"X", b"lastUpdateId", b"bids", b"asks", b"stream", b"data"]


def escape_text(s: bytes, rnd: random.Random) -> bytes:
    """s (ASCII) with some characters spelled as \\u escapes."""
    return b"".join(b"\\u%04x" % c if rnd.random() < 0.5 else bytes([c]) for c in s)


class Mutator:
    """Stacked random mutations of JSON frames: byte-level (cut, flip, insert
    token, delete, duplicate a span, splice) and structure-level (escape a key
    or a string, repeat or rename a key, change a number or a decimal)."""

    def __init__(self, seeds: list[bytes], rnd: random.Random):
        self.seeds = seeds
        self.rnd = rnd
        self._matches: dict = {}       # (pattern, seed) -> its matches (seeds are mutated often)
        self._seed_set = set(seeds)
        self.ops: list[Callable[[bytes], bytes]] = [
            self.cut, self.flip, self.insert, self.delete, self.dup_span, self.splice,
            self.escape_key, self.escape_string, self.repeat_pair, self.rename_key, self.number,
            self.decimal, self.number, self.decimal, self.repeat_pair, self.escape_key,
        ]

    def frame(self) -> bytes:
        data = self.rnd.choice(self.seeds)
        for _ in range(self.rnd.choice((1, 1, 1, 2, 2, 3))):
            data = self.rnd.choice(self.ops)(data)
        return data

    # byte level
    def cut(self, d: bytes) -> bytes:
        return d[: self.rnd.randrange(len(d) + 1)]

    def flip(self, d: bytes) -> bytes:
        if not d:
            return d
        b = bytearray(d)
        for _ in range(self.rnd.randint(1, 3)):
            b[self.rnd.randrange(len(b))] = self.rnd.randrange(256)
        return bytes(b)

    def insert(self, d: bytes) -> bytes:
        i = self.rnd.randrange(len(d) + 1)
        return d[:i] + self.rnd.choice(TOKENS) + d[i:]

    def delete(self, d: bytes) -> bytes:
        i = self.rnd.randrange(len(d) + 1)
        return d[:i] + d[i + self.rnd.randint(1, 8):]

    def dup_span(self, d: bytes) -> bytes:
        i, j = sorted(self.rnd.randrange(len(d) + 1) for _ in range(2))
        k = self.rnd.randrange(len(d) + 1)
        return d[:k] + d[i:j] + d[k:]

    def splice(self, d: bytes) -> bytes:
        o = self.rnd.choice(self.seeds)
        return d[: self.rnd.randrange(len(d) + 1)] + o[self.rnd.randrange(len(o) + 1):]

    # structure level
    def _pick(self, rx: re.Pattern, d: bytes):
        """A random match of rx in d (a seed's, remembered), or in a random
        300-byte window of a mutant."""
        if d in self._seed_set:
            ms = self._matches.get((rx, d))
            if ms is None:
                ms = self._matches[(rx, d)] = list(rx.finditer(d))
        else:
            i = self.rnd.randrange(max(1, len(d) - 300))
            ms = list(rx.finditer(d, i, i + 300))
        return self.rnd.choice(ms) if ms else None

    def escape_key(self, d: bytes) -> bytes:
        m = self._pick(_KEY, d)
        if m is None:
            return d
        return d[: m.start(1)] + escape_text(m.group(1), self.rnd) + d[m.end(1):]

    def escape_string(self, d: bytes) -> bytes:
        m = self._pick(_STR, d)
        if m is None or b"\\" in m.group(1):
            return d
        return d[: m.start(1)] + escape_text(m.group(1), self.rnd) + d[m.end(1):]

    def repeat_pair(self, d: bytes) -> bytes:
        """A "key": value pair once more, somewhere after an object's '{' or a ','."""
        m = self._pick(_PAIR, d)
        if m is None:
            return d
        k = d.find(b",", self.rnd.randrange(len(d) + 1)) + 1 if self.rnd.random() < 0.8 else d.find(b"{") + 1
        if k <= 0:
            return d
        pair = m.group(0)
        if self.rnd.random() < 0.3:          # the value changed, or the key escaped
            pair = re.sub(rb'\d', lambda _: str(self.rnd.randrange(10)).encode(), pair, count=2)
        return d[:k] + pair + b"," + d[k:]

    def rename_key(self, d: bytes) -> bytes:
        m = self._pick(_KEY, d)
        if m is None:
            return d
        new = self.rnd.choice(KNOWN_KEYS + [b"zz", b"M", b"", b"E2", b"B\xc3\xa9"])
        return d[: m.start(1)] + new + d[m.end(1):]

    def number(self, d: bytes) -> bytes:
        m = self._pick(_NUM, d)
        if m is None:
            return d
        t = m.group(0)
        r = self.rnd.random()
        if r < 0.25:
            t = b"-" + t.lstrip(b"-")
        elif r < 0.45:
            t = self.rnd.choice([b"9223372036854775807", b"9223372036854775808", b"9223372036854775", b"-0",
                                 b"0", b"1e3", b"1.0", b"92233720368547758", b"9223372036854776"])
        elif r < 0.7:
            t = t + str(self.rnd.randrange(10)).encode()
        else:
            t = t[:-1] or b"0"
        return d[: m.start()] + t + d[m.end():]

    def decimal(self, d: bytes) -> bytes:
        """Change a quoted decimal ("61837.63000000"): a digit, padding, sign, length."""
        m = self._pick(_DEC, d)
        if m is None:
            return d
        t = mutate_decimal(m.group(1), self.rnd)
        return d[: m.start(1)] + t + d[m.end(1):]


def mutate_decimal(t: bytes, rnd: random.Random) -> bytes:
    r = rnd.random()
    if r < 0.2 and t:
        i = rnd.randrange(len(t))
        return t[:i] + str(rnd.randrange(10)).encode() + t[i + 1:]
    if r < 0.35:
        return b"0" * rnd.randint(1, 30) + t
    if r < 0.5:
        return t + (b"" if b"." in t else b".") + b"0" * rnd.randint(1, 30)
    if r < 0.6:
        return t + str(rnd.randrange(1, 10)).encode()
    if r < 0.7:
        return rnd.choice([b"-", b"+", b" ", b"1e", b".", b"_"]) + t
    if r < 0.8:
        return str(rnd.randrange(10 ** rnd.randint(10, 40))).encode() + b"." + t.partition(b".")[2]
    if r < 0.9:
        i = rnd.randrange(len(t) + 1)
        return t[:i] + rnd.choice([b".", b"e", b"\\u0030", b"\\u002e", b"x", b"\xff"]) + t[i:]
    return t.replace(b".", b"")


# ------------------------------------------------------------------ oracle: frames
def outcome(dec, frame) -> tuple:
    """("ok", type, fields) or ("err", field) of a C or twin decoder."""
    try:
        msg = dec.decode(frame)
    except (hb.DecodeError, rb.DecodeError) as e:
        return ("err", e.field)
    if hasattr(msg, "to_dict"):
        return ("ok", type(msg).__name__, msg.to_dict())
    import dataclasses
    return ("ok", type(msg).__name__, dataclasses.asdict(msg))


def check_decode(dec: hb.BinanceDecoder, twin: rb.BinanceDecoder, frame) -> str | None:
    """Decode one frame with the C decoder and with the json+Decimal twin: a
    description of the disagreement, or None. Errors must be DecodeErrors
    with an offset inside the frame and "(at byte N)" in their message; on
    JSON-valid frames (the twin names a field) the fields must agree."""
    raw = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else bytes(frame)
    try:
        msg = dec.decode(frame)
        c = ("ok", type(msg).__name__, msg.to_dict())
    except hb.DecodeError as e:
        if not (0 <= e.offset <= len(raw)) or not str(e).endswith(f"(at byte {e.offset})"):
            return f"bad DecodeError offset/message: {e!r} offset={e.offset}"
        c = ("err", e.field)
    except Exception as e:  # noqa: BLE001 - any other exception is a finding
        return f"{type(e).__name__} instead of DecodeError: {e}"
    r = outcome(twin, frame)
    if c == r:
        return None
    if c[0] == "err" and r == ("err", None):
        return None      # text json.loads / UTF-8 refuses: the twin has no field to name
    return f"C {c!r} != oracle {r!r}"


EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EV_BBO = hftcore.EV_DEPTH, hftcore.EV_SNAPSHOT, hftcore.EV_TRADE, hftcore.EV_BBO
EVF_BEGIN, EVF_END, EVF_EMPTY = hftcore.EVF_BEGIN, hftcore.EVF_END, hftcore.EVF_EMPTY


def twin_records(msg, ts: int) -> list[tuple]:
    """The EVENT_DTYPE records (as tuples) of a twin message, as to_events(ts)
    makes them (hftcore.types.hft_message_events / hft_event_set)."""
    no_id = rb.NO_ID
    if isinstance(msg, (rb.DepthUpdate, rb.DepthSnapshot)):
        if isinstance(msg, rb.DepthUpdate):
            kind, exch, ids = EV_DEPTH, msg.transaction_time_ns or msg.event_time_ns, \
                (msg.first_id, msg.last_id, msg.prev_id)
        else:
            kind = EV_SNAPSHOT
            exch = msg.transaction_time_ns or msg.event_time_ns
            ids = (msg.last_update_id, msg.last_update_id, no_id)
        lv = [(p, q, rb.BID) for p, q in msg.bids] + [(p, q, rb.ASK) for p, q in msg.asks]
        if not lv:
            return [(ts, exch, 0, 0, *ids, kind, 0, EVF_EMPTY | EVF_BEGIN | EVF_END)]
        out = [[ts, exch, p, q, *ids, kind, side, 0] for p, q, side in lv]
        out[0][-1] |= EVF_BEGIN
        out[-1][-1] |= EVF_END
        return [tuple(r) for r in out]
    if isinstance(msg, rb.Trade):
        return [(ts, msg.trade_time_ns, msg.price, msg.qty, msg.first_trade_id, msg.last_trade_id, no_id,
                 EV_TRADE, msg.side, EVF_BEGIN | EVF_END)]
    if isinstance(msg, rb.BookTicker):
        xt = msg.transaction_time_ns or msg.event_time_ns
        return [(ts, xt, msg.bid_px, msg.bid_qty, msg.update_id, msg.update_id, no_id, EV_BBO, rb.BID, EVF_BEGIN),
                (ts, xt, msg.ask_px, msg.ask_qty, msg.update_id, msg.update_id, no_id, EV_BBO, rb.ASK, EVF_END)]
    return []


def line_of(frame: bytes, rnd: random.Random) -> tuple[bytes, bytes, int | None]:
    """A collector line "<ns> <frame>" (newlines in the frame made spaces), and
    what decode_lines must make of it: (line, frame, ts) with ts None when the
    line itself is not "<ns> <json>" (a receive time beyond int64 included)."""
    frame = frame.replace(b"\n", b" ").replace(b"\r", b" ")
    r = rnd.random()
    if r < 0.004:
        return b"%d " % rnd.randint(INT64_MAX + 1, 10**19 - 1) + frame, frame, None
    if r < 0.006:
        return b"%d " % rnd.randint(10**19, 10**20) + frame, frame, None
    if r < 0.008:
        return rnd.choice([b"-1 ", b"+1 ", b" ", b"x ", b"1"]) + frame, frame, None
    ts = rnd.choice((rnd.randint(0, INT64_MAX), 1723161255208000000 + rnd.randrange(10**12), INT64_MAX, 0))
    return b"%d " % ts + frame, frame, ts


def check_lines(dec: hb.BinanceDecoder, twin: rb.BinanceDecoder, frames: list[bytes],
                rnd: random.Random) -> tuple[int, list[str]]:
    """One decode_lines call over the frames as collector lines, against the
    twin line by line: the malformed lines (numbers), every record, the
    counters. Returns (lines decoded, findings)."""
    lines, expect_bad, expect_ev = [], [], []
    for i, f in enumerate(frames, 1):
        line, frame, ts = line_of(f, rnd)
        lines.append(line)
        if ts is None:
            expect_bad.append(i)
            continue
        try:
            msg = twin.decode(frame)
        except rb.DecodeError:
            expect_bad.append(i)
            continue
        expect_ev.extend(twin_records(msg, ts))
    buf = b"\n".join(lines) + b"\n"
    try:
        ev, st = dec.decode_lines(buf, max_errors=len(lines))
    except Exception as e:  # noqa: BLE001 - decode_lines never raises on content
        return len(lines), [f"decode_lines raised {type(e).__name__}: {e}"]
    findings = []
    got_bad = [n for n, _ in st["errors"]]
    if got_bad != expect_bad:
        diff = sorted(set(got_bad) ^ set(expect_bad))[:5]
        findings += [f"line verdict differs: {lines[n - 1]!r} (C malformed: {n in got_bad})" for n in diff]
    if not (st["lines"] == len(lines) and st["malformed"] == len(expect_bad)
            and st["messages"] == len(lines) - len(expect_bad) and st["consumed"] == len(buf)):
        findings.append(f"counters: {st!r}"[:500])
    if not findings:
        got = ev.tolist()
        if got != expect_ev:
            k = next((i for i, (a, b) in enumerate(zip(got, expect_ev)) if a != b), min(len(got), len(expect_ev)))
            findings.append(f"records differ at {k}: C {got[k:k + 1]} oracle {expect_ev[k:k + 1]} "
                            f"({len(got)} vs {len(expect_ev)} records)")
    return len(lines), findings


# ------------------------------------------------------------------ oracle: decimals
_PLAIN = re.compile(r"[0-9]*\.?[0-9]*\Z")


def exact_units(text: str, scale: str) -> tuple:
    """("ok", units) or ("err", code) by Decimal division alone: what
    hftcore.decimal must give for the text in units of scale (a plain decimal
    -- ASCII digits, one optional '.', no sign -- whose exact quotient is a
    whole number within int64; the documented codes otherwise)."""
    if text == "":
        return ("err", hd.DEC_EMPTY)
    if text.startswith("-"):
        return ("err", hd.DEC_NEGATIVE)
    if not text.isascii() or not _PLAIN.match(text):
        return ("err", hd.DEC_SYNTAX)
    if not any(c.isdigit() for c in text):
        return ("err", hd.DEC_EMPTY)
    sc = hd.Scale(scale)
    if text.partition(".")[2][sc.exponent:].strip("0"):
        return ("err", hd.DEC_NOT_MULTIPLE)
    with localcontext() as ctx:
        ctx.prec = len(text) + 60
        ctx.Emax = ctx.prec + 10
        ctx.Emin = -ctx.Emax
        q = Decimal(text if text != "." else "0") / Decimal(scale)
        whole = q == q.to_integral_value()
        n = int(q)
    if n > INT64_MAX:
        return ("err", hd.DEC_OVERFLOW)
    return ("ok", n) if whole else ("err", hd.DEC_NOT_MULTIPLE)


def check_decimal(scale: hd.Scale, scale_text: str, text: bytes) -> str | None:
    try:
        c = ("ok", scale.parse(text))
    except hd.DecimalError as e:
        c = ("err", e.code)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__} instead of DecimalError: {e}"
    try:
        t = text.decode("utf-8")
    except UnicodeDecodeError:
        r = ("err", hd.DEC_SYNTAX) if not text.startswith(b"-") else ("err", hd.DEC_NEGATIVE)
    else:
        r = exact_units(t, scale_text)
    return None if c == r else f"Scale({scale_text!r}).parse({text!r}): C {c!r} != Decimal {r!r}"


def capture_decimals(frames: list[bytes]) -> list[bytes]:
    """The quoted plain decimals of the frames (prices, quantities)."""
    out = set()
    for f in frames:
        out.update(re.findall(rb'"([0-9]+\.[0-9]+|[0-9]+)"', f))
    return sorted(out)


# ------------------------------------------------------------------ runs
class Run:
    """Counts of one fuzz run; findings keep the input that shows each."""

    def __init__(self) -> None:
        self.lines = 0          # decoder inputs through decode_lines
        self.decodes = 0        # decoder inputs through decode()
        self.decimals = 0       # decimal parser inputs
        self.findings: list[tuple[str, bytes | str]] = []

    def add(self, why: str | None, data) -> None:
        if why is not None and len(self.findings) < 50:
            self.findings.append((why, data))

    def summary(self) -> str:
        return (f"{self.lines:,} decode_lines inputs, {self.decodes:,} decode() inputs, "
                f"{self.decimals:,} decimal inputs, {len(self.findings)} findings")


class OracleTwin(rb.BinanceDecoder):
    """The twin with its decimal parse memoised (a pure function of the text;
    refusals are not cached): mutants repeat the seeds' prices, and the twin's
    Decimal parse is most of the oracle's time."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._memo: dict = {}

    def _units(self, key, text, is_px, level=None):
        k = (text, is_px)
        v = self._memo.get(k) if type(text) is str else None
        if v is None:
            v = super()._units(key, text, is_px, level)
            if len(self._memo) > 1 << 17:
                self._memo.clear()
            self._memo[k] = v
        return v


def decoders() -> list[tuple[hb.BinanceDecoder, rb.BinanceDecoder]]:
    return [(hb.BinanceDecoder(t, q, u), OracleTwin(t, q, u)) for t, q, u in DECODER_CONFIGS]


def fuzz_round(run: Run, rnd: random.Random, mut: Mutator, pairs, n_lines: int, decode_every: int) -> None:
    """n_lines mutants through decode_lines (one call) and every decode_every-th
    also through decode() (bytes, or str when it is UTF-8, sometimes with a
    lone surrogate), all against the oracle."""
    dec, twin = rnd.choice(pairs)
    frames = [mut.frame() for _ in range(n_lines)]
    n, findings = check_lines(dec, twin, frames, rnd)
    run.lines += n
    for why in findings:
        run.add(why, b"")
    if findings:
        # which input: decode() each one alone, keeping the first few that disagree
        for f in frames:
            why = check_decode(dec, twin, f.replace(b"\n", b" ").replace(b"\r", b" "))
            if why:
                run.add(why, f)
                if len(run.findings) > 10:
                    break
    for f in frames[::decode_every]:
        frame: bytes | str = f
        if rnd.random() < 0.3:
            try:
                frame = f.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                if rnd.random() < 0.1:
                    i = rnd.randrange(len(frame) + 1)
                    frame = frame[:i] + rnd.choice(["\ud800", "\udfff", "\ud83d"]) + frame[i:]
        run.decodes += 1
        run.add(check_decode(dec, twin, frame), frame)


def decimal_round(run: Run, rnd: random.Random, texts: list[bytes], n: int) -> None:
    scales = [(hd.Scale(s), s) for s in SCALES]
    for _ in range(n):
        sc, st = rnd.choice(scales)
        t = rnd.choice(texts)
        for _ in range(rnd.choice((0, 1, 1, 2, 3))):
            t = mutate_decimal(t, rnd)
        if rnd.random() < 0.05:
            # a count near INT64_MAX written in this scale (the case)
            with localcontext() as ctx:
                ctx.prec = 80
                t = format(Decimal(rnd.randint(INT64_MAX - 10**6, INT64_MAX + 10**6)) * sc.to_decimal(), "f").encode()
        run.decimals += 1
        run.add(check_decimal(sc, st, t), t)


def replay_corpus(run: Run) -> None:
    """Every corpus input through every decoder configuration (decode and
    decode_lines) and every corpus decimal through every scale."""
    rnd = random.Random(0)
    pairs = decoders()
    frames = corpus_inputs("decoder")
    for dec, twin in pairs:
        for f in frames:
            run.decodes += 1
            run.add(check_decode(dec, twin, f), f)
        n, findings = check_lines(dec, twin, frames, rnd)
        run.lines += n
        for why in findings:
            run.add(why, b"")
    scales = [(hd.Scale(s), s) for s in SCALES]
    for t in corpus_inputs("decimal"):
        for line in t.splitlines():
            for sc, st in scales:
                run.decimals += 1
                run.add(check_decimal(sc, st, line), line)


def dump_finding(run: Run, where: str) -> list[str]:
    """Write the findings' inputs to files under `where` (for a corpus or a
    bug report); returns their paths."""
    os.makedirs(where, exist_ok=True)
    paths = []
    for i, (why, data) in enumerate(run.findings):
        if not data:
            continue
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        p = os.path.join(where, f"finding-{i:03d}.bin")
        with open(p, "wb") as fh:
            fh.write(raw)
        with open(p + ".txt", "w") as fh:
            fh.write(why + "\n")
        paths.append(p)
    return paths
