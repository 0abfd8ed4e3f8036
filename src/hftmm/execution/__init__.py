"""Order-entry building blocks: request signing, symbol filters, rate limits and
the sans-I/O order state machine (no sockets here; gateways drive them)."""
from hftmm.execution.filters import SymbolFilters, to_decimal
from hftmm.execution.orders import *  # noqa: F401,F403
from hftmm.execution.orders import __all__ as _orders_all
from hftmm.execution.ratelimits import RateLimit, RateLimitBanned, RateLimiter
from hftmm.execution.signing import (
    CredentialsError,
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    ServerClock,
    Signer,
    load_credentials,
    parse_dotenv,
    rest_payload,
    signed_query,
    signed_ws_params,
    ws_payload,
)

__all__ = [
    "CredentialsError", "Ed25519Signer", "HmacSigner", "RateLimit", "RateLimitBanned", "RateLimiter",
    "RsaSigner", "ServerClock", "Signer", "SymbolFilters", "load_credentials", "parse_dotenv",
    "rest_payload", "signed_query", "signed_ws_params", "to_decimal", "ws_payload", *_orders_all,
]
