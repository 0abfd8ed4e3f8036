"""Basic types of the core: prices int64 ticks, quantities int64 lots, ids int64, times int64 ns."""
import numpy as np

BID: int
ASK: int
EV_DEPTH: int
EV_TRADE: int
EV_SNAPSHOT: int
EV_BBO: int
EV_BOOK_INVALID: int
EV_FUNDING: int
FUNDING_RATE_SCALE: int
INVALID_GAP: int
INVALID_CROSSED: int
INVALID_RESET: int
INVALID_IDS: int
EVF_BEGIN: int
EVF_END: int
EVF_EMPTY: int
NO_ID: int
EVENT_DTYPE: np.dtype
def event_layout() -> dict[str, int]: ...
def type_sizes() -> dict[str, int]: ...
def event_columns(events: np.ndarray) -> tuple[np.ndarray, ...]: ...
def events_from_columns(columns: "list[np.ndarray]") -> np.ndarray: ...
