"""Binance market-data decoder. Units everywhere: prices int64 *ticks* of the
decoder's tick size, quantities int64 *lots* of its lot size, ids as sent
(non-negative int64), times int64 *nanoseconds* since the epoch (0 when absent;
``NO_ID`` for a missing update id).

Every frame is decoded exactly as ``json.loads`` + ``decimal.Decimal`` read it,
or refused with DecodeError (field and byte offset): invalid JSON or UTF-8,
nesting beyond 128, a key twice in the top level or the "data" payload, and a
bad value in a field the message reads. Each message kind reads only its
documented keys; other keys are ignored."""
import numpy as np
import numpy.typing as npt

class DecodeError(ValueError):
    """Malformed frame. ``offset``: byte offset in the frame (of its UTF-8 text
    for a str frame); ``field``: the JSON key concerned (a duplicated key's
    text), or None."""
    offset: int
    field: str | None
    def __init__(self, message: str, offset: int = ..., field: str | None = ...) -> None: ...

FIELD_NAMES: tuple[str, ...]

class Message:
    stream: str | None   # combined-stream name, or None for raw frames
    symbol: str | None   # the "s" field, or None
    def to_events(self, local_ts_ns: int = ...) -> npt.NDArray[np.void]:
        """hftcore.EVENT_DTYPE records of this message (local_ts = local_ts_ns)."""
    def to_dict(self) -> dict: ...

class _Levels(Message):
    n_bids: int
    n_asks: int
    @property
    def bid_ticks(self) -> npt.NDArray[np.int64]:
        """Bid prices, ticks (new array, message order)."""
    @property
    def bid_lots(self) -> npt.NDArray[np.int64]:
        """Bid quantities, lots (0 = delete)."""
    @property
    def ask_ticks(self) -> npt.NDArray[np.int64]:
        """Ask prices, ticks."""
    @property
    def ask_lots(self) -> npt.NDArray[np.int64]:
        """Ask quantities, lots (0 = delete)."""
    @property
    def bids(self) -> npt.NDArray[np.int64]:
        """(n, 2) array of [ticks, lots]."""
    @property
    def asks(self) -> npt.NDArray[np.int64]:
        """(n, 2) array of [ticks, lots]."""

class DepthUpdate(_Levels):
    """"e": "depthUpdate" (spot and USD-M)."""
    first_id: int              # U
    last_id: int               # u
    prev_id: int               # pu (USD-M); hftcore.NO_ID on spot
    event_time_ns: int         # E, ns
    transaction_time_ns: int   # T (USD-M), ns; 0 when absent

class DepthSnapshot(_Levels):
    """REST /api/v3/depth, /fapi/v1/depth, spot partial-depth streams."""
    last_update_id: int        # lastUpdateId
    event_time_ns: int         # E (futures REST), ns; 0 when absent
    transaction_time_ns: int   # T (futures REST), ns; 0 when absent

class Trade(Message):
    """"e": "trade" / "aggTrade"."""
    is_aggregate: bool
    trade_id: int              # t (trade) or a (aggTrade)
    first_trade_id: int        # f (aggTrade); = trade_id for trade
    last_trade_id: int         # l (aggTrade); = trade_id for trade
    price: int                 # p, ticks
    qty: int                   # q, lots
    trade_time_ns: int         # T, ns
    event_time_ns: int         # E, ns
    buyer_is_maker: bool       # m
    side: int                  # maker side: BID if m else ASK
    trade_type: str | None     # X (USD-M trade stream)

class BookTicker(Message):
    """bookTicker (spot: no e/E/T; USD-M: e, E, T)."""
    update_id: int             # u
    bid_px: int                # b, ticks
    bid_qty: int               # B, lots
    ask_px: int                # a, ticks
    ask_qty: int               # A, lots
    event_time_ns: int         # E, ns; 0 when absent
    transaction_time_ns: int   # T, ns; 0 when absent

class UnknownEvent(Message):
    """A well-formed object not modelled: its "e", or "" (then payload_keys
    lists its top-level keys, e.g. ("result", "id"))."""
    event_type: str
    payload_keys: tuple[str, ...]

class BinanceDecoder:
    """Decoder for one instrument. tick_size/lot_size as text ("0.01000000");
    time_unit "ms" (default) or "us" (timeUnit=MICROSECOND)."""
    tick_size: str
    lot_size: str
    time_unit: str
    def __init__(self, tick_size: str, lot_size: str, time_unit: str = ...) -> None: ...
    def decode(self, frame: bytes | bytearray | memoryview | str) -> Message:
        """One frame -> a new message; DecodeError if malformed (also invalid
        UTF-8 bytes, or a str holding a lone surrogate)."""
    def decode_lines(self, buf: bytes | bytearray | memoryview, fmt: str = ..., out: npt.NDArray[np.void] | None = ...,
                     *, final: bool = ..., symbol: str | None = ..., line_offset: int = ...,
                     max_errors: int = ...) -> tuple[npt.NDArray[np.void], dict]:
        """``<ns> <json>`` lines -> EVENT_DTYPE records (as decode(json).to_events(ns)),
        without message objects. Malformed lines (also a receive time beyond
        int64) are counted, never raised. stats:
        lines, messages, events, malformed, errors [(line, message)], skipped (other
        symbol), empty, consumed (bytes; carry buf[consumed:] over unless final),
        full (out was full), depth, snapshot, trade, book_ticker, other."""
