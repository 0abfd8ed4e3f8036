"""Write your own strategy: subclass :class:`Strategy` (Python) or
:class:`hftcore.strategy.Strategy` / :class:`hftcore.strategy.MarketMaker` (Cython).

The same object runs in ``hftmm backtest`` (:meth:`BacktestEngine.run_backtest`
with ``strategy=``), ``hftmm live --paper`` and ``--testnet`` / ``--live``
(``--strategy module:Class``): the drivers call it with market events and
order reports, and it acts through its trader -- whose limits (position with
every open order filled, order rate, book validity, loss limits) hold whatever
the strategy asks.

Units: prices in ticks (``self.tick_size`` price units each), quantities in lots
(``self.lot_size`` base units each), times in ns on the driver's clock.
"""
from __future__ import annotations

from typing import Any, Optional

from hftcore.strategy import PyStrategy

__all__ = ["Strategy", "BUY", "SELL", "adapt", "load_strategy"]

BUY = 0
SELL = 1


class Strategy:
    """Override any of the callbacks; the driver sets ``book`` (the visible
    :class:`hftcore.book.L2Book`) and ``trader`` (:class:`hftcore.strategy.Trader`)
    before ``on_start``.

    * ``on_start(now)``; ``on_book(now)``: after each complete book change;
      ``on_trade(now, side, px, qty)``: a market trade (side: the maker's,
      0 bid / 1 ask); ``on_fill(now, order_id, side, px, lots)``;
      ``on_order_done(now, order_id, how)`` (``"filled"``, ``"canceled"``,
      ``"rejected"``); ``on_book_invalid(now)``: the book is unknown until the next
      snapshot (the trader has already cancelled everything); ``on_timer(now)``
      every ``timer_interval`` seconds.
    * Actions: :meth:`buy`, :meth:`sell`, :meth:`cancel`, :meth:`replace`,
      :meth:`cancel_all`, and :meth:`quote` (keep one order a side at given prices).
    """

    #: seconds between on_timer calls (0: none)
    timer_interval: float = 0.0
    book: Any = None
    trader: Any = None

    # -- callbacks (override)
    def on_start(self, now: int) -> None: ...

    def on_book(self, now: int) -> None: ...

    # -- what it knows
    @property
    def position(self) -> int:
        """The known position, lots (fills reported so far)."""
        return self.trader.position

    @property
    def tick_size(self) -> float:
        return self.trader.limits["tick_size"]

    @property
    def lot_size(self) -> float:
        return self.trader.limits["lot_size"]

    # -- actions (ids > 0; 0: a limit refused it, ``self.trader.refusal`` says why)
    def buy(self, px: int, lots: int, post_only: bool = True) -> int:
        return self.trader.new(BUY, px, lots, post_only)

    def sell(self, px: int, lots: int, post_only: bool = True) -> int:
        return self.trader.new(SELL, px, lots, post_only)

    def cancel(self, order_id: int) -> bool:
        return self.trader.cancel(order_id)

    def replace(self, order_id: int, px: int, lots: int) -> int:
        return self.trader.replace(order_id, px, lots)

    def cancel_all(self) -> int:
        return self.trader.cancel_all()

    def quote(self, bid_px: Optional[int], ask_px: Optional[int], lots: int = 1, threshold: int = 1,
              post_only: bool = True) -> None:
        """Keep one working order a side: at ``bid_px`` / ``ask_px`` [ticks] (None:
        no order on that side), moved when it is ``threshold`` ticks or more away."""
        for side, px in ((BUY, bid_px), (SELL, ask_px)):
            work = self.trader.working(side)
            for oid, *_ in work[:-1]:
                self.trader.cancel(oid)
            w = work[-1] if work else None
            if px is None:
                if w is not None:
                    self.trader.cancel(w[0])
            elif w is None:
                self.trader.new(side, px, lots, post_only)
            elif abs(w[1] - px) >= threshold:
                if not self.trader.replace(w[0], px, lots) and self.trader.refusal != "rate limit":
                    self.trader.cancel(w[0])


def adapt(strategy: Any) -> Any:
    """A strategy object for the drivers: a compiled :class:`hftcore.strategy.Strategy`
    as it is, a Python one wrapped in :class:`hftcore.strategy.PyStrategy`."""
    from hftcore.strategy import Strategy as CoreStrategy

    if isinstance(strategy, CoreStrategy):
        return strategy
    return PyStrategy(strategy)


def load_strategy(spec: str) -> type:
    """``"package.module:Class"`` or ``"path/to/file.py:Class"`` -> the class (a
    :class:`Strategy` or a compiled :class:`hftcore.strategy.Strategy` subclass).
    A bad spec is a :class:`hftmm.config.ConfigError` naming it."""
    import importlib
    import importlib.util
    import os

    from hftcore.strategy import Strategy as CoreStrategy

    from hftmm.config import ConfigError

    mod_name, sep, cls_name = spec.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise ConfigError("strategy", f"expected MODULE:CLASS or FILE.py:CLASS, got {spec!r}")
    try:
        if mod_name.endswith(".py") or os.sep in mod_name:
            if not os.path.isfile(mod_name):
                raise ConfigError("strategy", f"no such file: {mod_name}")
            u = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(mod_name))[0], mod_name)
            module = importlib.util.module_from_spec(u)
            u.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError("strategy", f"cannot import {mod_name}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ConfigError("strategy", f"{mod_name} has no class {cls_name}")
    if not issubclass(cls, (Strategy, CoreStrategy)):
        raise ConfigError("strategy", f"{spec} is neither an hftmm.strategy.Strategy nor an "
                                      f"hftcore.strategy.Strategy subclass")
    return cls
