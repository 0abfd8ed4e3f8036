"""Prometheus metrics of a live / paper session (opt-in: ``hftmm live --metrics-port``).

Served by ``prometheus_client`` on 127.0.0.1 by default (``--metrics-addr`` to expose
it further). Everything but the two latency histograms is read from the engine when
Prometheus scrapes, so the trading path pays nothing for it; the histograms cost one
bisect per observation. Every series carries ``symbol`` (and ``mode``). Units are
Prometheus's: seconds, base-asset units for position, quote currency for PnL and fees.

=================================  =========  =============================================
metric                             type       what
=================================  =========  =============================================
hftmm_session_info                 info       session_id, mode, market, symbol
hftmm_feed_messages_total          counter    market-data frames handled
hftmm_feed_trades_total            counter    trades received
hftmm_feed_gaps_total              counter    sequence gaps detected
hftmm_feed_resyncs_total           counter    book re-snapshots
hftmm_feed_reconnects_total        counter    WebSocket reconnects
hftmm_feed_malformed_total         counter    malformed frames (counted and skipped)
hftmm_feed_update_ids_lost_total   counter    update ids missing from the stream
hftmm_feed_update_ids_expected_total counter  update ids the stream should have carried
hftmm_feed_messages_lost_total     counter    depth messages missing (holes, each >= 1 message)
hftmm_feed_messages_expected_total counter    depth messages the stream should have carried
hftmm_feed_duplicates_total        counter    frames dropped: another feed delivered them first
hftmm_feeds_up                     gauge      redundant book feeds connected
hftmm_feed_age_seconds             gauge      since the last market-data frame
hftmm_book_synced                  gauge      1 while the book follows the stream
hftmm_feed_latency_seconds         histogram  receive time - exchange event time (raw clocks)
hftmm_order_rtt_seconds            histogram  order request -> exchange answer (testnet/live)
hftmm_orders_sent_total            counter    new orders sent (a replace counts one)
hftmm_cancels_sent_total           counter    cancels sent
hftmm_fills_total                  counter    fills
hftmm_rejects_total                counter    orders the exchange rejected
hftmm_open_orders                  gauge      orders open on the exchange
hftmm_position                     gauge      inventory [base]
hftmm_pnl                          gauge      cash + position at mid, fees included [quote]
hftmm_realized_pnl                 gauge      average-cost realised PnL before fees [quote]
hftmm_fees                         gauge      fees paid [quote]
hftmm_risk_state                   stateset   ok / paused / killed
hftmm_alerts_total                 counter    alerts by outcome (sent, failed, suppressed, dropped)
=================================  =========  =============================================
"""
from __future__ import annotations

import bisect
import logging
import math
import threading
from typing import Any, Iterable, Optional, Sequence

__all__ = ["LatencyHistogram", "MetricsExporter", "FEED_BUCKETS_S", "RTT_BUCKETS_S"]

log = logging.getLogger(__name__)

#: histogram bucket upper bounds, seconds
FEED_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
RTT_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


#: the engine's status keys served as hftmm_feed_<key> counters
FEED_COUNTERS = (("messages", "market-data frames handled"), ("trades", "trades received"),
                 ("gaps", "sequence gaps detected"), ("resyncs", "book re-snapshots"),
                 ("reconnects", "WebSocket reconnects"), ("malformed", "malformed frames, counted and skipped"),
                 ("messages_lost", "depth messages missing (holes in the chain, each at least one message)"),
                 ("messages_expected", "depth messages the stream should have carried"),
                 ("update_ids_expected", "update ids the stream should have carried"),
                 ("duplicates", "frames dropped because another feed delivered them first"))
#: status keys of the counters not named as their metric
_STATUS_KEY = {"duplicates": "feed_duplicates", "update_ids_expected": "ids_expected"}
#: (metric, trader counter, help)
ORDER_COUNTERS = (("hftmm_orders_sent", "sent", "new orders sent (a replace counts one)"),
                  ("hftmm_cancels_sent", "cancels", "cancels sent"), ("hftmm_fills", "fills", "fills"),
                  ("hftmm_rejects", "rejects", "orders the exchange rejected"))


