"""Type stubs of hftcore.quoting (units: see the module docstring)."""
from typing import Literal, Optional, final

import numpy as np
import numpy.typing as npt

MODEL_AS: int
MODEL_GLFT: int
FAIR_MID: int
FAIR_MICRO: int
FLAG_BID_OK: int
FLAG_ASK_OK: int
FLAG_INVALID: int
NO_BID: int
NO_ASK: int

@final
class Quote:
    @property
    def bid_tick(self) -> int: ...
    @property
    def ask_tick(self) -> int: ...
    @property
    def bid_ok(self) -> bool: ...
    @property
    def ask_ok(self) -> bool: ...
    @property
    def reservation_price(self) -> float: ...
    @property
    def spread(self) -> float: ...
    @property
    def fair_value(self) -> float: ...
    @property
    def tick_size(self) -> float: ...
    @property
    def bid_price(self) -> float: ...
    @property
    def ask_price(self) -> float: ...

@final
class Quoter:
    def __init__(
        self,
        model: Literal["as", "glft"] = "as",
        gamma: float = 0.1,
        k: float = 10.0,
        A: float = 5.0,
        horizon_s: float = 30.0,
        rolling: bool = False,
        fair_value: Literal["mid", "micro"] = "mid",
        tick_size: float = 0.01,
        min_spread: float = 0.0,
        max_inventory: float = 1.0,
        order_qty: float = 0.001,
        xi: Optional[float] = None,
        price_band: float = 0.2,
    ) -> None: ...
    def set_intensity(self, A: float, k: float) -> None: ...
    def quote(
        self, best_bid: int, best_ask: int, bid_qty: int, ask_qty: int,
        sigma: float, q: float, t_ns: int,
    ) -> Quote: ...
    def quote_at(
        self, fair_ticks: float, best_bid: int, best_ask: int, sigma: float, q: float, t_ns: int,
    ) -> Quote: ...
    def quote_batch(
        self,
        best_bid: npt.NDArray[np.int64],
        best_ask: npt.NDArray[np.int64],
        bid_qty: npt.NDArray[np.int64],
        ask_qty: npt.NDArray[np.int64],
        sigma: npt.NDArray[np.float64],
        q: npt.NDArray[np.float64],
        t_ns: npt.NDArray[np.int64],
        out_bid: Optional[npt.NDArray[np.int64]] = None,
        out_ask: Optional[npt.NDArray[np.int64]] = None,
        out_flags: Optional[npt.NDArray[np.uint8]] = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
    @property
    def model(self) -> str: ...
    @property
    def fair_value(self) -> str: ...
    @property
    def gamma(self) -> float: ...
    @property
    def xi(self) -> float: ...
    @property
    def k(self) -> float: ...
    @property
    def A(self) -> float: ...
    @property
    def horizon_s(self) -> float: ...
    @property
    def rolling(self) -> bool: ...
    @property
    def tick_size(self) -> float: ...
    @property
    def min_spread(self) -> float: ...
    @property
    def max_inventory(self) -> float: ...
    @property
    def order_qty(self) -> float: ...
    @property
    def as_const(self) -> float: ...
    @property
    def c1(self) -> float: ...
    @property
    def c2(self) -> float: ...
