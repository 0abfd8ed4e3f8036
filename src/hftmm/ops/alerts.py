"""Alerts: what an operator must hear about at once, to webhooks, off the trading thread.

Kinds (severity): ``kill`` (critical: the kill switch tripped), ``risk_pause`` /
``risk_resume`` (warning / info: quoting paused by a limit or condition, and cleared),
``feed_resync`` (warning: the book lost the stream and re-snapshotted), ``feed_down``
(critical: no market data past the risk manager's stale limit), ``reconnect_storm``
(warning: ``reconnect_storm`` reconnects within 60 s), ``session_start`` (info),
``session_end`` (info; critical when orders were not confirmed cancelled).

Destinations (any combination, from :class:`hftmm.config.AlertConfig`):

* a generic JSON webhook: one POST per alert, body ``{"kind", "severity", "text", "ts_ns",
  "time", "symbol", "mode", "session_id", "fields", "suppressed"}``;
* a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Discord's
  ``/slack`` route): ``{"text": ...}``;
* the Telegram Bot API: ``POST {telegram_api_url}/bot<token>/sendMessage`` with
  ``{"chat_id", "text", "disable_web_page_preview": true}``; a 429 answer's
  ``parameters.retry_after`` is honoured.

Rate limit: one alert per kind per ``min_interval_s``; the next one delivered says how
many were suppressed in between. ``kill`` and ``session_end`` are never suppressed.
No alert carries secrets: fields with secret-looking names are dropped, the values
registered with :meth:`Alerter.add_secret` (API keys, the bot token) are masked in
every text, and errors name the destination (``telegram``), never its URL.

Delivery is one background thread with a bounded queue: :meth:`Alerter.alert` never
blocks the caller; a destination that is down costs its retries (``timeout_s`` each)
on that thread only and is counted in ``failed``.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from hftmm.live.state import sanitize_config

if TYPE_CHECKING:  # pragma: no cover
    from hftmm.config import AlertConfig

__all__ = ["Alerter", "Alert", "SEVERITY", "NEVER_SUPPRESSED"]

log = logging.getLogger(__name__)

#: default severity of each alert kind
SEVERITY = {"kill": "critical", "risk_pause": "warning", "risk_resume": "info", "feed_resync": "warning",
            "feed_down": "critical", "reconnect_storm": "warning", "session_start": "info",
            "session_end": "info", "portfolio_limit": "warning", "test": "info"}
#: kinds the rate limit never drops
NEVER_SUPPRESSED = frozenset({"kill", "session_end"})
QUEUE_SIZE = 1000
RETRIES = 2
MAX_RETRY_AFTER_S = 10.0


@dataclass
class Alert:
    """One alert as delivered (``ts_ns``: wall clock, ns)."""

    kind: str
    severity: str
    text: str
    ts_ns: int
    fields: dict = field(default_factory=dict)
    suppressed: int = 0


class Alerter:
    """Sends alerts to the destinations of ``config`` (an :class:`~hftmm.config.AlertConfig`).

    ``source``: what every alert names (``symbol``, ``mode``, ``session_id``), updatable
    with :meth:`set_source`. ``clock``: wall clock in ns (the rate limit's time).
    Counters: ``sent`` (deliveries that succeeded, per destination), ``suppressed``
    (rate limit), ``dropped`` (queue full), ``failed`` (deliveries given up).
    """

    def __init__(self, config: "AlertConfig", source: Optional[Mapping[str, Any]] = None, *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.source: dict[str, Any] = dict(source or {})
        self.clock = clock
        self._secrets: set[str] = set()
        if config.telegram_bot_token:
            self._secrets.add(config.telegram_bot_token)
        self._last: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._q: "queue.Queue[Optional[Alert]]" = queue.Queue(QUEUE_SIZE)
        self.sent = self.suppressed = self.dropped = self.failed = 0
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        if self.destinations():
            self._thread = threading.Thread(target=self._run, name="hftmm-alerts", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ API
    def destinations(self) -> list[str]:
        """The configured destinations' names (``webhook``, ``slack``, ``telegram``)."""
        c = self.config
        return [n for n, on in (("webhook", c.webhook_url), ("slack", c.slack_webhook_url),
                                ("telegram", c.telegram_bot_token and c.telegram_chat_id)) if on]

    def add_secret(self, value: Optional[str]) -> None:
        """Mask ``value`` (an API key, a secret) wherever it would appear in an alert."""
        if value and len(value) >= 4:
            self._secrets.add(str(value))

    def set_source(self, **values: Any) -> None:
        self.source.update(values)

    def alert(self, kind: str, text: str, *, severity: Optional[str] = None, **fields: Any) -> bool:
        """Queue an alert; False when the rate limit or a full queue dropped it. Never blocks."""
        if self._closed or self._thread is None:
            return False
        now = self.clock()
        gap = int(self.config.min_interval_s * 1e9)
        with self._lock:
            last = self._last.get(kind)
            if kind not in NEVER_SUPPRESSED and last is not None and now - last < gap:
                self._held[kind] = self._held.get(kind, 0) + 1
                self.suppressed += 1
                return False
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        a = Alert(kind, severity or SEVERITY.get(kind, "warning"), self._mask(str(text)), now,
                  self._mask_obj(sanitize_config(dict(fields))), held)
        try:
            self._q.put_nowait(a)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s`` [s]) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            try:
                self._q.put(None, timeout=timeout_s)
            except queue.Full:
                pass
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ formats
    def _mask(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _mask_obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._mask(value)
        if isinstance(value, dict):
            return {k: self._mask_obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._mask_obj(v) for v in value]
        return value

    def line(self, a: Alert) -> str:
        """The one-line human text of an alert (Slack and Telegram)."""
        s = self.source
        who = " ".join(str(x) for x in (s.get("symbol"), s.get("mode")) if x)
        more = f" (+{a.suppressed} more since the last one)" if a.suppressed else ""
        return self._mask(f"[hftmm {a.severity.upper()}] {who}: {a.kind}: {a.text}{more}")

    def payloads(self, a: Alert) -> list[tuple[str, str, dict]]:
        """``(destination, url, JSON body)`` for each destination."""
        c, s = self.config, self.source
        out = []
        if c.webhook_url:
            t = _dt.datetime.fromtimestamp(a.ts_ns / 1e9, _dt.timezone.utc).isoformat()
            out.append(("webhook", c.webhook_url, {
                "kind": a.kind, "severity": a.severity, "text": a.text, "ts_ns": a.ts_ns, "time": t,
                "symbol": s.get("symbol"), "mode": s.get("mode"), "session_id": s.get("session_id"),
                "fields": a.fields, "suppressed": a.suppressed}))
        if c.slack_webhook_url:
            out.append(("slack", c.slack_webhook_url, {"text": self.line(a)}))
        if c.telegram_bot_token and c.telegram_chat_id:
            url = f"{c.telegram_api_url.rstrip('/')}/bot{c.telegram_bot_token}/sendMessage"
            out.append(("telegram", url, {"chat_id": c.telegram_chat_id, "text": self.line(a),
                                          "disable_web_page_preview": True}))
        return out

    # ------------------------------------------------------------------ delivery
    def _run(self) -> None:
        while True:
            a = self._q.get()
            if a is None:
                return
            for dest, url, body in self.payloads(a):
                ok = self._post(dest, url, body)
                with self._lock:
                    if ok:
                        self.sent += 1
                    else:
                        self.failed += 1

    def _post(self, dest: str, url: str, body: dict) -> bool:
        data = json.dumps(body).encode()
        for attempt in range(RETRIES + 1):
            req = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "hftmm-alerts"})
            wait = 0.5 * 2 ** attempt
            try:
                with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                    resp.read()
                return True
            except urllib.error.HTTPError as e:
                why = f"HTTP {e.code}"
                if e.code == 429:
                    try:
                        ra = json.loads(e.read().decode() or "{}").get("parameters", {}).get("retry_after")
                    except (ValueError, AttributeError):
                        ra = None
                    ra = ra if ra is not None else e.headers.get("Retry-After")
                    try:
                        wait = min(MAX_RETRY_AFTER_S, float(ra)) if ra is not None else wait
                    except ValueError:
                        pass
                elif 400 <= e.code < 500:
                    log.warning("alerts: %s refused the alert (%s); not retried", dest, why)
                    return False
            except (urllib.error.URLError, OSError, ValueError) as e:
                why = type(getattr(e, "reason", e)).__name__      # never the URL (it may hold a token)
            if attempt < RETRIES:
                time.sleep(wait)
        log.warning("alerts: delivery to %s failed after %d attempts (%s)", dest, RETRIES + 1, why)
        return False
