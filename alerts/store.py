"""SQLite persistence through sqlite-utils: feeds and their fetch state, seen items, alerts and
their delivery state per destination (the outbox).

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n to n+1.
Every write that must be all-or-nothing runs inside ``db.atomic()``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from .errors import StoreError
from .match import Match, MatchResult
from .parse import FeedItem


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _run_script(db: sqlite_utils.Database, script: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the migration's transaction."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    for statement in without_comments.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_1(db: sqlite_utils.Database) -> None:
    _run_script(db, """
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        first_polled_at TEXT,          -- first successful poll: before it, the backlog rule applies
        last_polled_at TEXT,
        last_ok_at TEXT,
        last_status TEXT,              -- ok | not_modified | error
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        feed TEXT NOT NULL,
        guid TEXT NOT NULL,
        link TEXT NOT NULL,
        canonical_link TEXT,
        title TEXT NOT NULL,
        published TEXT,
        seen_at TEXT NOT NULL,
        alert_id INTEGER,
        UNIQUE (feed, guid)
    );
    CREATE INDEX items_canonical_link ON items (canonical_link);
    CREATE INDEX items_seen_at ON items (seen_at);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        feed TEXT NOT NULL,
        title TEXT NOT NULL,
        link TEXT NOT NULL,
        summary TEXT NOT NULL,
        published TEXT,
        created_at TEXT NOT NULL,
        matches TEXT NOT NULL,         -- JSON list of Match
        rules TEXT NOT NULL            -- JSON list of rule names
    );
    CREATE TABLE deliveries (
        alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | rejected
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        message_id TEXT,
        sent_at TEXT,
        PRIMARY KEY (alert_id, destination)
    );
    CREATE INDEX deliveries_pending ON deliveries (destination, status, next_attempt_at);
    """)


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Polling state: adaptive interval, backoff, moved and gone feeds, body-identical skip."""
    _run_script(db, """
    ALTER TABLE feeds ADD COLUMN effective_url TEXT;      -- after a permanent redirect
    ALTER TABLE feeds ADD COLUMN body_hash TEXT;          -- sha1 of the last body parsed
    ALTER TABLE feeds ADD COLUMN next_poll_at TEXT;       -- not before this (backoff, Retry-After)
    ALTER TABLE feeds ADD COLUMN interval_seconds REAL;   -- the current adaptive interval
    ALTER TABLE feeds ADD COLUMN failing_since TEXT;
    ALTER TABLE feeds ADD COLUMN disabled_reason TEXT;    -- e.g. 410 Gone, cleared by a new URL
    ALTER TABLE feeds ADD COLUMN last_new_at TEXT         -- when the feed last had a new item
    """)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    name: str
    url: str  # as configured
    effective_url: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    first_polled_at: datetime | None
    last_polled_at: datetime | None
    last_ok_at: datetime | None
    last_new_at: datetime | None
    last_status: str | None
    last_error: str | None
    consecutive_failures: int
    failing_since: datetime | None
    next_poll_at: datetime | None
    interval_seconds: float | None
    disabled_reason: str | None

    @property
    def fetch_url(self) -> str:
        return self.effective_url or self.url


