"""The live state store: the engine writes (:class:`StateStore`), the dashboard reads
(:class:`StateReader`), operators send commands (:func:`send_command`).

SQLite in WAL mode (``synchronous=NORMAL``): readers never block the writer and the
writer never blocks readers. Orders, fills and risk events are committed as they
are recorded, so a crash of the engine process (even ``kill -9``) loses nothing that
was committed; with ``synchronous=NORMAL`` a power loss may drop the last commits.
The tables are :data:`hftmm.live.schema.SCHEMA`; units as documented there (ns, price
units, base-asset units, quote currency).

The configuration stored with a session never holds secrets: keys that look like
one (api_key, secret, private_key, password, token, ...) are dropped at any depth.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import numbers
import os
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from hftmm.errors import HftmmError
from hftmm.live.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, STATUS_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "StateStore", "StateReader", "StatePublisher", "StateStoreError", "Command",
    "send_command", "sanitize_config", "COMMANDS", "BOOK_DEPTH", "SessionInUse", "running_session", "SessionGroup",
    "lock_path",
]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
Levels = Sequence[Sequence[Any]]

#: commands an operator may send (see the ``commands`` table in the schema)
COMMANDS = ("kill", "resume")
#: book levels kept per side at each publish
BOOK_DEPTH = 20
#: status columns that must be present in every publish (NOT NULL in the schema)
REQUIRED_STATUS = ("position", "cash", "risk_state", "open_orders", "orders_sent", "fills", "synced")
DEFAULT_KEEP_S = 24 * 3600.0
BUSY_TIMEOUT_MS = 5000
NS_PER_S = 1_000_000_000

_SECRET_KEY = re.compile(
    r"api_?key|apikey|secret|private_?key|password|passwd|passphrase|token|signature|credential|webhook",
    re.IGNORECASE,
)
_STATUS_SET = frozenset(STATUS_COLUMNS)


class StateStoreError(HftmmError, ValueError):
    """Misuse of the state store (unknown status key, no session, wrong schema version)."""


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.replace("-", "_")))


def sanitize_config(value: Any) -> Any:
    """A JSON-ready copy of ``value`` without any key that looks like a secret (any depth).

    Decimals become strings, tuples and sets lists, dataclass-like objects are not expanded
    (the caller passes plain dicts); anything else is converted with ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): sanitize_config(v) for k, v in value.items() if not _is_secret_key(k)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [sanitize_config(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _num(value: Any, key: str) -> Any:
    """SQLite-ready scalar: bool -> int, numpy/Decimal numbers -> int/float, NaN -> NULL."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (numbers.Real, Decimal)):
        f = float(value)
        return f if math.isfinite(f) else None
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum such as OrderState
        return value.value
    raise StateStoreError(f"{key}: cannot store {type(value).__name__} {value!r}")


def _levels_json(levels: Optional[Levels], name: str) -> str:
    out = []
    for i, level in enumerate(levels or ()):
        if i >= BOOK_DEPTH:
            break
        if len(level) != 2:
            raise StateStoreError(f"{name}[{i}]: expected (price, qty), got {level!r}")
        out.append([_num(level[0], f"{name}[{i}].price"), _num(level[1], f"{name}[{i}].qty")])
    return json.dumps(out, separators=(",", ":"))


class SessionInUse(StateStoreError):
    """A second writer on a state database whose session is running."""


def lock_path(path: PathLike) -> Path:
    """The lock file of state database ``path`` (``<path>.lock``): held exclusively
    (``flock``) by the process whose session is running, released when the session ends
    or the process dies (even ``kill -9``)."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


def _lock_holder(path: PathLike) -> Optional[dict[str, Any]]:
    """What the running session wrote into the lock file, if a process holds the lock;
    None when no session is running."""
    lp = lock_path(path)
    try:
        fd = os.open(lp, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raw = os.pread(fd, 4096, 0)
            try:
                info = json.loads(raw.decode() or "{}")
            except (UnicodeDecodeError, json.JSONDecodeError):
                info = {}
            return info if isinstance(info, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_session(path: PathLike) -> Optional[dict[str, Any]]:
    """The session running on state database ``path``: ``{"session_id", "pid", "mode",
    "symbol", "market", "started_ns", "sessions"}``, or None when no process holds its lock
    (a session row without an end time and no lock holder is one whose process died).
    A process trading several symbols (:class:`SessionGroup`) runs one session per
    symbol: ``sessions`` lists them all, ``session_id`` is the first, ``symbol`` names
    them all (comma-separated)."""
    info = _lock_holder(path)
    if info is None:
        return None
    out = {k: info.get(k) for k in ("session_id", "pid", "mode", "symbol", "market", "started_ns")}
    out["sessions"] = list(info.get("sessions") or ([out["session_id"]] if out["session_id"] else []))
    return out


class _SessionLock:
    """The exclusive lock of one running session (see :func:`lock_path`)."""

    def __init__(self, path: PathLike) -> None:
        self.path = lock_path(path)
        self.fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            self.fd = None
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateStoreError(f"cannot lock state database {str(path)!r}: {e}") from None
            who = running_session(path) or {}
            raise SessionInUse(
                f"state database {str(path)!r} is in use by running session {who.get('session_id') or '?'} "
                f"({who.get('mode') or '?'} {who.get('symbol') or '?'}, pid {who.get('pid') or '?'}): one "
                f"session per state database -- stop it (hftmm kill --state-db ...) or use another "
                f"--state-db") from None

    def write(self, info: Mapping[str, Any]) -> None:
        if self.fd is None:
            return
        data = json.dumps(dict(info), sort_keys=True).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


class SessionGroup:
    """The sessions of one process that trades several symbols on one state database
    (:class:`hftmm.live.portfolio.PortfolioEngine`): one session per symbol (its own
    rows), one lock for all of them -- a second process is refused as for one session,
    and the lock file names every session (:func:`running_session`)."""

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self._lock: Optional[_SessionLock] = _SessionLock(path)    # SessionInUse: another process runs
        self.sessions: list[dict[str, Any]] = []
        self._mutex = threading.Lock()

    def add(self, info: Mapping[str, Any]) -> None:
        """A session of the group started (``session_id``, ``mode``, ``symbol``, ``market``, ...)."""
        with self._mutex:
            self.sessions.append(dict(info))
            first = self.sessions[0]
            if self._lock is not None:
                self._lock.write({**first, "pid": os.getpid(),
                                  "symbol": ",".join(str(x["symbol"]) for x in self.sessions),
                                  "sessions": [x["session_id"] for x in self.sessions]})

    def release(self) -> None:
        """Release the database's lock (idempotent): when every session has ended."""
        with self._mutex:
            lk, self._lock = self._lock, None
        if lk is not None:
            lk.release()


_INIT_LOCK = threading.Lock()     # StateStore set-up, process-wide


def _wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> str:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock it
    needs (sqlite's busy handler does not wait for it), up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000.0
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _connect(path: PathLike, *, readonly: bool = False, must_exist: bool = False,
             busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    p = Path(path).resolve()
    if readonly or must_exist:
        mode = "ro" if readonly else "rw"
        uri = f"{p.as_uri()}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout_ms / 1000)
        except sqlite3.OperationalError as e:
            raise StateStoreError(f"cannot open state database {str(p)!r}: {e}") from None
    else:
        conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


def send_command(path: PathLike, command: str, args: Optional[Mapping[str, Any]] = None,
                 session_id: Optional[str] = None, *, clock: Callable[[], int] = time.time_ns) -> int:
    """Queue an operator command for the engine; returns its id.

    ``command``: one of :data:`COMMANDS` (``kill`` with args ``{"reason", "flatten"}``,
    ``resume``). ``session_id``: the session it is meant for (``None``: whichever session
    is running). The database must exist (the engine creates it).
    """
    if command not in COMMANDS:
        raise StateStoreError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    args_json = json.dumps(sanitize_config(dict(args or {})))
    conn = _connect(path, must_exist=True)
    try:
        cur = conn.execute("INSERT INTO commands (ts_ns, command, args_json, session_id) VALUES (?, ?, ?, ?)",
                           (clock(), command, args_json, session_id))
        return int(cur.lastrowid)
    finally:
        conn.close()


@dataclass(frozen=True)
class Command:
    """An operator command. ``ts_ns``: when it was sent (ns); ``args``: its parameters."""

    id: int
    ts_ns: int
    command: str
    args: dict
    session_id: Optional[str]


class StateStore:
    """The engine's writer. One instance per process; its methods are thread-safe.

    Sessions share the file one after another: :meth:`start_session` takes the database's
    exclusive lock (:func:`lock_path`) and refuses with :class:`SessionInUse` while another
    process's session runs; :meth:`end_session` / :meth:`close` (or the process's death)
    release it.

    ``path``: the database file (created with the schema if missing).
    ``clock``: wall clock, ns; every ``ts_ns`` argument defaults to it.
    ``group``: a :class:`SessionGroup` whose lock this store's session shares (several
    symbols in one process); the group, not the store, releases it.
    """

    def __init__(self, path: PathLike, *, clock: Callable[[], int] = time.time_ns,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS, group: Optional[SessionGroup] = None) -> None:
        self.path = Path(path)
        self.group = group
        self.clock = clock
        self.session_id: Optional[str] = None
        self._started_ns: Optional[int] = None
        self._lock = threading.Lock()
        self._session_lock: Optional[_SessionLock] = None
        self._conn: Optional[sqlite3.Connection] = _connect(path, busy_timeout_ms=busy_timeout_ms)
        conn = self._conn
        # one store at a time sets a database up: switching a new file to WAL takes a lock
        # sqlite's busy handler does not wait for, and two could insert the schema version
        # (several symbols of one process open one database at once)
        with _INIT_LOCK:
            mode = _wal(conn, busy_timeout_ms)
            if str(mode).lower() != "wal":
                log.warning("state store %s: journal_mode is %s, not WAL", path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            has_status = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'status'").fetchone() is not None
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() else None
            if has_status and row is not None and row[0].isdigit() and int(row[0]) < SCHEMA_VERSION:
                old = int(row[0])
                conn.execute("BEGIN IMMEDIATE")  # older database: migrate in one transaction
                try:
                    for v in range(old, SCHEMA_VERSION):
                        for stmt in MIGRATIONS.get(v, ()):
                            conn.execute(stmt)
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                log.info("state store %s: migrated schema %d -> %d", path, old, SCHEMA_VERSION)
            conn.executescript(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                conn.close()
                self._conn = None
                raise StateStoreError(f"{path}: schema_version {row[0]}, this code writes {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateStoreError("state store is closed")
        return self._conn

    def _session(self) -> str:
        if self.session_id is None:
            raise StateStoreError("no session: call start_session() first")
        return self.session_id

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """One statement in its own (autocommit) transaction; returns lastrowid."""
        with self._lock:
            return int(self._db().execute(sql, params).lastrowid or 0)

    def _ts(self, ts_ns: Optional[int]) -> int:
        return self.clock() if ts_ns is None else int(ts_ns)

    # ------------------------------------------------------------------ sessions
    def start_session(self, mode: str, symbol: str, market: str, config: Mapping[str, Any],
                      *, ts_ns: Optional[int] = None) -> str:
        """Open a session (``mode``: paper / testnet / live; ``market``: e.g. ``spot``).

        ``config`` is stored as JSON without secret-looking keys. Returns the session id.
        """
        for name, value in (("mode", mode), ("symbol", symbol), ("market", market)):
            if not isinstance(value, str) or not value:
                raise StateStoreError(f"{name} must be a non-empty string, got {value!r}")
        if self._session_lock is None and self.group is None:
            self._session_lock = _SessionLock(self.path)     # SessionInUse: another session runs
        sid = uuid.uuid4().hex
        started = self._ts(ts_ns)
        config_json = json.dumps(sanitize_config(dict(config)), sort_keys=True)
        try:
            self._write("INSERT INTO sessions (session_id, started_ns, mode, symbol, market, config_json) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (sid, started, mode, symbol, market, config_json))
        except BaseException:
            self._release_session()
            raise
        info = {"session_id": sid, "pid": os.getpid(), "mode": mode, "symbol": symbol, "market": market,
                "started_ns": started}
        if self.group is not None:
            self.group.add(info)
        else:
            self._session_lock.write(info)
        self.session_id, self._started_ns = sid, started
        log.info("state store: session %s started (%s %s %s)", sid, mode, market, symbol)
        return sid

    def get_meta(self, key: str) -> Optional[str]:
        """A value of the deployment-wide key/value table (None when absent)."""
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, str(value)))

    def end_session(self, reason: str, *, ts_ns: Optional[int] = None) -> None:
        """Mark the current session ended (``reason``: e.g. ``"stopped"``, ``"killed: ..."``)."""
        sid = self._session()
        try:
            self._write("UPDATE sessions SET ended_ns = ?, end_reason = ? WHERE session_id = ?",
                        (self._ts(ts_ns), str(reason), sid))
        finally:
            self._release_session()

    def _release_session(self) -> None:
        lk, self._session_lock = self._session_lock, None
        if lk is not None:
            lk.release()

    # ------------------------------------------------------------------ status
    def publish(self, status: Mapping[str, Any], bids: Optional[Levels] = None, asks: Optional[Levels] = None,
                *, ts_ns: Optional[int] = None) -> int:
        """One status row and one book row, in one transaction. Returns their ``ts_ns``.

        ``status``: keys from :data:`hftmm.live.schema.STATUS_COLUMNS` (an unknown key is
        an error naming it; :data:`REQUIRED_STATUS` must be present). ``bids`` / ``asks``:
        ``[(price, qty), ...]`` best first; the top :data:`BOOK_DEPTH` are kept.
        """
        sid = self._session()
        for key in status:
            if key not in _STATUS_SET:
                raise StateStoreError(f"unknown status key {key!r} (not a column of the status table)")
        missing = [k for k in REQUIRED_STATUS if status.get(k) is None]
        if missing:
            raise StateStoreError(f"status is missing required key {missing[0]!r}")
        ts = self._ts(ts_ns)
        cols = list(status)
        values = [_num(status[k], k) for k in cols]
        bids_json, asks_json = _levels_json(bids, "bids"), _levels_json(asks, "asks")
        sql = (f"INSERT INTO status (ts_ns, session_id, {', '.join(cols)}) "
               f"VALUES (?, ?{', ?' * len(cols)})")
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                conn.execute(sql, [ts, sid, *values])
                conn.execute("INSERT INTO book (ts_ns, session_id, bids_json, asks_json) VALUES (?, ?, ?, ?)",
                             (ts, sid, bids_json, asks_json))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return ts

    def prune(self, keep_s: float = DEFAULT_KEEP_S, *, now_ns: Optional[int] = None) -> int:
        """Delete status and book rows older than ``keep_s`` seconds (all sessions).
        Orders, fills, risk events and commands are kept. Returns the rows deleted."""
        cutoff = self._ts(now_ns) - int(keep_s * NS_PER_S)
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                n = conn.execute("DELETE FROM status WHERE ts_ns < ?", (cutoff,)).rowcount
                n += conn.execute("DELETE FROM book WHERE ts_ns < ?", (cutoff,)).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return n

    # ------------------------------------------------------------------ orders, fills, events
    def record_order(self, client_order_id: str, side: str, price: Any, qty: Any, filled_qty: Any,
                     state: Any, *, order_id: Optional[int] = None, reason: Optional[str] = None,
                     ts_ns: Optional[int] = None) -> None:
        """One order state change (committed at once). ``price``: price units; ``qty`` and
        ``filled_qty``: base units; ``state``: an ``OrderState`` or its name."""
        sid = self._session()
        self._write(
            "INSERT INTO orders (ts_ns, session_id, client_order_id, order_id, side, price, qty, filled_qty, "
            "state, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._ts(ts_ns), sid, str(client_order_id), _num(order_id, "order_id"), str(side),
             _num(price, "price"), _num(qty, "qty"), _num(filled_qty, "filled_qty"), _num(state, "state"),
             reason))

    def record_fill(self, client_order_id: str, side: str, price: Any, qty: Any, fee: Any, position: Any,
                    *, order_id: Optional[int] = None, trade_id: Optional[int] = None,
                    fee_asset: Optional[str] = None, maker: Optional[bool] = True, mid: Any = None,
                    latency_ms: Any = None, ts_ns: Optional[int] = None) -> None:
        """One fill (committed at once). ``price``: price units; ``qty``: base units; ``fee``:
        in ``fee_asset``; ``position``: inventory after the fill, base units; ``maker``:
        ``None`` (unknown) is stored as 0; ``latency_ms``: quote-to-fill or report latency, ms."""
        sid = self._session()
        self._write(
            "INSERT INTO fills (ts_ns, session_id, client_order_id, order_id, trade_id, side, price, qty, fee, "
            "fee_asset, maker, position, mid, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._ts(ts_ns), sid, str(client_order_id), _num(order_id, "order_id"), _num(trade_id, "trade_id"),
             str(side), _num(price, "price"), _num(qty, "qty"), _num(fee, "fee"), fee_asset, int(bool(maker)),
             _num(position, "position"), _num(mid, "mid"), _num(latency_ms, "latency_ms")))

    def record_risk_event(self, kind: str, detail: str, *, ts_ns: Optional[int] = None) -> None:
        """One risk event (breach, kill, pause, resync, reconnect...), committed at once."""
        sid = self._session()
        self._write("INSERT INTO risk_events (ts_ns, session_id, kind, detail) VALUES (?, ?, ?, ?)",
                    (self._ts(ts_ns), sid, str(kind), str(detail)))

    def record_risk_events(self, events: Iterable[tuple[int, str, str]]) -> int:
        """Several ``(ts_ns, kind, detail)`` events (``RiskManager.take_events()``) in one
        transaction. Returns how many."""
        sid = self._session()
        rows = [(int(ts), sid, str(kind), str(detail)) for ts, kind, detail in events]
        if rows:
            with self._lock:
                conn = self._db()
                conn.execute("BEGIN")
                try:
                    conn.executemany("INSERT INTO risk_events (ts_ns, session_id, kind, detail) "
                                     "VALUES (?, ?, ?, ?)", rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        return len(rows)

    # ------------------------------------------------------------------ commands
    def pending_commands(self) -> list[Command]:
        """Unconsumed commands for this session: addressed to it, or to no session and sent
        since it started (older unaddressed commands are stale and ignored)."""
        sid = self._session()
        with self._lock:
            rows = self._db().execute(
                "SELECT id, ts_ns, command, args_json, session_id FROM commands WHERE consumed_ns IS NULL "
                "AND (session_id = ? OR (session_id IS NULL AND ts_ns >= ?)) ORDER BY id",
                (sid, self._started_ns)).fetchall()
        out = []
        for cid, ts, command, args_json, csid in rows:
            try:
                args = json.loads(args_json or "{}")
            except json.JSONDecodeError:
                log.warning("state store: command %d has malformed args %r", cid, args_json)
                args = {}
            out.append(Command(int(cid), int(ts), command, args if isinstance(args, dict) else {}, csid))
        return out

    def mark_consumed(self, command_id: int, *, ts_ns: Optional[int] = None) -> None:
        """The engine has acted on command ``command_id``."""
        self._write("UPDATE commands SET consumed_ns = ? WHERE id = ? AND consumed_ns IS NULL",
                    (self._ts(ts_ns), int(command_id)))

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the connection and release the session's lock (idempotent)."""
        self._release_session()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "StateStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StatePublisher:
    """Publishes a status snapshot when due; the engine calls :meth:`maybe_publish` from its loop.

    ``interval_s``: seconds between publishes (1.0: 1 Hz). ``keep_s``: status/book history
    kept (s); :meth:`StateStore.prune` runs every ``prune_every_s`` seconds.
    """

    def __init__(self, store: StateStore, interval_s: float = 1.0, *, keep_s: float = DEFAULT_KEEP_S,
                 prune_every_s: float = 600.0) -> None:
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise ValueError(f"interval_s must be finite and > 0, got {interval_s!r}")
        self.store = store
        self.interval_ns = int(interval_s * NS_PER_S)
        self.keep_s = keep_s
        self.prune_every_ns = int(prune_every_s * NS_PER_S)
        self._last: Optional[int] = None
        self._last_prune: Optional[int] = None
        self.published = 0
        self.failed = 0

    def due(self, now_ns: int) -> bool:
        return self._last is None or now_ns - self._last >= self.interval_ns

    def maybe_publish(self, now_ns: int, build: Callable[[], tuple[Mapping[str, Any], Levels, Levels]]) -> bool:
        """If due at ``now_ns`` (ns), call ``build() -> (status, bids, asks)`` and publish.

        A locked database (``sqlite3.OperationalError``) is logged and retried at the next
        call; other errors (unknown status keys...) propagate. Returns True if published.
        """
        if not self.due(now_ns):
            return False
        status, bids, asks = build()
        try:
            self.store.publish(status, bids, asks, ts_ns=now_ns)
            if self._last_prune is None or now_ns - self._last_prune >= self.prune_every_ns:
                self._last_prune = now_ns
                self.store.prune(self.keep_s, now_ns=now_ns)
        except sqlite3.OperationalError as e:
            self.failed += 1
            log.warning("state store: publish failed (%s); retrying next loop", e)
            return False
        self._last = now_ns
        self.published += 1
        return True


class StateReader:
    """Read-only view for the dashboard (``mode=ro``); it never blocks the writer.

    ``session_id=None`` in the methods below means the latest session. Times are ns;
    tables come back as ``pandas.DataFrame`` with the schema's columns.
    """

    def __init__(self, path: PathLike, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self._conn = _connect(path, readonly=True, busy_timeout_ms=busy_timeout_ms)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "StateReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        cur = self._conn.execute(sql, params)
        return [d[0] for d in cur.description], cur.fetchall()

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> "pd.DataFrame":
        import pandas as pd

        cols, rows = self._rows(sql, params)
        return pd.DataFrame.from_records(rows, columns=cols)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Optional[dict[str, Any]]:
        cols, rows = self._rows(sql, params)
        return dict(zip(cols, rows[0])) if rows else None

    def _sid(self, session_id: Optional[str]) -> Optional[str]:
        if session_id is not None:
            return session_id
        latest = self.latest_session()
        return None if latest is None else latest["session_id"]

    def _table(self, table: str, session_id: Optional[str], since_ns: Optional[int],
               order: str = "ts_ns") -> "pd.DataFrame":
        sid = self._sid(session_id)
        return self._frame(f"SELECT * FROM {table} WHERE session_id IS ? AND ts_ns >= ? ORDER BY {order}",
                           (sid, -1 if since_ns is None else int(since_ns)))

    def running_session(self) -> Optional[dict[str, Any]]:
        """The session whose process holds the database's lock (:func:`running_session`), or None."""
        return running_session(self.path)

    def command_consumed(self, command_id: int) -> Optional[int]:
        """When the engine acted on command ``command_id`` (ns), or None while pending."""
        row = self._one("SELECT consumed_ns FROM commands WHERE id = ?", (int(command_id),))
        return None if row is None or row["consumed_ns"] is None else int(row["consumed_ns"])

    def sessions(self) -> "pd.DataFrame":
        """All sessions, newest first (``config_json`` as stored)."""
        return self._frame("SELECT * FROM sessions ORDER BY started_ns DESC")

    def latest_session(self) -> Optional[dict[str, Any]]:
        """The most recently started session as a dict (``config`` parsed), or None."""
        row = self._one("SELECT * FROM sessions ORDER BY started_ns DESC, rowid DESC LIMIT 1")
        if row is not None:
            row["config"] = json.loads(row["config_json"])
        return row

    def latest_status(self, session_id: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The newest status row as a dict, or None."""
        return self._one("SELECT * FROM status WHERE session_id IS ? ORDER BY ts_ns DESC, rowid DESC LIMIT 1",
                         (self._sid(session_id),))

    def status_history(self, session_id: Optional[str] = None, since_ns: Optional[int] = None) -> "pd.DataFrame":
        """Status rows with ``ts_ns >= since_ns``, oldest first."""
        return self._table("status", session_id, since_ns, "ts_ns, rowid")

    def latest_book(self, session_id: Optional[str] = None) -> Optional[dict[str, Any]]:
        """``{"ts_ns", "bids": [(price, qty), ...], "asks": [...]}`` (best first), or None."""
        row = self._one("SELECT ts_ns, bids_json, asks_json FROM book WHERE session_id IS ? "
                        "ORDER BY ts_ns DESC, rowid DESC LIMIT 1", (self._sid(session_id),))
        if row is None:
            return None
        return {"ts_ns": row["ts_ns"],
                "bids": [tuple(level) for level in json.loads(row["bids_json"])],
                "asks": [tuple(level) for level in json.loads(row["asks_json"])]}

    def orders(self, session_id: Optional[str] = None, since_ns: Optional[int] = None) -> "pd.DataFrame":
        """Order state changes, oldest first."""
        return self._table("orders", session_id, since_ns, "ts_ns, rowid")

    def fills(self, session_id: Optional[str] = None, since_ns: Optional[int] = None) -> "pd.DataFrame":
        """Fills, oldest first."""
        return self._table("fills", session_id, since_ns, "ts_ns, rowid")

    def risk_events(self, session_id: Optional[str] = None, since_ns: Optional[int] = None) -> "pd.DataFrame":
        """Risk events, oldest first."""
        return self._table("risk_events", session_id, since_ns, "ts_ns, rowid")

    def commands(self, session_id: Optional[str] = None, since_ns: Optional[int] = None) -> "pd.DataFrame":
        """Commands addressed to the session or to none, oldest first."""
        sid = self._sid(session_id)
        return self._frame("SELECT * FROM commands WHERE (session_id IS ? OR session_id IS NULL) "
                           "AND ts_ns >= ? ORDER BY id", (sid, -1 if since_ns is None else int(since_ns)))
