"""Strategy: the compiled market maker and the interface to write your own, the
pricer (quotes as a calculator), the live order manager and the risk supervisor."""
from hftcore.strategy import MarketMaker, Trader

from hftmm.strategy.base import Strategy
from hftmm.strategy.pricer import AvellanedaStoikovPricer, Quote, QuoteParameters
from hftmm.strategy.quote_manager import Decision, QuoteManager
from hftmm.strategy.risk import RiskManager

__all__ = ["Strategy", "MarketMaker", "Trader", "AvellanedaStoikovPricer", "Quote", "QuoteParameters",
           "QuoteManager", "Decision", "RiskManager"]
