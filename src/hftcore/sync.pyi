"""Sans-I/O Binance book synchronisation (spot U/u, USD-M pu)."""
from typing import Optional, Sequence, Union, final

import numpy as np
import numpy.typing as npt

from hftcore.binance import DepthSnapshot, DepthUpdate
from hftcore.book import L2Book

SPOT: int
USDM: int
APPLIED: int
BUFFERED: int
DROPPED: int
SYNCED: int
STALE_SNAPSHOT: int
RESYNC_GAP: int
RESYNC_CROSSED: int
RESYNC_IDS: int
REFUSED: int
RESYNC_OUTCOMES: frozenset[int]
OUTCOME_NAMES: dict[int, str]

_Ints = Union[npt.NDArray[np.int64], Sequence[int]]

@final
class BookSync:
    book: L2Book
    market: int
    max_buffer: int
    applied: int
    dropped_old: int
    buffered: int
    gaps: int
    crossed: int
    resyncs: int
    snapshots: int
    stale_snapshots: int
    buffer_dropped: int
    refused: int
    contradictions: int
    max_span: int
    behind_limit: int
    snapshot_behind_limit: int
    def __init__(self, book: Optional[L2Book] = None, market: str = "spot", max_buffer: int = 100_000,
                 tick_size: object = 1.0, emit_events: bool = False, max_span: int = 100_000_000,
                 behind_limit: int = 3, snapshot_behind_limit: int = 10_000) -> None: ...
    def on_depth(self, msg: DepthUpdate, local_ts: int = 0) -> int: ...
    def on_depth_arrays(self, first_id: int, last_id: int, prev_id: Optional[int], bid_ticks: _Ints,
                        bid_lots: _Ints, ask_ticks: _Ints, ask_lots: _Ints, local_ts: int = 0,
                        exch_ts: int = 0) -> int: ...
    def on_snapshot(self, snap: DepthSnapshot, local_ts: int = 0) -> int: ...
    def on_snapshot_arrays(self, last_update_id: int, bid_ticks: _Ints, bid_lots: _Ints, ask_ticks: _Ints,
                           ask_lots: _Ints, local_ts: int = 0, exch_ts: int = 0) -> int: ...
    def take_events(self) -> npt.NDArray[np.void]: ...
    def reset(self) -> None: ...
    @property
    def ready(self) -> bool: ...
    @property
    def needs_snapshot(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def last_reason(self) -> Optional[str]: ...
    @property
    def last_update_id(self) -> Optional[int]: ...
    @property
    def buffered_events(self) -> int: ...
    @property
    def first_buffered_id(self) -> Optional[int]: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def ids_lost(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def messages_lost(self) -> int: ...
    @property
    def messages_received(self) -> int: ...
    @property
    def ids_received(self) -> int: ...
    def loss_stats(self) -> dict[str, Union[int, float]]: ...

@final
class StreamLoss:
    spot: bool
    def __init__(self, market: str = "spot") -> None: ...
    def add(self, first_id: int, last_id: int, prev_id: int = ...) -> int: ...
    def restart(self) -> None: ...
    @property
    def last_seen(self) -> Optional[int]: ...
    def stats(self) -> dict[str, int]: ...

def loss_figures(c: dict[str, int]) -> dict[str, Union[int, float]]: ...

@final
class EventNormalizer:
    sync: BookSync
    spans: int
    unsynced_ns: int
    initial_wait_ns: int
    depth_in: int
    snapshots_in: int
    passed: int
    records_out: int
    def __init__(self, market: str = "spot", max_buffer: int = 100_000, tick_size: object = 1.0) -> None: ...
    def feed(self, events: npt.NDArray[np.void]) -> npt.NDArray[np.void]: ...
    @property
    def synced(self) -> bool: ...
    def stats(self) -> dict[str, object]: ...
