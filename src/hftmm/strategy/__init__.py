"""Strategy: the pricer, the quote manager and the risk manager."""
from hftmm.strategy.pricer import AvellanedaStoikovPricer, Quote, QuoteParameters
from hftmm.strategy.quote_manager import Decision, QuoteManager
from hftmm.strategy.risk import RiskDecision, RiskManager

__all__ = ["AvellanedaStoikovPricer", "Quote", "QuoteParameters", "QuoteManager", "Decision", "RiskManager",
           "RiskDecision"]
