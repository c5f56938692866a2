"""Persistence on SQLite (through sqlite-utils) or PostgreSQL (``engine``), split by domain
behind one ``Store`` facade:

- ``feeds``: feeds and their fetch state;
- ``items``: seen items, and the one transaction that records a poll;
- ``stories``: what the clusterer decided, edits of sent alerts, momentum;
- ``outbox``: alerts and their delivery state per destination;
- ``digests``: scheduled digests, once per destination and period, and what they are made of;
- ``operator``: mutes, settings, personal subscriptions and their suspension;
- ``health``: what the three health views read (feeds, outbox, holds, subscribers, instances),
  the write probe, and operator holds (/pause);
- ``websub``: the hub each feed names, and the subscriptions at hubs;
- ``shared``: feed leases and instance heartbeats, for several instances on one database;
- ``schema``: migrations (``PRAGMA user_version``) and shared conversions;
- ``engine``: the PostgreSQL handle and the few differences between the engines.

Every write that must be all-or-nothing runs inside ``db.atomic()``. The store records
decisions made elsewhere (who gets an alert: the pipeline; story membership: the clusterer).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from ..config import is_postgres_url
from ..errors import StoreError
from .digests import DigestStore
from .engine import Database, PgDatabase, redact_url
from .feeds import FeedsStore, FeedState
from .health import HealthFacts, HealthStore, read_health_facts
from .items import ItemsStore, stored_items
from .operator import OperatorStore
from .outbox import OutboxStore
from .schema import MIGRATIONS, SCHEMA_VERSION, _iso, migrate, read_only
from .shared import SharedStore
from .stories import StoriesStore
from .websub import WebSubStore

__all__ = [
    "FeedState",
    "HealthFacts",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Store",
    "copy_database",
    "open_store",
    "read_health_facts",
    "stored_items",
]


class Store(
    FeedsStore,
    ItemsStore,
    StoriesStore,
    OutboxStore,
    DigestStore,
    OperatorStore,
    SharedStore,
    HealthStore,
    WebSubStore,
):
    """The chipwatch database. Open it with ``open_store``."""

    def __init__(self, db: Database, path: Path | None):
        self.db = db
        self.path = path

    def close(self) -> None:
        self.db.close()

    def prune(self, *, older_than: timedelta, now: datetime) -> dict[str, int]:
        """Forget items, stories and fully delivered alerts older than ``now - older_than``,
        then give the space back (WAL checkpoint; VACUUM when much of the file is free)."""
        cutoff = _iso(now - older_than)
        with self.db.atomic():
            items = self.db.execute("DELETE FROM items WHERE seen_at < ?", [cutoff]).rowcount
            stories = self.db.execute("DELETE FROM stories WHERE last_seen < ?", [cutoff]).rowcount
            alerts = self.db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "deliveries d WHERE d.alert_id = alerts.id AND d.status IN ('pending', 'digest'))",
                [cutoff],
            ).rowcount
            # A digest's row is what makes it once: kept while its period can still be the
            # latest due (a week), whatever the retention.
            digest_cutoff = _iso(min(now - older_than, now - timedelta(days=8)))
            self.db.execute(
                "DELETE FROM digests WHERE period_end < ? AND status != 'pending'",
                [digest_cutoff],
            )
        if self.path is not None:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            if pages and free / pages > 0.25:
                self.db.execute("VACUUM")
        return {"items": items, "stories": stories, "alerts": alerts}


def open_store(path: Path | str | None) -> Store:
    """Open (creating and migrating as needed) the database: a SQLite file, a PostgreSQL URL
    (``postgresql://…``), or ``None`` for SQLite in memory."""
    if is_postgres_url(path):
        return _open_postgres(str(path))
    try:
        if path is None:
            db = sqlite_utils.Database(memory=True)
        else:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_utils.Database(path)
            db.execute("PRAGMA busy_timeout = 10000")
            _enable_wal(db)
            # In WAL mode NORMAL is crash-safe (a killed process loses nothing committed);
            # only a power cut may lose the last transactions. FULL would fsync every commit.
            db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from exc
    return Store(db, Path(path) if path else None)


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite file ``source`` (read-only: the running bot's WAL
    included) at ``target``, for a dry run to work on; none when ``source`` does not exist."""
    if not source.exists():
        return
    try:
        with read_only(source) as db:
            assert isinstance(db, sqlite3.Connection)
            copy = sqlite3.connect(target)
            try:
                db.backup(copy)
            finally:
                copy.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{source}: cannot read database: {exc}") from exc


def _enable_wal(db: sqlite_utils.Database, *, patience: float = 10.0) -> None:
    """Switch a file to WAL, retrying while another opener does the same.

    Two connections switching a new file at once both hold a read lock and want to upgrade;
    SQLite then fails one at once with "database is locked" instead of calling the busy handler
    (it would deadlock), so ``busy_timeout`` does not cover this one statement."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _open_postgres(url: str) -> Store:
    import psycopg

    db = PgDatabase(url)
    try:
        migrate(db, url)
    except psycopg.Error as exc:
        db.close()
        raise StoreError(f"{redact_url(url)}: cannot open database: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return Store(db, None)
