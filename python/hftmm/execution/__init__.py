"""Order-entry building blocks: request signing, symbol filters, rate limits."""
from .filters import SymbolFilters, to_decimal
from .ratelimits import RateLimit, RateLimitBanned, RateLimiter
from .signing import (
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
    "rest_payload", "signed_query", "signed_ws_params", "to_decimal", "ws_payload",
]
