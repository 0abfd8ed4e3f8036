"""Binance request signing (REST and WS API), credentials and server-time offset.

Secrets never appear in ``repr``/``str`` or in exception messages: signers show
only their key type and the first 4 characters of the API key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from urllib.parse import quote

__all__ = [
    "CredentialsError",
    "Ed25519Signer",
    "HmacSigner",
    "RsaSigner",
    "ServerClock",
    "Signer",
    "load_credentials",
    "parse_dotenv",
    "rest_payload",
    "signed_query",
    "signed_ws_params",
    "ws_payload",
]

Params = Iterable[tuple[str, object]] | Mapping[str, object]


class CredentialsError(ValueError):
    """Missing or unusable credentials. The message names variables, never values."""


def _value_str(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise TypeError("float parameter values are not allowed (use str or Decimal)")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _items(params: Params) -> list[tuple[str, str]]:
    pairs = params.items() if isinstance(params, Mapping) else params
    return [(str(k), _value_str(v)) for k, v in pairs]


def _pct(s: str) -> str:
    # RFC 3986: everything except unreserved characters is encoded, UTF-8 first.
    return quote(s, safe="-_.~")


def rest_payload(params: Params, body: str = "") -> str:
    """REST signature payload: percent-encoded query string (order kept) + body, no separator."""
    query = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in _items(params))
    return query + body


def ws_payload(params: Mapping[str, object]) -> str:
    """WS API signature payload: all params but ``signature``, sorted by name, no percent-encoding."""
    items = sorted((k, v) for k, v in _items(params) if k != "signature")
    return "&".join(f"{k}={v}" for k, v in items)


def _key_prefix(api_key: str) -> str:
    return api_key[:4] + "..."


class Signer:
    """Base class. ``sign(payload) -> str``; ``key_type`` is HMAC, ED25519 or RSA."""

    __slots__ = ("_api_key",)
    key_type = ""

    def __init__(self, api_key: str):
        if not isinstance(api_key, str) or not api_key:
            raise CredentialsError("API key is empty")
        self._api_key = api_key

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def url_encode_signature(self) -> bool:
        """Base64 signatures must be percent-encoded in URLs; hex needs nothing."""
        return True

    def sign(self, payload: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_type={self.key_type!r}, api_key={_key_prefix(self._api_key)!r})"

    __str__ = __repr__

    def __reduce__(self):  # no pickling of secrets
        raise TypeError(f"{type(self).__name__} cannot be pickled")


class HmacSigner(Signer):
    __slots__ = ("_secret",)
    key_type = "HMAC"

    def __init__(self, api_key: str, secret: str | bytes):
        super().__init__(api_key)
        if not secret:
            raise CredentialsError("HMAC secret is empty")
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)

    @property
    def url_encode_signature(self) -> bool:
        return False

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _load_private_key(private_key_pem: bytes, password: str | bytes | None):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(password, str):
        password = password.encode()
    if isinstance(private_key_pem, str):
        private_key_pem = private_key_pem.encode()
    try:
        return load_pem_private_key(private_key_pem, password=password)
    except Exception as exc:  # never chain: messages could echo input
        kind = type(exc).__name__
    raise CredentialsError(f"could not load the PEM private key ({kind}; wrong format or password?)")


class Ed25519Signer(Signer):
    __slots__ = ("_key",)
    key_type = "ED25519"

    def __init__(self, api_key: str, private_key_pem: bytes, password: str | bytes | None = None):
        super().__init__(api_key)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = _load_private_key(private_key_pem, password)
        if not isinstance(key, Ed25519PrivateKey):
            raise CredentialsError(f"private key is {type(key).__name__}, not Ed25519")
        self._key = key

    def public_key(self):
        return self._key.public_key()

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode("utf-8"))).decode("ascii")


class RsaSigner(Signer):
    __slots__ = ("_key",)
    key_type = "RSA"

    def __init__(self, api_key: str, private_key_pem: bytes, password: str | bytes | None = None):
        super().__init__(api_key)
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

        key = _load_private_key(private_key_pem, password)
        if not isinstance(key, RSAPrivateKey):
            raise CredentialsError(f"private key is {type(key).__name__}, not RSA")
        self._key = key

    def public_key(self):
        return self._key.public_key()

    def sign(self, payload: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        sig = self._key.sign(payload.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(sig).decode("ascii")


def signed_query(
    params: Params,
    signer: Signer,
    timestamp_ms: int,
    recv_window_ms: int | None = 5000,
    body: str = "",
) -> str:
    """Query string ready to send: params + recvWindow + timestamp + signature.

    The signature covers exactly the returned query (without ``&signature=``)
    followed by ``body``. Base64 signatures (Ed25519/RSA) are percent-encoded.
    """
    items = _items(params)
    names = {k for k, _ in items}
    for reserved in ("timestamp", "recvWindow", "signature"):
        if reserved in names:
            raise ValueError(f"{reserved!r} is added by signed_query; do not pass it")
    if recv_window_ms is not None:
        if not 0 < int(recv_window_ms) <= 60000:
            raise ValueError("recvWindow must be in (0, 60000] ms")
        items.append(("recvWindow", str(int(recv_window_ms))))
    items.append(("timestamp", str(int(timestamp_ms))))
    query = rest_payload(items)
    sig = signer.sign(query + body)
    if signer.url_encode_signature:
        sig = quote(sig, safe="")
    return f"{query}&signature={sig}"


def signed_ws_params(
    params: Mapping[str, object],
    signer: Signer,
    timestamp_ms: int,
    recv_window_ms: int | None = None,
) -> dict[str, str]:
    """WS API ``params`` with apiKey, timestamp, optional recvWindow and signature (not URL-encoded)."""
    out = {k: _value_str(v) for k, v in params.items() if k != "signature"}
    out["apiKey"] = signer.api_key
    out["timestamp"] = str(int(timestamp_ms))
    if recv_window_ms is not None:
        out["recvWindow"] = str(int(recv_window_ms))
    out["signature"] = signer.sign(ws_payload(out))
    return out


# ----------------------------------------------------------------- credentials

def parse_dotenv(text: str) -> dict[str, str]:
    """Minimal .env parser: ``KEY=VALUE`` lines, ``#`` comments, optional ``export``, quotes."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def load_credentials(env: Mapping[str, str] | None = None, dotenv_path: str | None = ".env") -> Signer:
    """A signer from ``BINANCE_API_KEY`` plus ``BINANCE_PRIVATE_KEY_PATH`` (Ed25519 or RSA PEM,
    optional ``BINANCE_PRIVATE_KEY_PASSWORD``) or ``BINANCE_API_SECRET`` (HMAC).

    Values come from ``env`` (default ``os.environ``) and the ``.env`` file; the
    environment wins. A private key path takes precedence over an HMAC secret.
    """
    if env is None:
        env = os.environ
    values: dict[str, str] = {}
    if dotenv_path and os.path.isfile(dotenv_path):
        with open(dotenv_path, encoding="utf-8") as fh:
            values.update(parse_dotenv(fh.read()))
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_PATH",
                 "BINANCE_PRIVATE_KEY_PASSWORD"):
        if env.get(name):
            values[name] = env[name]

    api_key = values.get("BINANCE_API_KEY")
    if not api_key:
        raise CredentialsError("BINANCE_API_KEY is not set (environment or .env)")
    key_path = values.get("BINANCE_PRIVATE_KEY_PATH")
    if key_path:
        try:
            with open(os.path.expanduser(key_path), "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise CredentialsError(
                f"BINANCE_PRIVATE_KEY_PATH: cannot read {key_path!r} ({exc.strerror})") from None
        password = values.get("BINANCE_PRIVATE_KEY_PASSWORD") or None
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

        key = _load_private_key(pem, password)
        if isinstance(key, Ed25519PrivateKey):
            return Ed25519Signer(api_key, pem, password)
        if isinstance(key, RSAPrivateKey):
            return RsaSigner(api_key, pem, password)
        raise CredentialsError(f"BINANCE_PRIVATE_KEY_PATH: unsupported key type {type(key).__name__}")
    secret = values.get("BINANCE_API_SECRET")
    if not secret:
        raise CredentialsError(
            "neither BINANCE_API_SECRET nor BINANCE_PRIVATE_KEY_PATH is set (environment or .env)")
    return HmacSigner(api_key, secret)