_FEED_DATES = ("first_polled_at", "last_polled_at", "last_ok_at", "last_new_at",
               "failing_since", "next_poll_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A matched item that must reach its destinations; ``id`` is its outbox key."""

    id: int
    feed: str
    title: str
    link: str
    summary: str
    published: datetime | None
    created_at: datetime
    matches: tuple[Match, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewItem:
    """An item seen for the first time, with its match result when it should alert."""

    item: FeedItem
    canonical_link: str
    result: MatchResult | None  # None: record as seen without alerting


def _match_from_json(d: dict) -> Match:
    return Match(d["category"], d["term"], d["text"], d["kind"], float(d["score"]),
                 d.get("field", "title"))


class Store:
    """The chipwatch database. Open it with ``open_store``."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None):
        self.db = db
        self.path = path

    def close(self) -> None:
        self.db.close()

    # --- feeds ---------------------------------------------------------------------------

    def feed_state(self, name: str) -> FeedState | None:
        rows = list(self.db.query("SELECT * FROM feeds WHERE name = ?", [name]))
        if not rows:
            return None
        r = rows[0]
        fields = {k: r[k] for k in FeedState.__slots__}
        fields.update({k: _dt(r[k]) for k in _FEED_DATES})
        return FeedState(**fields)

    def feed_states(self) -> list[FeedState]:
        names = [r["name"] for r in self.db.query("SELECT name FROM feeds ORDER BY name")]
        return [s for s in map(self.feed_state, names) if s is not None]

    def _upsert_feed(self, name: str, url: str) -> None:
        """Create the feed's row; a changed URL starts its fetch state afresh."""
        self.db.execute(
            "INSERT INTO feeds (name, url) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
            "url = excluded.url, effective_url = NULL, etag = NULL, last_modified = NULL, "
            "body_hash = NULL, disabled_reason = NULL, next_poll_at = NULL, "
            "consecutive_failures = 0, failing_since = NULL WHERE feeds.url != excluded.url",
            [name, url])

    def update_feed(self, name: str, url: str, **fields: object) -> None:
        """Set fetch-state columns of a feed (datetimes are stored as ISO text)."""
        with self.db.atomic():
            self._upsert_feed(name, url)
            self._set_feed(name, fields)

    def _set_feed(self, name: str, fields: dict[str, object]) -> None:
        if not fields:
            return
        values = [_iso(v) if isinstance(v, datetime) else v for v in fields.values()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE feeds SET {assignments} WHERE name = ?", [*values, name])

    def record_failure(self, name: str, url: str, error: str, *, now: datetime,
                       next_poll_at: datetime | None = None) -> FeedState:
        with self.db.atomic():
            self._upsert_feed(name, url)
            self.db.execute(
                "UPDATE feeds SET last_polled_at = ?, last_status = 'error', last_error = ?, "
                "consecutive_failures = consecutive_failures + 1, "
                "failing_since = COALESCE(failing_since, ?), next_poll_at = ? WHERE name = ?",
                [_iso(now), error, _iso(now), _iso(next_poll_at), name])
        state = self.feed_state(name)
        assert state is not None
        return state

    def _mark_ok(self, name: str, status: str, now: datetime, fields: dict[str, object]) -> None:
        self._set_feed(name, {"last_polled_at": now, "last_ok_at": now, "last_status": status,
                              "last_error": None, "consecutive_failures": 0,
                              "failing_since": None, **fields})

    def record_unchanged(self, name: str, url: str, status: str, *, now: datetime,
                         **fields: object) -> None:
        """A 304, or a body identical to the last one: nothing to parse."""
        with self.db.atomic():
            self._upsert_feed(name, url)
            self._mark_ok(name, status, now, fields)

    def known_items(self, feed: str, items: Sequence[tuple[str, str]]) -> set[int]:
        """Indexes of (guid, canonical_link) pairs already seen: same guid in this feed, or the
        same canonical link from any feed."""
        known = set()
        for i, (guid, link) in enumerate(items):
            row = self.db.execute(
                "SELECT 1 FROM items WHERE (feed = ? AND guid = ?) "
                "OR (? != '' AND canonical_link = ?) LIMIT 1", [feed, guid, link, link]).fetchone()
            if row:
                known.add(i)
        return known

    def record_poll(self, name: str, url: str, new_items: Iterable[NewItem], *,
                    destinations: Sequence[str], now: datetime, **fields: object) -> list[int]:
        """In one transaction: mark the poll successful (with ``fields`` such as validators and
        the next poll time), record new items as seen, and queue an alert per destination for
        those that match. Returns the new alert ids."""
        alert_ids = []
        with self.db.atomic():
            self._upsert_feed(name, url)
            self.db.execute("UPDATE feeds SET first_polled_at = COALESCE(first_polled_at, ?) "
                            "WHERE name = ?", [_iso(now), name])
            self._mark_ok(name, "ok", now, fields)
            for new in new_items:
                item, alert_id = new.item, None
                if new.result is not None and new.result.alert:
                    cur = self.db.execute(
                        "INSERT INTO alerts (feed, title, link, summary, published, created_at, "
                        "matches, rules) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [item.feed, item.title, item.link, item.summary, _iso(item.published),
                         _iso(now), json.dumps([_match_json(m) for m in new.result.matches]),
                         json.dumps(list(new.result.rules))])
                    alert_id = cur.lastrowid
                    alert_ids.append(alert_id)
                    for dest in destinations:
                        self.db.execute("INSERT INTO deliveries (alert_id, destination) VALUES (?, ?)",
                                        [alert_id, dest])
                # OR IGNORE: two entries of one feed may share a guid; the first one wins.
                self.db.execute(
                    "INSERT OR IGNORE INTO items (feed, guid, link, canonical_link, title, published, "
                    "seen_at, alert_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [item.feed, item.guid, item.link, new.canonical_link or None, item.title,
                     _iso(item.published), _iso(now), alert_id])
        return alert_ids

    # --- outbox --------------------------------------------------------------------------

    def _alert_from_row(self, r: dict) -> Alert:
        return Alert(id=r["id"], feed=r["feed"], title=r["title"], link=r["link"],
                     summary=r["summary"], published=_dt(r["published"]),
                     created_at=_dt(r["created_at"]),
                     matches=tuple(_match_from_json(m) for m in json.loads(r["matches"])),
                     rules=tuple(json.loads(r["rules"])))

    def pending(self, destination: str, *, now: datetime, limit: int = 1000) -> list[Alert]:
        """Alerts waiting for a destination whose retry time has come, oldest first."""
        rows = self.db.query(
            "SELECT a.* FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.destination = ? AND d.status = 'pending' "
            "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) ORDER BY a.id LIMIT ?",
            [destination, _iso(now), limit])
        return [self._alert_from_row(r) for r in rows]

    def count_pending(self, destination: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
        args: list = []
        if destination:
            sql += " AND destination = ?"
            args.append(destination)
        return self.db.execute(sql, args).fetchone()[0]

    def next_attempt_at(self, destination: str) -> datetime | None:
        row = self.db.execute(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = ? AND status = 'pending'",
            [destination]).fetchone()
        return _dt(row[0]) if row else None

    def mark_sent(self, alert_id: int, destination: str, *, message_id: str | None,
                  now: datetime) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
            "attempts = attempts + 1, last_error = NULL WHERE alert_id = ? AND destination = ?",
            [message_id, _iso(now), alert_id, destination])

    def attempts(self, alert_id: int, destination: str) -> int:
        row = self.db.execute("SELECT attempts FROM deliveries WHERE alert_id = ? AND destination = ?",
                              [alert_id, destination]).fetchone()
        return row[0] if row else 0

    def mark_retry(self, alert_id: int, destination: str, *, error: str, at: datetime) -> None:
        """Keep the alert pending, not to be tried again before ``at``."""
        self.db.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE alert_id = ? AND destination = ?", [error, _iso(at), alert_id, destination])

    def mark_rejected(self, alert_id: int, destination: str, *, error: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'rejected', attempts = attempts + 1, last_error = ? "
            "WHERE alert_id = ? AND destination = ?", [error, alert_id, destination])

    def deliveries(self, alert_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM deliveries WHERE alert_id = ? ORDER BY destination",
                                  [alert_id]))

    def recent_alerts(self, n: int = 10) -> list[Alert]:
        rows = self.db.query("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", [n])
        return [self._alert_from_row(r) for r in rows]

    def prune(self, *, older_than: timedelta, now: datetime) -> int:
        """Forget items seen before ``now - older_than``; returns how many rows went."""
        cutoff = _iso(now - older_than)
        with self.db.atomic():
            cur = self.db.execute("DELETE FROM items WHERE seen_at < ?", [cutoff])
            return cur.rowcount


def _match_json(m: Match) -> dict:
    return {**m.to_json(), "score": m.score, "field": m.field}


def open_store(path: Path | str | None) -> Store:
    """Open (creating and migrating as needed) the database; ``None`` means in memory."""
    try:
        if path is None:
            db = sqlite_utils.Database(memory=True)
        else:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_utils.Database(path)
            db.enable_wal()
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA foreign_keys = ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version} is newer than this chipwatch "
                             f"understands ({SCHEMA_VERSION}); upgrade chipwatch")
        for target in range(version, SCHEMA_VERSION):
            with db.atomic():
                MIGRATIONS[target](db)
                db.execute(f"PRAGMA user_version = {target + 1}")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from exc
    return Store(db, Path(path) if path else None)
