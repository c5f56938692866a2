"""What the database says about the bot's health: feeds' state, the outbox per destination,
operator holds, the last alert, personal subscribers, live instances and the database's size.

One set of queries for the three readers of health (``/status``, ``/healthz``, ``status``):
``Store.health_facts`` on the running bot's own connection, ``read_health_facts`` read-only
beside it (or with no bot running), on either engine.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from .engine import Database, PgReader
from .schema import _dt, _iso, read_only

HELD_PREFIX = "paused:"  # a settings row per destination an operator held with /pause
PROBE_KEY = "ops:write_probe"  # a settings row the write probe rewrites
LIVE_INSTANCE = timedelta(seconds=60)  # instances heartbeat every 10 s


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedRecord:
    """A feed's row, as far as health is concerned."""

    name: str
    url: str
    last_status: str | None = None
    last_error: str | None = None
    last_polled_at: datetime | None = None
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    next_poll_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """Alerts pending for one destination."""

    count: int
    oldest: datetime  # when the oldest of them was queued


@dataclass(frozen=True, slots=True, kw_only=True)
class LastAlert:
    title: str
    feed: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """A live instance on a shared database."""

    id: str
    command: str
    roles: str
    seen_at: str
    config_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthFacts:
    feeds: dict[str, FeedRecord]
    pending: dict[str, Waiting]  # destination -> what waits for it
    held: frozenset[str]  # destinations an operator paused (/pause)
    last_alert: LastAlert | None
    alerts_today: int  # alerts queued since midnight UTC
    subscribers: int  # private chats with an active subscription
    suspended: int  # private chats whose subscriptions are suspended (the bot was blocked)
    instances: tuple[InstanceRecord, ...]
    size_bytes: int
    # configured destination -> its latest scheduled digest: (period end, status, sent at)
    digests: dict[str, tuple[datetime, str, datetime | None]] = field(default_factory=dict)


_Reader = Database | sqlite3.Connection | PgReader


def _rows(db: _Reader, sql: str, params: list[Any] | None = None) -> list[tuple]:
    return list(db.execute(sql, params or []))


def health_facts(db: _Reader, *, path: Path | None, now: datetime) -> HealthFacts:
    """The facts, read through any of the store's connections (rows read by index)."""
    feeds = {
        r[0]: FeedRecord(
            name=r[0],
            url=r[1],
            last_status=r[2],
            last_error=r[3],
            last_polled_at=_dt(r[4]),
            last_ok_at=_dt(r[5]),
            failing_since=_dt(r[6]),
            next_poll_at=_dt(r[7]),
            disabled_reason=r[8],
        )
        for r in _rows(
            db,
            "SELECT name, url, last_status, last_error, last_polled_at, last_ok_at, "
            "failing_since, next_poll_at, disabled_reason FROM feeds",
        )
    }
    pending = {
        r[0]: Waiting(count=r[1], oldest=datetime.fromisoformat(r[2]))
        for r in _rows(
            db,
            "SELECT d.destination, COUNT(*), MIN(a.created_at) FROM deliveries d "
            "JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' "
            "GROUP BY d.destination",
        )
    }
    held = _held(db)
    last = _rows(db, "SELECT title, feed, created_at FROM alerts ORDER BY id DESC LIMIT 1")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = _rows(db, "SELECT COUNT(*) FROM alerts WHERE created_at >= ?", [_iso(midnight)])
    subscribers = suspended = 0
    if "suspended_at" in _columns(db, "subscriptions"):  # schema 9 and later
        for active, chats in _rows(
            db,
            "SELECT suspended_at IS NULL, COUNT(DISTINCT chat_id) FROM subscriptions "
            "GROUP BY suspended_at IS NULL",
        ):
            if active:
                subscribers = chats
            else:
                suspended = chats
    else:
        subscribers = _rows(db, "SELECT COUNT(DISTINCT chat_id) FROM subscriptions")[0][0]
    instances: tuple[InstanceRecord, ...] = ()
    if _columns(db, "instances"):  # schema 7 and later
        instances = tuple(
            InstanceRecord(id=r[0], command=r[1], roles=r[2], seen_at=r[3], config_hash=r[4])
            for r in _rows(
                db,
                "SELECT id, command, roles, seen_at, config_hash FROM instances "
                "WHERE seen_at >= ? ORDER BY started_at, id",
                [_iso(now - LIVE_INSTANCE)],
            )
        )
    digests = {}
    if _columns(db, "digests"):  # schema 10 and later; a subscriber's (telegram:<id>) left out
        digests = {
            r[0]: (datetime.fromisoformat(r[1]), r[2], _dt(r[3]))
            for r in _rows(
                db,
                "SELECT destination, period_end, status, sent_at FROM digests d "
                "WHERE destination NOT LIKE '%:%' AND period_end = "
                "(SELECT MAX(period_end) FROM digests e WHERE e.destination = d.destination)",
            )
        }
    return HealthFacts(
        feeds=feeds,
        digests=digests,
        pending=pending,
        held=held,
        last_alert=LastAlert(
            title=last[0][0], feed=last[0][1], created_at=datetime.fromisoformat(last[0][2])
        )
        if last
        else None,
        alerts_today=today[0][0],
        subscribers=subscribers,
        suspended=suspended,
        instances=instances,
        size_bytes=_size(db, path),
    )