# ----------------------------------------------------------------- server time

class ServerClock:
    """Server-minus-local clock offset from ``GET /api/v3/time`` answers.

    ``update(server_ms, sent_local_ms, recv_local_ms)`` assumes the server
    stamped the midpoint of the round trip. Among the last ``keep`` samples
    the one with the shortest round trip is used.
    """

    def __init__(self, local_ms=None, keep: int = 8):
        self._local_ms = local_ms or (lambda: time.time() * 1000.0)
        self._keep = max(1, keep)
        self._samples: list[tuple[float, float]] = []  # (rtt, offset)
        self.offset_ms: float = 0.0
        self.rtt_ms: float | None = None

    @property
    def synced(self) -> bool:
        return bool(self._samples)

    def update(self, server_ms: float, sent_local_ms: float, recv_local_ms: float) -> float:
        rtt = recv_local_ms - sent_local_ms
        if rtt < 0:
            raise ValueError("recv_local_ms is before sent_local_ms")
        offset = server_ms - (sent_local_ms + recv_local_ms) / 2.0
        self._samples.append((rtt, offset))
        del self._samples[:-self._keep]
        self.rtt_ms, self.offset_ms = min(self._samples, key=lambda s: s[0])
        return self.offset_ms

    def now_ms(self, local_ms: float | None = None) -> int:
        """Estimated server time in integer ms (for ``timestamp``)."""
        local = self._local_ms() if local_ms is None else local_ms
        return int(local + self.offset_ms)
