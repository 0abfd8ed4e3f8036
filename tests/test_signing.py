import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives import hashes

from hftmm.execution import (
    CredentialsError, Ed25519Signer, HmacSigner, RsaSigner, ServerClock, load_credentials,
    parse_dotenv, rest_payload, signed_query, signed_ws_params, ws_payload,
)

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
WS_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
REST_PARAMS = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
               ("quantity", "1"), ("price", "0.1"), ("recvWindow", "5000"), ("timestamp", "1499827319559")]


def _pem(key, password=None):
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def test_rest_hmac_vector():
    payload = rest_payload(REST_PARAMS)
    assert payload == ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
                       "&recvWindow=5000&timestamp=1499827319559")
    sig = HmacSigner("anykey", SECRET).sign(payload)
    assert sig == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_rest_payload_query_plus_body():
    # Binance's mixed example: part in the query, part in the body, concatenated without '&'
    p = rest_payload(REST_PARAMS[:4], "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559")
    assert p == ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1"
                 "&recvWindow=5000&timestamp=1499827319559")
    assert HmacSigner("k", SECRET).sign(p) == \
        HmacSigner("k", SECRET).sign(rest_payload(REST_PARAMS[:4]) + rest_payload(REST_PARAMS[4:]))


def test_signed_query_hmac_matches_vector():
    q = signed_query(REST_PARAMS[:6], HmacSigner("k", SECRET), 1499827319559, 5000)
    assert q.endswith("&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")
    with pytest.raises(ValueError):
        signed_query(REST_PARAMS, HmacSigner("k", SECRET), 1499827319559)


def test_ws_hmac_vector():
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100,
              "timestamp": 1645423376532, "apiKey": WS_API_KEY, "signature": "ignored"}
    payload = ws_payload(params)
    assert payload == (f"apiKey={WS_API_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100"
                       "&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT")
    expect = "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    assert HmacSigner(WS_API_KEY, SECRET).sign(payload) == expect
    out = signed_ws_params({k: v for k, v in params.items()
                            if k not in ("apiKey", "timestamp", "recvWindow", "signature")},
                           HmacSigner(WS_API_KEY, SECRET), 1645423376532, 100)
    assert out["signature"] == expect and out["apiKey"] == WS_API_KEY


def test_non_ascii_percent_encoded():
    p = rest_payload({"symbol": "１２３４５６", "side": "BUY", "note": "a b&c=d/é"})
    assert p == ("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY"
                 "&note=a%20b%26c%3Dd%2F%C3%A9")
    assert p.isascii()
    # WS payload is not percent-encoded
    assert ws_payload({"symbol": "１２３", "a": "x y"}) == "a=x y&symbol=１２３"
    with pytest.raises(TypeError):
        rest_payload({"price": 0.1})
    assert rest_payload({"flag": True}) == "flag=true"


def test_ed25519_round_trip():
    key = ed25519.Ed25519PrivateKey.generate()
    signer = Ed25519Signer("ed25519-api-key", _pem(key))
    assert signer.key_type == "ED25519"
    payload = rest_payload(REST_PARAMS)
    sig = signer.sign(payload)
    assert len(sig) == 88
    key.public_key().verify(base64.b64decode(sig), payload.encode())
    q = signed_query(REST_PARAMS[:6], signer, 1499827319559)
    body, _, enc_sig = q.rpartition("&signature=")
    assert body == payload
    assert "+" not in enc_sig and "/" not in enc_sig and "=" not in enc_sig  # percent-encoded
    key.public_key().verify(base64.b64decode(unquote(enc_sig)), body.encode())


def test_ed25519_encrypted_and_wrong_type():
    key = ed25519.Ed25519PrivateKey.generate()
    pem = _pem(key, b"pw")
    s = Ed25519Signer("abcdefgh", pem, password="pw")
    key.public_key().verify(base64.b64decode(s.sign("x=1")), b"x=1")
    with pytest.raises(CredentialsError) as ei:
        Ed25519Signer("abcdefgh", pem, password="wrong")
    assert "pw" not in str(ei.value) and ei.value.__cause__ is None
    rkey = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CredentialsError):
        Ed25519Signer("abcdefgh", _pem(rkey))