def _held(db: _Reader) -> frozenset[str]:
    return frozenset(
        r[0][len(HELD_PREFIX) :]
        for r in _rows(db, "SELECT key FROM settings WHERE key LIKE ?", [HELD_PREFIX + "%"])
    )


def _postgres(db: _Reader) -> bool:
    return isinstance(db, PgReader) or getattr(db, "dialect", None) == "postgresql"


def _columns(db: _Reader, table: str) -> set[str]:
    """A table's columns (readers of older files ask before they read a newer column)."""
    if _postgres(db):
        return {
            r[0]
            for r in _rows(
                db,
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = current_schema()",
                [table],
            )
        }
    return {r[1] for r in _rows(db, f"PRAGMA table_info({table})")}


def _size(db: _Reader, path: Path | None) -> int:
    if _postgres(db):
        return _rows(db, "SELECT pg_database_size(current_database())")[0][0]
    if path is None:
        return 0  # in memory
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def read_health_facts(database: Path | str, *, now: datetime) -> HealthFacts:
    """The facts, read-only: never writes, migrates or locks (a running bot is undisturbed).
    A missing or unreadable database is a ``StoreError``."""
    with read_only(database) as db:
        return health_facts(db, path=None if isinstance(db, PgReader) else Path(database), now=now)


class HealthStore:
    """The running bot's view of the same facts, and whether the database takes a write."""

    db: Database
    path: Path | None

    def health_facts(self, *, now: datetime) -> HealthFacts:
        return health_facts(self.db, path=self.path, now=now)

    def held(self) -> frozenset[str]:
        """The destinations an operator paused (/pause)."""
        return _held(self.db)

    def set_held(self, destination: str, held: bool) -> None:
        key = HELD_PREFIX + destination
        if held:
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, '1') ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                [key],
            )
        else:
            self.db.execute("DELETE FROM settings WHERE key = ?", [key])

    def probe_write(self, *, now: datetime) -> str | None:
        """Why the database does not accept a write now, or None when it does.

        Two checks: may this process open the file for writing now (what a restart needs; the
        bot's own connection keeps a writable handle after the file became read-only, and
        SQLite hands that same handle to new connections of this process), and does a
        committed write go through (a full disk, an I/O error). The write uses the bot's own
        connection, which is never inside a transaction between awaits: every store call is
        synchronous."""
        path = self.path
        if path is not None and not os.access(
            path, os.W_OK, effective_ids=os.access in os.supports_effective_ids
        ):
            return f"{path} is read-only for this process"
        sql = (
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value"
        )
        if not isinstance(self.db, sqlite_utils.Database):  # PostgreSQL: one committed write
            try:
                self.db.execute(sql, [PROBE_KEY, _iso(now)])
            except Exception as exc:  # noqa: BLE001 - whatever the failure, it is not writable
                text = str(exc).strip()
                return text.splitlines()[0] if text else type(exc).__name__
            return None
        conn = self.db.conn
        if conn.in_transaction:
            return None  # cannot happen between awaits; never commit someone else's work
        try:
            with conn:  # commits, or rolls back on error
                conn.execute(sql, [PROBE_KEY, _iso(now)])
        except sqlite3.Error as exc:
            return str(exc)
        return None
