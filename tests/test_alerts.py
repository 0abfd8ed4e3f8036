"""Alerts (hftmm.ops.alerts) against a local HTTP sink on 127.0.0.1: the three formats,
the rate limit, no secrets, retries and a destination that is down."""
from __future__ import annotations

import json
import os
from datetime import datetime
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
from alert_sink import AlertSink  # noqa: E402
from hftmm.config import AlertConfig, ConfigError, build_alert_config  # noqa: E402
from hftmm.ops.alerts import Alerter  # noqa: E402

TOKEN = "123456:AAE-secret-bot-token"


class Clock:
    def __init__(self, t=1_700_000_000_000_000_000):
        self.t = t

    def __call__(self):
        return self.t


def _cfg(url, **kw):
    return AlertConfig(webhook_url=url + "/hook", slack_webhook_url=url + "/slack/T000/B000/XXXX",
                       telegram_bot_token=TOKEN, telegram_chat_id="-1001", telegram_api_url=url + "/tg", **kw)


def test_three_formats_and_no_secrets():
    with AlertSink() as sink:
        al = Alerter(_cfg(sink.url), {"symbol": "BTCUSDT", "mode": "testnet", "session_id": "s1"})
        al.add_secret("APIKEY-abcdef123456")
        assert al.destinations() == ["webhook", "slack", "telegram"]
        assert al.alert("kill", "kill switch: operator (key APIKEY-abcdef123456)", position=0.002,
                        api_key="APIKEY-abcdef123456", detail={"secret": "x", "n": 1})
        reqs = sink.wait(lambda r: len(r) == 3)
        al.close()
    by = {path.split("/")[1]: body for _, path, body in reqs}
    hook = by["hook"]
    assert hook["kind"] == "kill" and hook["severity"] == "critical" and hook["symbol"] == "BTCUSDT"
    assert hook["mode"] == "testnet" and hook["session_id"] == "s1" and hook["suppressed"] == 0
    assert hook["fields"] == {"position": 0.002, "detail": {"n": 1}}     # secret-named fields dropped
    assert "***" in hook["text"]
    assert datetime.fromisoformat(hook["time"]).timestamp() == pytest.approx(hook["ts_ns"] / 1e9, abs=1e-5)
    assert by["slack"] == {"text": "[hftmm CRITICAL] BTCUSDT testnet: kill: kill switch: operator (key ***)"}
    tg_path = next(p for _, p, _ in reqs if p.startswith("/tg"))
    assert tg_path == f"/tg/bot{TOKEN}/sendMessage"
    assert by["tg"] == {"chat_id": "-1001", "text": by["slack"]["text"], "disable_web_page_preview": True}
    for _, _, body in reqs:                      # the token only in Telegram's URL, the key nowhere
        assert TOKEN not in json.dumps(body) and "APIKEY-abcdef123456" not in json.dumps(body)
    assert al.sent == 3 and al.failed == 0
    assert TOKEN not in repr(al.config)


def test_rate_limit_per_kind_with_a_count_of_what_was_held():
    clk = Clock()
    with AlertSink() as sink:
        al = Alerter(AlertConfig(webhook_url=sink.url, min_interval_s=60.0), {"symbol": "X"}, clock=clk)
        assert al.alert("feed_resync", "one")
        for _ in range(4):
            clk.t += 1_000_000_000
            assert not al.alert("feed_resync", "again")
        assert al.alert("risk_pause", "another kind is not held back")
        assert al.alert("kill", "kill 1") and al.alert("kill", "kill 2")     # never suppressed
        clk.t += 61_000_000_000
        assert al.alert("feed_resync", "after the interval")
        reqs = sink.wait(lambda r: len(r) == 5)
        al.close()
    kinds = [(b["kind"], b["suppressed"]) for _, _, b in reqs]
    assert kinds == [("feed_resync", 0), ("risk_pause", 0), ("kill", 0), ("kill", 0), ("feed_resync", 4)]
    assert al.suppressed == 4


def test_retries_429_retry_after_and_a_destination_that_is_down(caplog):
    tg429 = json.dumps({"ok": False, "error_code": 429, "parameters": {"retry_after": 0.05}}).encode()
    with AlertSink(status=lambda n: 429 if n == 1 else (500 if n == 2 else 200),
                   body=lambda n: tg429 if n == 1 else b"{}") as sink:
        al = Alerter(AlertConfig(telegram_bot_token=TOKEN, telegram_chat_id=7, telegram_api_url=sink.url))
        al.alert("kill", "x")
        sink.wait(lambda r: len(r) == 1)
        al.close()
    assert sink.hits == 3 and al.sent == 1 and al.failed == 0
    # nothing listening: counted as failed, the caller never blocked, no URL (token) in the log
    with AlertSink() as sink:
        url = sink.url
    al = Alerter(AlertConfig(telegram_bot_token=TOKEN, telegram_chat_id="1", telegram_api_url=url,
                             timeout_s=0.5))
    assert al.alert("kill", "nobody hears this")
    al.close(timeout_s=10.0)
    assert al.failed == 1 and al.sent == 0
    assert "delivery to telegram failed" in caplog.text and TOKEN not in caplog.text and url not in caplog.text


def test_a_client_error_is_not_retried():
    with AlertSink(status=lambda n: 400) as sink:
        al = Alerter(AlertConfig(webhook_url=sink.url))
        al.alert("kill", "x")
        al.close()
    assert sink.hits == 1 and al.failed == 1


def test_config_refusals_name_the_field_and_the_token_comes_from_the_environment():
    with pytest.raises(ConfigError, match="AlertConfig.webhook_url.*http"):
        AlertConfig(webhook_url="ftp://x")
    with pytest.raises(ConfigError, match="AlertConfig.telegram_chat_id.*both"):
        AlertConfig(telegram_bot_token=TOKEN)
    with pytest.raises(ConfigError, match="AlertConfig.min_interval_s"):
        AlertConfig(min_interval_s=-1)
    with pytest.raises(ConfigError, match="alerts.bogus"):
        build_alert_config({"alerts": {"bogus": 1}}, env={})
    cfg = build_alert_config({"alerts": {"telegram_chat_id": "42", "min_interval_s": 5}},
                             env={"HFTMM_ALERTS_TELEGRAM_BOT_TOKEN": TOKEN})
    assert cfg.telegram_bot_token == TOKEN and cfg.min_interval_s == 5 and cfg.enabled
    assert not AlertConfig().enabled
    with pytest.raises(ConfigError, match="AlertConfig.slack_webhook_url") as e:
        AlertConfig(slack_webhook_url="hooks.slack.com/services/T/B/SECRETPART")
    assert "SECRETPART" not in str(e.value)
    from hftmm.live.state import sanitize_config
    assert sanitize_config({"alerts": {"slack_webhook_url": "u", "telegram_bot_token": "t", "telegram_chat_id": 1}}) \
        == {"alerts": {"telegram_chat_id": 1}}