def test_rsa_round_trip():
    rkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    s = RsaSigner("rsa-key-0001", _pem(rkey))
    sig = s.sign("symbol=BTCUSDT")
    rkey.public_key().verify(base64.b64decode(sig), b"symbol=BTCUSDT", padding.PKCS1v15(), hashes.SHA256())


def test_secrets_not_in_repr():
    h = HmacSigner(WS_API_KEY, SECRET)
    for text in (repr(h), str(h), f"{h}", repr([h])):
        assert SECRET not in text and WS_API_KEY not in text
        assert "HMAC" in text and "vmPU" in text
    key = ed25519.Ed25519PrivateKey.generate()
    pem = _pem(key)
    e = Ed25519Signer("abcdefgh", pem)
    assert "ED25519" in repr(e) and "abcd" in repr(e) and "abcdefgh" not in repr(e)
    assert b"PRIVATE" not in repr(e).encode()
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(h)


def test_dotenv_parsing():
    text = """
# comment
export BINANCE_API_KEY=abc123
BINANCE_API_SECRET="s3cr et"
QUOTED='x=y'
TRAIL=value # comment
BROKEN LINE
"""
    d = parse_dotenv(text)
    assert d == {"BINANCE_API_KEY": "abc123", "BINANCE_API_SECRET": "s3cr et", "QUOTED": "x=y",
                 "TRAIL": "value"}


def test_load_credentials_env_wins(tmp_path):
    envfile = tmp_path / ".env"
    envfile.write_text("BINANCE_API_KEY=fromfile\nBINANCE_API_SECRET=filesecret\n")
    s = load_credentials(env={}, dotenv_path=str(envfile))
    assert isinstance(s, HmacSigner) and s.api_key == "fromfile"
    assert s.sign("a=1") == HmacSigner("x", "filesecret").sign("a=1")
    s = load_credentials(env={"BINANCE_API_KEY": "fromenv"}, dotenv_path=str(envfile))
    assert s.api_key == "fromenv"


def test_load_credentials_private_key(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    kp = tmp_path / "key.pem"
    kp.write_bytes(_pem(key))
    s = load_credentials(env={"BINANCE_API_KEY": "edkey1234", "BINANCE_PRIVATE_KEY_PATH": str(kp),
                              "BINANCE_API_SECRET": "ignored"}, dotenv_path=None)
    assert isinstance(s, Ed25519Signer)
    key.public_key().verify(base64.b64decode(s.sign("a=1")), b"a=1")


def test_load_credentials_errors(tmp_path):
    with pytest.raises(CredentialsError, match="BINANCE_API_KEY"):
        load_credentials(env={}, dotenv_path=str(tmp_path / "missing.env"))
    with pytest.raises(CredentialsError) as ei:
        load_credentials(env={"BINANCE_API_KEY": "supersecretkeyvalue"}, dotenv_path=None)
    msg = str(ei.value)
    assert "BINANCE_API_SECRET" in msg and "BINANCE_PRIVATE_KEY_PATH" in msg
    assert "supersecretkeyvalue" not in msg
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRETGARBAGE\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CredentialsError) as ei:
        load_credentials(env={"BINANCE_API_KEY": "k1234", "BINANCE_PRIVATE_KEY_PATH": str(bad)},
                         dotenv_path=None)
    assert "TOPSECRET" not in str(ei.value) and "k1234" not in str(ei.value)
    assert ei.value.__cause__ is None and ei.value.__context__ is None


def test_server_clock():
    local = [1_000_000.0]
    c = ServerClock(local_ms=lambda: local[0])
    assert not c.synced and c.now_ms() == 1_000_000
    # sent at 1000, answered at 1100 -> midpoint 1050; server said 2050 -> offset 1000
    assert c.update(2050, 1000, 1100) == 1000
    assert c.rtt_ms == 100
    assert c.now_ms() == 1_001_000
    # a noisier sample (longer round trip) does not replace the better one
    c.update(5000, 2000, 2600)
    assert c.offset_ms == 1000
    c.update(3510, 2500, 2520)  # rtt 20, offset 1000
    assert c.rtt_ms == 20 and c.now_ms(local_ms=0) == 1000
    with pytest.raises(ValueError):
        c.update(1, 10, 5)
