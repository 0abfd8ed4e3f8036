"""The live state database (SQLite, WAL): what the engine publishes, what the dashboard reads.

One file per deployment (``--state-db``); several sessions may share it, each row
carries ``session_id``. Times are ``ts_ns`` (wall clock, ns since the epoch);
prices and quantities are floats in price / base-asset units (the edge of the
system: the engine converts from ticks/lots when it publishes).

* ``sessions``: one row per engine run (mode paper/testnet/live, symbol, the
  config as JSON, end time and why it ended).
* ``status``: one row per publish (>= 1 Hz): book top, our quotes, position,
  PnL (``pnl`` = cash + position at mid, fees included; ``realized_pnl``
  average-cost, before fees), risk state, latencies, feed health counters.
  Feed loss: ``messages_lost``/``messages_expected`` and ``ids_lost``/``ids_expected``
  of the merged depth stream (two separate figures: a message carries many ids),
  ``feeds_up`` of the redundant feeds, ``feed_duplicates``.
  ``feed_latency_ms`` is receive time minus the exchange's event time, raw: it
  includes the offset between the two clocks and can be negative. The newest
  row is "now"; the history is the time series the dashboard plots.
* ``book``: the top levels at each publish, ``bids_json``/``asks_json`` =
  ``[[price, qty], ...]`` best first.
* ``orders``: one row per order state change (append only).
* ``fills``: one row per fill (append only), committed as it happens.
* ``risk_events``: limit breaches, kill switch, resyncs, reconnects (append only).
* ``commands``: what an operator (the dashboard, ``hftmm kill``) asks the engine to
  do: ``kill`` (args ``{"reason", "flatten"}``), ``resume``. The engine marks
  each one consumed.
"""
from __future__ import annotations

SCHEMA_VERSION = 3

#: feed loss columns of ``status`` (version 2): the merged depth stream's messages
#: lost / expected and update ids lost / expected (``hftcore.sync.loss_figures``),
#: feeds (book connections) up, and frames dropped because another feed was first
LOSS_COLUMNS = ("messages_lost", "messages_expected", "ids_lost", "ids_expected", "feeds_up",
                "feed_duplicates")

#: USD-M margin columns of ``status`` (version 3; NULL on spot and in paper trading):
#: maintenance margin / margin balance, |notional| / equity, the liquidation price
#: [quote] and the wallet balance backing the position [quote]
MARGIN_COLUMNS = ("margin_ratio", "effective_leverage", "liquidation_price", "wallet_balance")

#: statements that bring a database of an older version to this one
MIGRATIONS = {
    1: [f"ALTER TABLE status ADD COLUMN {c} INTEGER" for c in LOSS_COLUMNS],
    2: [f"ALTER TABLE status ADD COLUMN {c} REAL" for c in MARGIN_COLUMNS],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, started_ns INTEGER NOT NULL, mode TEXT NOT NULL, symbol TEXT NOT NULL,
    market TEXT NOT NULL, config_json TEXT NOT NULL, ended_ns INTEGER, end_reason TEXT);
CREATE TABLE IF NOT EXISTS status (
    ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL,
    mid REAL, best_bid REAL, best_ask REAL, spread REAL,
    bid_quote REAL, ask_quote REAL, bid_qty REAL, ask_qty REAL,
    position REAL NOT NULL, cash REAL NOT NULL, equity REAL, pnl REAL, realized_pnl REAL, fees REAL,
    sigma REAL, reservation REAL, k REAL, A REAL,
    risk_state TEXT NOT NULL, kill_reason TEXT,
    open_orders INTEGER NOT NULL, orders_sent INTEGER NOT NULL, fills INTEGER NOT NULL,
    order_rtt_ms REAL, feed_age_ms REAL, feed_latency_ms REAL,
    messages INTEGER, trades INTEGER, trade_volume REAL, gaps INTEGER, resyncs INTEGER,
    reconnects INTEGER, malformed INTEGER, synced INTEGER NOT NULL,
    messages_lost INTEGER, messages_expected INTEGER, ids_lost INTEGER, ids_expected INTEGER,
    feeds_up INTEGER, feed_duplicates INTEGER,
    margin_ratio REAL, effective_leverage REAL, liquidation_price REAL, wallet_balance REAL);
CREATE INDEX IF NOT EXISTS status_ts ON status (session_id, ts_ns);
CREATE TABLE IF NOT EXISTS book (
    ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL, bids_json TEXT NOT NULL, asks_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS book_ts ON book (session_id, ts_ns);
CREATE TABLE IF NOT EXISTS orders (
    ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER,
    side TEXT NOT NULL, price REAL NOT NULL, qty REAL NOT NULL, filled_qty REAL NOT NULL,
    state TEXT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS orders_ts ON orders (session_id, ts_ns);
CREATE TABLE IF NOT EXISTS fills (
    ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER,
    trade_id INTEGER, side TEXT NOT NULL, price REAL NOT NULL, qty REAL NOT NULL, fee REAL NOT NULL,
    fee_asset TEXT, maker INTEGER NOT NULL, position REAL NOT NULL, mid REAL, latency_ms REAL);
CREATE INDEX IF NOT EXISTS fills_ts ON fills (session_id, ts_ns);
CREATE TABLE IF NOT EXISTS risk_events (
    ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL, command TEXT NOT NULL,
    args_json TEXT NOT NULL DEFAULT '{}', consumed_ns INTEGER, session_id TEXT);
"""

#: status columns in table order (what StateStore.publish accepts)
STATUS_COLUMNS = (
    "mid", "best_bid", "best_ask", "spread", "bid_quote", "ask_quote", "bid_qty", "ask_qty",
    "position", "cash", "equity", "pnl", "realized_pnl", "fees", "sigma", "reservation", "k", "A",
    "risk_state", "kill_reason", "open_orders", "orders_sent", "fills", "order_rtt_ms", "feed_age_ms",
    "feed_latency_ms", "messages", "trades", "trade_volume", "gaps", "resyncs", "reconnects", "malformed",
    "synced",
) + LOSS_COLUMNS + MARGIN_COLUMNS