class LatencyHistogram:
    """A fixed-bucket histogram (seconds) that the trading thread feeds cheaply:
    :meth:`observe_ms` is one bisect and two adds (the GIL makes them safe enough for a
    monitoring figure; a scrape copies the counts under a lock)."""

    def __init__(self, bounds_s: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds_s)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum_s = 0.0
        self._lock = threading.Lock()

    def observe_ms(self, ms: float) -> None:
        s = ms / 1000.0
        if not math.isfinite(s):
            return
        self.counts[bisect.bisect_left(self.bounds, s)] += 1
        self.sum_s += s

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``[(le, count), ..., ("+Inf", total)]`` and the sum [s]."""
        with self._lock:
            counts, total_s = list(self.counts), self.sum_s
        out, acc = [], 0
        for b, c in zip(self.bounds, counts):
            acc += c
            out.append((repr(b), acc))
        out.append(("+Inf", acc + counts[-1]))
        return out, total_s


class _EngineCollector:
    """Reads a LiveEngine at scrape time."""

    def __init__(self, engine: Any, exporter: "MetricsExporter") -> None:
        self.engine, self.exporter = engine, exporter

    def describe(self) -> Iterable[Any]:
        return []          # (unchecked registration: the families depend on the session)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import (
            CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily,
            StateSetMetricFamily,
        )

        e = self.engine
        if getattr(e, "connector", None) is None or getattr(e, "kernel", None) is None:
            return
        with e.lock:
            st = e.status()
            c = e.trader.counters()
            ids_lost = e.connector.stats.ids_lost
            alerter = e.alerter
        labels = ["symbol", "mode"]
        lv = [str(st["symbol"]), str(st["mode"])]
        info = InfoMetricFamily("hftmm_session", "the running session", labels=labels)
        info.add_metric(lv, {"session_id": e.session_id or "", "market": e.market})
        yield info

        def counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=labels)
            m.add_metric(lv, float(value or 0))
            return m

        def gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
            m = GaugeMetricFamily(name, doc, labels=labels)
            m.add_metric(lv, float("nan") if value is None else float(value))
            return m

        for key, doc in FEED_COUNTERS:
            yield counter(f"hftmm_feed_{key}", doc, st[_STATUS_KEY.get(key, key)])
        yield counter("hftmm_feed_update_ids_lost", "update ids missing from the stream", ids_lost)
        yield gauge("hftmm_feeds_up", "redundant book feeds connected", st["feeds_up"])
        age = st["feed_age_ms"]
        yield gauge("hftmm_feed_age_seconds", "seconds since the last market-data frame",
                    None if age is None else age / 1000.0)
        yield gauge("hftmm_book_synced", "1 while the book follows the stream", st["synced"])
        if e.market == "usdm":
            for key, doc in (("margin_ratio", "USD-M maintenance margin / margin balance (1 = liquidation)"),
                             ("effective_leverage", "USD-M |position notional| / equity"),
                             ("liquidation_price", "USD-M liquidation price of the position (quote)"),
                             ("wallet_balance", "USD-M wallet balance backing the position (quote)")):
                yield gauge(f"hftmm_{key}", doc, st.get(key))
        for name, doc, h in (("hftmm_feed_latency_seconds", "receive time minus exchange event time (raw clocks)",
                              self.exporter.feed_latency),
                             ("hftmm_order_rtt_seconds", "order request to exchange answer", self.exporter.order_rtt)):
            buckets, total = h.snapshot()
            m = HistogramMetricFamily(name, doc, labels=labels)
            m.add_metric(lv, buckets, sum_value=total)
            yield m
        for name, key, doc in ORDER_COUNTERS:
            yield counter(name, doc, c[key])
        yield gauge("hftmm_open_orders", "orders open on the exchange", st["open_orders"])
        yield gauge("hftmm_position", "inventory, base-asset units", st["position"])
        yield gauge("hftmm_pnl", "cash + position at mid, fees included, quote currency", st["pnl"])
        yield gauge("hftmm_realized_pnl", "average-cost realised PnL before fees, quote currency",
                    st["realized_pnl"])
        yield gauge("hftmm_fees", "fees paid, quote currency", st["fees"])
        risk = StateSetMetricFamily("hftmm_risk_state", "risk state", labels=labels)
        risk.add_metric(lv, {s: st["risk_state"] == s for s in ("ok", "paused", "killed")})
        yield risk
        if alerter is not None:
            m = CounterMetricFamily("hftmm_alerts", "alerts by outcome", labels=labels + ["outcome"])
            for outcome in ("sent", "failed", "suppressed", "dropped"):
                m.add_metric(lv + [outcome], float(getattr(alerter, outcome)))
            yield m


class MetricsExporter:
    """The HTTP endpoint ``/metrics`` for ``engine`` on ``addr:port`` (port 0: any free one;
    :attr:`port` tells which). :meth:`close` stops it."""

    def __init__(self, engine: Any, port: int, addr: str = "127.0.0.1") -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:  # pragma: no cover - the extra is missing
            from hftmm.errors import HftmmError

            raise HftmmError("--metrics-port needs prometheus_client: pip install 'hftmm[monitoring]'") from None
        self.feed_latency = LatencyHistogram(FEED_BUCKETS_S)
        self.order_rtt = LatencyHistogram(RTT_BUCKETS_S)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_EngineCollector(engine, self))
        try:
            self._server, self._thread = start_http_server(int(port), addr=addr, registry=self.registry)
        except OSError as exc:
            from hftmm.errors import HftmmError

            raise HftmmError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
        self.addr = addr
        self.port = int(self._server.server_address[1])
        log.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", addr, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def close(self) -> None:
        srv: Optional[Any] = getattr(self, "_server", None)
        if srv is not None:
            srv.shutdown()
            srv.server_close()
            self._server = None
