"""The gateway interface: how the engine talks to an exchange (real or simulated).

The engine owns the order state (:class:`hftmm.execution.orders.OrderTracker`);
a gateway only moves requests out and answers back. Requests are Binance's own
parameter dicts (``/api/v3/order`` names, without ``timestamp``/``signature``,
which a signing gateway adds). Every answer comes back as a
:class:`GatewayEvent` through the ``sink`` given to :meth:`Gateway.start`;
gateways call the sink from their own threads, so the engine queues them.

Event kinds and their ``data`` (all Binance JSON, unchanged):

=====================  =================================================================
``new_ack``            the new-order response body (``orderId``, ``transactTime``, ...)
``new_reject``         ``{"code", "msg", "http_status"}`` (-1007 / 5xx: outcome unknown; a gateway may
                       report those as ``new_unknown``); ``"sent": False``: refused locally, never sent
``new_unknown``        ``{"detail"}``: timeout / connection lost, the order must be queried (optional
                       ``"sent"``: False if it never left; ``code``/``msg``/``http_status`` if answered)
``cancel_ack``         the cancel response body (``status``, ``executedQty``, ...)
``cancel_reject``      ``{"code", "msg", "http_status"}``
``cancel_unknown``     ``{"detail"}``
``cancel_replace``     ``{"http_status", "body", "cancel_client_order_id", "new_client_order_id"}``
                       (no answer: ``cancel_unknown`` + ``new_unknown``; a plain error, neither leg
                       attempted: ``cancel_reject`` + ``new_reject``)
``execution_report``   an ``executionReport`` event (user data stream)
``account_position``   an ``outboundAccountPosition`` event
``balance_update``     a ``balanceUpdate`` event
``query_result``       a ``GET /api/v3/order`` body
``query_not_found``    ``{"code", "msg"}`` (-2013)
``open_orders``        ``{"orders": [...]}`` (``GET /api/v3/openOrders``)
``account``            a ``GET /api/v3/account`` body
``user_stream``        ``{"state": "subscribed" | "disconnected" | "terminated", "detail"}``
``margin_call``        USD-M: a ``MARGIN_CALL`` event (``cw``, ``p``: the positions at risk)
``error``              ``{"detail"}``: anything else worth logging (never secrets)
=====================  =================================================================

``client_order_id`` names the order the event is about (``None`` for account
events). ``ts_ns`` is the local time the gateway received it (wall clock ns;
a paper gateway uses its simulated clock).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol

__all__ = ["GatewayEvent", "Gateway", "EVENT_KINDS"]

EVENT_KINDS = frozenset({
    "new_ack", "new_reject", "new_unknown", "cancel_ack", "cancel_reject", "cancel_unknown",
    "cancel_replace", "execution_report", "account_position", "balance_update", "query_result",
    "query_not_found", "open_orders", "account", "user_stream", "error", "margin_call",
})


@dataclass(frozen=True)
class GatewayEvent:
    """One answer from the exchange side. ``ts_ns``: receive time, ns."""

    kind: str
    ts_ns: int
    client_order_id: Optional[str] = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown gateway event kind {self.kind!r}")


Sink = Callable[[GatewayEvent], None]


class Gateway(Protocol):
    """What the engine needs from an exchange connection.

    All request methods return at once; outcomes arrive as events. ``params`` are
    Binance's order-endpoint parameters (strings for prices and quantities).
    """

    name: str

    def start(self, sink: Sink) -> None:
        """Connect (user data first, then reconcile: ``open_orders`` and ``account``)."""

    def stop(self) -> None:
        """Close connections; pending requests are answered or dropped."""

    def place_order(self, params: Mapping[str, Any]) -> None:
        """``POST /api/v3/order`` (LIMIT_MAKER for post-only quotes)."""

    def cancel_order(self, params: Mapping[str, Any]) -> None:
        """``DELETE /api/v3/order`` with ``orderId`` or ``origClientOrderId``."""

    def cancel_replace(self, params: Mapping[str, Any]) -> None:
        """``POST /api/v3/order/cancelReplace`` (STOP_ON_FAILURE)."""

    def query_order(self, params: Mapping[str, Any]) -> None:
        """``GET /api/v3/order`` -> ``query_result`` / ``query_not_found``."""

    def cancel_all(self, symbol: str) -> None:
        """``DELETE /api/v3/openOrders``: each cancelled order comes back as ``cancel_ack``
        (or an ``execution_report``)."""

    def reconcile(self, symbol: str) -> None:
        """``GET /api/v3/openOrders`` and ``GET /api/v3/account`` -> ``open_orders``, ``account``."""

    def read_account(self, tag: Optional[str] = None) -> None:
        """``GET /api/v3/account`` alone -> ``account``, its ``client_order_id`` = ``tag``."""
