"""Replay recorded Binance traffic through the real decoder, sync and book, and
check the rebuilt book against every bookTicker that carries the same update id.

A bookTicker's ``u`` is an order-book update id; when it equals the final id
``u`` of a depth event, the book right after that event must show exactly the
bookTicker's best bid/ask prices and quantities. bookTickers whose id falls
inside a depth event's range (not on its end) cannot be compared and are not
counted.

State is bounded whatever the input (a capture of bookTickers only, or one
whose depth stream never arrives): book tops are remembered for the last
``history`` depth events, bookTickers wait for their depth event only while
their id is ahead of the book (and at most ``history`` of them, the oldest
given up first), and before the first depth update tells the market only the
latest few snapshots are held. A bookTicker given up is not compared and not
counted, like one inside a depth event's range.
"""
from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

from hftcore import NO_ID as _NO_ID
from hftcore.binance import BinanceDecoder, BookTicker, DecodeError, DepthSnapshot, DepthUpdate, Trade
from hftcore.sync import RESYNC_OUTCOMES, STALE_SNAPSHOT, BookSync

from hftmm.captures import RawMessage

log = logging.getLogger(__name__)

_HISTORY = 50_000      # book tops remembered per update id, and bookTickers waiting for one
_PENDING_SNAPSHOTS = 8   # snapshots held before the market is known (the latest)


@dataclass
class VerifyReport:
    symbol: str
    market: str
    messages: int = 0
    depth_updates: int = 0
    snapshots: int = 0
    trades: int = 0
    book_tickers: int = 0
    other: int = 0
    malformed: int = 0
    applied: int = 0
    dropped_old: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    ids_lost: int = 0
    #: loss of the recorded depth stream, two figures (a message carries many ids):
    #: messages lost (holes in the chain, each at least one message) / expected, and
    #: update ids lost / expected (hftcore.sync.loss_figures)
    messages_received: int = 0
    messages_lost: int = 0
    messages_expected: int = 0
    message_loss_rate: float = 0.0
    ids_received: int = 0
    ids_expected: int = 0
    id_loss_rate: float = 0.0
    stale_snapshots: int = 0
    ticker_checks: int = 0
    ticker_mismatches: int = 0
    unrecovered: bool = False
    mismatch_examples: list[str] = field(default_factory=list)
    malformed_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ticker_mismatches == 0 and not self.unrecovered and self.malformed == 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def verify_messages(messages: Iterable[RawMessage], tick_size: str, lot_size: str,
                    market: Optional[str] = None, symbol: str = "", history: int = _HISTORY) -> VerifyReport:
    """Replay one symbol's messages (in receive order). ``market`` is detected from
    the first depth event (``pu`` present -> USD-M) when not given. ``history``
    bounds the book tops and the waiting bookTickers kept (each; see the module doc)."""
    if history < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    dec = BinanceDecoder(tick_size, lot_size)
    rep = VerifyReport(symbol=symbol, market=market or "")
    sync: Optional[BookSync] = None
    pending: deque = deque(maxlen=_PENDING_SNAPSHOTS)   # snapshots before the market is known
    tops: OrderedDict[int, tuple] = OrderedDict()
    waiting: dict[int, deque] = {}    # update id -> bookTickers not yet comparable (arrival order)
    n_waiting = 0

    def record_top(u: int) -> None:
        nonlocal n_waiting
        b = sync.book
        top = (b.best_bid(), b.best_bid_qty(), b.best_ask(), b.best_ask_qty())
        tops[u] = top
        if len(tops) > history:
            tops.popitem(last=False)
        for bt in waiting.pop(u, ()):
            n_waiting -= 1
            check(bt, top)
        # a later depth event ends above u: bookTickers with a smaller id never match one
        while waiting:
            k = next(iter(waiting))
            if k >= u:
                break
            n_waiting -= len(waiting.pop(k))

    def check(bt: BookTicker, top: tuple) -> None:
        rep.ticker_checks += 1
        want = (bt.bid_px, bt.bid_qty, bt.ask_px, bt.ask_qty)
        if top != want:
            rep.ticker_mismatches += 1
            if len(rep.mismatch_examples) < 10:
                rep.mismatch_examples.append(f"u={bt.update_id}: book {top} != bookTicker {want}")

    def handle(msg) -> None:
        nonlocal n_waiting
        if isinstance(msg, DepthUpdate):
            rep.depth_updates += 1
            out = sync.on_depth(msg)
            if out in RESYNC_OUTCOMES:
                log.warning("%s: resync (%s) at u=%d", symbol, sync.last_reason, msg.last_id)
            if sync.ready and sync.last_update_id == msg.last_id and out != STALE_SNAPSHOT:
                record_top(msg.last_id)
        elif isinstance(msg, DepthSnapshot):
            sync.on_snapshot(msg)
            if sync.ready:
                # the snapshot and any replayed events: the book is as of last_update_id
                record_top(sync.last_update_id)
        elif isinstance(msg, BookTicker):
            rep.book_tickers += 1
            u = msg.update_id
            if u in tops:
                check(msg, tops[u])
            elif sync is None or not sync.ready or u > sync.last_update_id:
                waiting.setdefault(u, deque()).append(msg)
                n_waiting += 1
                while n_waiting > history:     # give up the oldest
                    k = next(iter(waiting))
                    q = waiting[k]
                    q.popleft()
                    n_waiting -= 1
                    if not q:
                        del waiting[k]
        elif isinstance(msg, Trade):
            rep.trades += 1
        else:
            rep.other += 1

    def apply(raw: RawMessage, msg) -> None:
        try:
            handle(msg)
        except (ValueError, OverflowError) as exc:   # e.g. a price the book cannot hold at this tick size
            rep.malformed += 1
            if len(rep.malformed_examples) < 10:
                rep.malformed_examples.append(f"t={raw.local_ns} {raw.key}: {exc}")

    for raw in messages:
        rep.messages += 1
        try:
            msg = dec.decode(raw.payload)
        except DecodeError as exc:
            rep.malformed += 1
            if len(rep.malformed_examples) < 10:
                rep.malformed_examples.append(f"t={raw.local_ns} {raw.key}: {exc}")
            continue
        if isinstance(msg, DepthSnapshot):
            rep.snapshots += 1
        if sync is None and isinstance(msg, (DepthUpdate, DepthSnapshot)):
            if isinstance(msg, DepthUpdate):
                rep.market = rep.market or ("usdm" if msg.prev_id != _NO_ID else "spot")
            if not rep.market:
                pending.append((raw, msg))      # the book waits for the market
                continue
            sync = BookSync(market=rep.market, tick_size=tick_size)
            for r, m in pending:
                apply(r, m)
            pending.clear()
        apply(raw, msg)

    if sync is not None:
        s = sync.stats()
        for k in ("applied", "dropped_old", "gaps", "resyncs", "crossed", "ids_lost", "stale_snapshots"):
            setattr(rep, k, s[k])
        for k, v in sync.loss_stats().items():
            if hasattr(rep, k):
                setattr(rep, k, v)
        rep.unrecovered = not sync.ready and rep.depth_updates > 0
    return rep

