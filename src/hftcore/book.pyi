"""Integer-tick L2 order book (ticks and lots in; price units only from mid/microprice)."""
from typing import Optional, Sequence, Union, final

import numpy as np
import numpy.typing as npt

BID: int
ASK: int
MAX_TICK: int

_Ints = Union[npt.NDArray[np.int64], Sequence[int]]

@final
class L2Book:
    tick_size: float
    lot_size: float
    recenters: int
    def __init__(self, tick_size: object = 1.0, lot_size: object = 1.0, window: int = 65536) -> None: ...
    def apply(self, side: int, tick: int, lots: int) -> None:
        """Set the absolute quantity (lots) at tick; 0 deletes."""
    def apply_levels(self, side: int, ticks: _Ints, lots: _Ints) -> None:
        """All levels of one side of one message (validated first; nothing half-applied)."""
    def apply_message(self, bid_ticks: _Ints, bid_lots: _Ints, ask_ticks: _Ints, ask_lots: _Ints) -> None: ...
    def load_snapshot(self, bid_ticks: _Ints, bid_lots: _Ints, ask_ticks: _Ints, ask_lots: _Ints) -> None: ...
    def clear(self) -> None: ...
    def best_bid(self) -> Optional[int]:
        """Best bid, ticks (None if no bid)."""
    def best_ask(self) -> Optional[int]:
        """Best ask, ticks (None if no ask)."""
    def best_bid_qty(self) -> int:
        """Lots at the best bid."""
    def best_ask_qty(self) -> int:
        """Lots at the best ask."""
    def qty_at(self, side: int, tick: int) -> int: ...
    def mid(self) -> float:
        """Mid, price units (NaN if a side is empty)."""
    def mid_ticks(self) -> float: ...
    def microprice(self) -> float:
        """(bid*askQty + ask*bidQty)/(bidQty+askQty), price units."""
    def imbalance(self, n: int = 1) -> float:
        """(bid lots - ask lots)/(sum) over the best n levels per side, in [-1, 1]."""
    def is_crossed(self) -> bool: ...
    def top(self, n: int = 10) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(bid_ticks, bid_lots, ask_ticks, ask_lots), best first."""
    def levels(self, side: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    @property
    def bid_levels(self) -> int: ...
    @property
    def ask_levels(self) -> int: ...
    @property
    def window(self) -> int: ...
    def __len__(self) -> int: ...
