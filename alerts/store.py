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
from .types import Alert, FeedItem, Match, NewItem, StoredItem, StoryRecord


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


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Stories: clustering across sources, edits of sent messages, title-edit detection."""
    _run_script(db, """
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER REFERENCES alerts (id) ON DELETE SET NULL,
        title TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        words TEXT NOT NULL,             -- JSON: per member headline, its clustering words
        entities TEXT NOT NULL,          -- JSON: per member headline, its chips and companies
        actions TEXT NOT NULL,           -- of the first headline: they define the event
        sources TEXT NOT NULL,           -- JSON list of feed names, in order of arrival
        major INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX stories_last_seen ON stories (last_seen);
    ALTER TABLE items ADD COLUMN story_id INTEGER;
    ALTER TABLE items ADD COLUMN title_key TEXT;
    CREATE INDEX items_feed_seen ON items (feed, seen_at);
    CREATE INDEX items_story ON items (story_id);
    ALTER TABLE alerts ADD COLUMN story_id INTEGER;
    ALTER TABLE deliveries ADD COLUMN edit_pending INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN edit_after TEXT;
    ALTER TABLE deliveries ADD COLUMN via_digest INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX deliveries_edits ON deliveries (destination, edit_pending, edit_after);
    CREATE INDEX alerts_created ON alerts (created_at)
    """)


def _migrate_4(db: sqlite_utils.Database) -> None:
    """Living with the bot: mutes, operator settings (pause), personal subscriptions."""
    _run_script(db, """
    CREATE TABLE mutes (
        term TEXT PRIMARY KEY,           -- casefolded canonical term
        until TEXT NOT NULL,
        by_user INTEGER
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE subscriptions (
        chat_id INTEGER NOT NULL,
        kind TEXT NOT NULL,              -- term | rule
        value TEXT NOT NULL,             -- canonical term or rule name
        created_at TEXT NOT NULL,
        PRIMARY KEY (chat_id, kind, value)
    )
    """)


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Stories by outlet: an item's own source (an aggregator carries many), and the
    headlines of joining outlets that say more than the story's title."""
    _run_script(db, """
    ALTER TABLE items ADD COLUMN source TEXT;            -- the outlet, when not the feed
    ALTER TABLE stories ADD COLUMN reports TEXT NOT NULL DEFAULT '[]';  -- JSON [[name, headline]]
    ALTER TABLE stories ADD COLUMN outlets TEXT NOT NULL DEFAULT '[]'   -- JSON: who reported it
    """)


def _migrate_6(db: sqlite_utils.Database) -> None:
    """Summaries of seen items, so a backtest can replay them through a candidate config."""
    _run_script(db, """
    ALTER TABLE items ADD COLUMN summary TEXT
    """)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_1, _migrate_2, _migrate_3, _migrate_4, _migrate_5, _migrate_6]
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

    def _set_feed(self, name: str, fields: dict[str, object], *, url: str | None = None) -> int:
        """Update columns of a feed (only while its URL is ``url``, when given); returns the
        number of rows changed."""
        if not fields:
            return 0
        values = [_iso(v) if isinstance(v, datetime) else v for v in fields.values()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        where, args = "name = ?", [name]
        if url is not None:
            where, args = "name = ? AND url = ?", [name, url]
        return self.db.execute(f"UPDATE feeds SET {assignments} WHERE {where}",
                               [*values, *args]).rowcount

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

    @staticmethod
    def _ok_fields(status: str, now: datetime, fields: dict[str, object]) -> dict[str, object]:
        return {"last_polled_at": now, "last_ok_at": now, "last_status": status,
                "last_error": None, "consecutive_failures": 0, "failing_since": None, **fields}

    def _mark_ok(self, name: str, status: str, now: datetime, fields: dict[str, object]) -> None:
        self._set_feed(name, self._ok_fields(status, now, fields))

    def record_unchanged(self, name: str, url: str, status: str, *, now: datetime,
                         **fields: object) -> None:
        """A 304, or a body identical to the last one: nothing to parse. The common case is
        one UPDATE (atomic on its own); a feed new to the database gets its row first."""
        if not self._set_feed(name, self._ok_fields(status, now, fields), url=url):
            with self.db.atomic():
                self._upsert_feed(name, url)
                self._mark_ok(name, status, now, fields)

    def known_items(self, feed: str, items: Sequence[tuple[str, str]]) -> set[int]:
        """Indexes of (guid, canonical_link) pairs already seen: same guid in this feed, or the
        same canonical link from any feed. Two queries per batch, not two per item."""
        known_guids: set[str] = set()
        known_links: set[str] = set()
        guids = list({g for g, _ in items})
        links = list({link for _, link in items if link})
        for chunk in _chunks(guids):
            known_guids.update(r[0] for r in self.db.execute(
                f"SELECT guid FROM items WHERE feed = ? AND guid IN ({_marks(chunk)})",
                [feed, *chunk]))
        for chunk in _chunks(links):
            known_links.update(r[0] for r in self.db.execute(
                f"SELECT canonical_link FROM items WHERE canonical_link IN ({_marks(chunk)})",
                chunk))
        return {i for i, (guid, link) in enumerate(items)
                if guid in known_guids or (link and link in known_links)}

    def record_poll(self, name: str, url: str, new_items: Iterable[NewItem], *, now: datetime,
                    edit_delay: timedelta = timedelta(0),
                    deferred: list[NewItem] | None = None, **fields: object) -> list[int]:
        """In one transaction: mark the poll successful (with ``fields`` such as validators and
        the next poll time), record new items as seen, and queue each new alert for the
        destinations the pipeline chose (``NewItem.destinations``). Returns the new alert ids. An item joining a story that another
        feed of the same cycle has not recorded yet goes to ``deferred`` (see ``apply_joins``)."""
        alert_ids = []
        with self.db.atomic():
            self._upsert_feed(name, url)
            self.db.execute("UPDATE feeds SET first_polled_at = COALESCE(first_polled_at, ?) "
                            "WHERE name = ?", [_iso(now), name])
            self._mark_ok(name, "ok", now, fields)
            for new in new_items:
                item, alert_id, story_id = new.item, None, new.story_id
                if story_id is not None and not new.new_story:
                    if (not self._join_story(story_id, item, new, now=now, edit_delay=edit_delay)
                            and deferred is not None):
                        deferred.append(new)
                elif new.result is not None and new.destinations:
                    cur = self.db.execute(
                        "INSERT INTO alerts (feed, title, link, summary, published, created_at, "
                        "matches, rules) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [item.feed, item.title, item.link, item.summary, _iso(item.published),
                         _iso(now), json.dumps([_match_json(m) for m in new.result.matches]),
                         json.dumps(list(new.result.rules))])
                    alert_id = cur.lastrowid
                    alert_ids.append(alert_id)
                    for dest in new.destinations:
                        self.db.execute("INSERT OR IGNORE INTO deliveries (alert_id, destination) "
                                        "VALUES (?, ?)", [alert_id, dest])
                    if story_id is not None:
                        self._new_story(story_id, alert_id, item, new, now=now)
                # OR IGNORE: two entries of one feed may share a guid; the first one wins.
                self.db.execute(
                    "INSERT OR IGNORE INTO items (feed, guid, link, canonical_link, title, published, "
                    "seen_at, alert_id, story_id, title_key, source, summary) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [item.feed, item.guid, item.link, new.canonical_link or None, item.title,
                     _iso(item.published), _iso(now), alert_id, story_id, new.title_key or None,
                     new.outlet if new.outlet and new.outlet != item.feed else None,
                     item.summary or None])
        return alert_ids

    # --- stories ---------------------------------------------------------------------------

    def _new_story(self, story_id: int, alert_id: int, item: FeedItem, new: NewItem, *,
                   now: datetime) -> None:
        members = [list(new.member)] if new.member is not None else []
        self.db.execute(
            "INSERT INTO stories (id, alert_id, title, first_seen, last_seen, words, entities, "
            "actions, sources, outlets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [story_id, alert_id, item.title, _iso(now), _iso(now), json.dumps(members),
             json.dumps([list(new.entities)] if members else []),
             json.dumps(list(new.story_actions)), json.dumps([new.source_name or item.feed]),
             json.dumps([new.outlet or item.feed])])
        self.db.execute("UPDATE alerts SET story_id = ? WHERE id = ?", [story_id, alert_id])

    def max_story_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM stories").fetchone()[0]

    def apply_joins(self, joins: Sequence[NewItem], *, now: datetime,
                    edit_delay: timedelta = timedelta(0)) -> None:
        """Story joins deferred by ``record_poll`` until the story's own feed was recorded."""
        with self.db.atomic():
            for new in joins:
                if new.story_id is not None:
                    self._join_story(new.story_id, new.item, new, now=now, edit_delay=edit_delay)

    def _join_story(self, story_id: int, item: FeedItem, new: NewItem, *, now: datetime,
                    edit_delay: timedelta) -> bool:
        """Record what the clusterer decided: the story gains an outlet (and a member headline,
        and a headline to show, when the clusterer says so). False: no such story (yet)."""
        row = self.db.execute("SELECT words, entities, sources, reports, outlets FROM stories "
                              "WHERE id = ?", [story_id]).fetchone()
        if row is None:
            return False
        words, entities, sources, reports, outlets = (json.loads(v) for v in row)
        if new.member is not None:
            words.append(list(new.member))
            entities.append(list(new.entities))
        name = new.source_name or item.feed
        if (new.outlet or item.feed) not in outlets:
            outlets.append(new.outlet or item.feed)
        changed = name not in sources
        if changed:
            sources.append(name)
        if new.report and [name, item.title] not in reports:
            reports.append([name, item.title])
            changed = True
        self.db.execute(
            "UPDATE stories SET last_seen = ?, words = ?, entities = ?, sources = ?, "
            "reports = ?, outlets = ? WHERE id = ?",
            [_iso(now), json.dumps(words), json.dumps(entities), json.dumps(sources),
             json.dumps(reports), json.dumps(outlets), story_id])
        if changed:
            self._want_edit(story_id, at=now + edit_delay)
        return True

    def _want_edit(self, story_id: int, *, at: datetime) -> None:
        """Ask for an edit of the story's sent messages. Quick successive updates merge into one
        edit: its time ``at`` is set by the first of them (``stories.edit_delay_seconds``)."""
        self.db.execute(
            "UPDATE deliveries SET edit_pending = 1, edit_after = COALESCE(edit_after, ?) "
            "WHERE status = 'sent' AND via_digest = 0 AND alert_id = "
            "(SELECT alert_id FROM stories WHERE id = ?)",
            [_iso(at), story_id])

    def mark_major(self, story_id: int, *, momentum_sources: int, within: timedelta,
                   now: datetime, edit_delay: timedelta = timedelta(0)) -> bool:
        """Mark a story major when enough distinct sources carried it within ``within``; returns
        True when it became major just now."""
        row = self.db.execute("SELECT major FROM stories WHERE id = ?", [story_id]).fetchone()
        if row is None or row[0]:
            return False
        count = self.db.execute(
            "SELECT COUNT(DISTINCT COALESCE(source, feed)) FROM items WHERE story_id = ? "
            "AND seen_at >= ?",
            [story_id, _iso(now - within)]).fetchone()[0]
        if count < momentum_sources:
            return False
        with self.db.atomic():
            self.db.execute("UPDATE stories SET major = 1 WHERE id = ?", [story_id])
            self._want_edit(story_id, at=now + edit_delay)
        return True

    def recent_stories(self, *, since: datetime) -> list[StoryRecord]:
        rows = self.db.query("SELECT * FROM stories WHERE last_seen >= ? ORDER BY id",
                             [_iso(since)])
        return [StoryRecord(id=r["id"], alert_id=r["alert_id"], title=r["title"],
                            first_seen=_dt(r["first_seen"]), last_seen=_dt(r["last_seen"]),
                            members=tuple(zip(map(tuple, json.loads(r["words"])),
                                              map(tuple, json.loads(r["entities"])))),
                            actions=tuple(json.loads(r["actions"])),
                            sources=tuple(json.loads(r["sources"])), major=bool(r["major"]),
                            outlets=tuple(json.loads(r.get("outlets") or "[]")))
                for r in rows]

    def recent_titles(self, *, limit: int) -> list[str]:
        """The titles of the most recently seen items, newest first."""
        return [r[0] for r in self.db.execute(
            "SELECT title FROM items WHERE title IS NOT NULL ORDER BY seen_at DESC LIMIT ?",
            [limit])]

    def recent_title_keys(self, feed: str, *, since: datetime) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT title_key FROM items WHERE feed = ? AND seen_at >= ? AND title_key IS NOT NULL",
            [feed, _iso(since)])]

    # --- operator state: mutes, settings, subscriptions -------------------------------------

    def mute(self, term: str, *, until: datetime, by_user: int | None = None) -> None:
        self.db.execute("INSERT INTO mutes (term, until, by_user) VALUES (?, ?, ?) "
                        "ON CONFLICT (term) DO UPDATE SET until = excluded.until, "
                        "by_user = excluded.by_user", [term.casefold(), _iso(until), by_user])

    def unmute(self, term: str) -> bool:
        return self.db.execute("DELETE FROM mutes WHERE term = ?", [term.casefold()]).rowcount > 0

    def active_mutes(self, *, now: datetime) -> dict[str, datetime]:
        return {r[0]: _dt(r[1]) for r in self.db.execute(
            "SELECT term, until FROM mutes WHERE until > ?", [_iso(now)])}

    def get_setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = ?", [key])
        else:
            self.db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                            "DO UPDATE SET value = excluded.value", [key, value])

    def subscribe(self, chat_id: int, kind: str, value: str, *, now: datetime) -> bool:
        cur = self.db.execute("INSERT OR IGNORE INTO subscriptions (chat_id, kind, value, "
                              "created_at) VALUES (?, ?, ?, ?)", [chat_id, kind, value, _iso(now)])
        return cur.rowcount > 0

    def unsubscribe(self, chat_id: int, value: str) -> bool:
        return self.db.execute("DELETE FROM subscriptions WHERE chat_id = ? AND lower(value) = ?",
                               [chat_id, value.casefold()]).rowcount > 0

    def subscriptions(self, chat_id: int | None = None) -> list[tuple[int, str, str]]:
        sql, args = "SELECT chat_id, kind, value FROM subscriptions", []
        if chat_id is not None:
            sql, args = sql + " WHERE chat_id = ?", [chat_id]
        return [tuple(r) for r in self.db.execute(sql + " ORDER BY chat_id, kind, value", args)]

    def alerts_since(self, since: datetime) -> int:
        return self.db.execute("SELECT COUNT(*) FROM alerts WHERE created_at >= ?",
                               [_iso(since)]).fetchone()[0]

    # --- outbox --------------------------------------------------------------------------

    _ALERT_COLUMNS = ("a.*, s.sources AS story_sources, s.major AS story_major, "
                      "s.reports AS story_reports")
    _ALERT_JOIN = "LEFT JOIN stories s ON s.id = a.story_id"

    def _alert_from_row(self, r: dict) -> Alert:
        sources = tuple(json.loads(r["story_sources"])) if r.get("story_sources") else ()
        return Alert(id=r["id"], feed=r["feed"], title=r["title"], link=r["link"],
                     summary=r["summary"], published=_dt(r["published"]),
                     created_at=_dt(r["created_at"]),
                     matches=tuple(_match_from_json(m) for m in json.loads(r["matches"])),
                     rules=tuple(json.loads(r["rules"])), story_id=r.get("story_id"),
                     sources=sources, major=bool(r.get("story_major")),
                     reports=tuple(tuple(x) for x in json.loads(r.get("story_reports") or "[]")))

    def pending(self, destination: str, *, now: datetime, limit: int = 1000) -> list[Alert]:
        """Alerts waiting for a destination whose retry time has come, oldest first."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            f"{self._ALERT_JOIN} WHERE d.destination = ? AND d.status = 'pending' "
            "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) ORDER BY a.id LIMIT ?",
            [destination, _iso(now), limit])
        return [self._alert_from_row(r) for r in rows]

    def edits_due(self, destination: str, *, now: datetime) -> list[tuple[Alert, str]]:
        """Sent alerts whose story changed and whose edit time has come, with their message id."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS}, d.message_id AS message_id FROM deliveries d "
            f"JOIN alerts a ON a.id = d.alert_id {self._ALERT_JOIN} "
            "WHERE d.destination = ? AND d.edit_pending = 1 AND d.edit_after <= ? ORDER BY a.id",
            [destination, _iso(now)])
        return [(self._alert_from_row(r), r["message_id"]) for r in rows]

    def next_edit_at(self, destination: str) -> datetime | None:
        row = self.db.execute("SELECT MIN(edit_after) FROM deliveries WHERE destination = ? "
                              "AND edit_pending = 1", [destination]).fetchone()
        return _dt(row[0]) if row else None

    def edit_done(self, alert_id: int, destination: str) -> None:
        self.db.execute("UPDATE deliveries SET edit_pending = 0, edit_after = NULL "
                        "WHERE alert_id = ? AND destination = ?", [alert_id, destination])

    def edit_later(self, alert_id: int, destination: str, *, at: datetime) -> None:
        self.db.execute("UPDATE deliveries SET edit_after = ? WHERE alert_id = ? "
                        "AND destination = ?", [_iso(at), alert_id, destination])

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
                  now: datetime, via_digest: bool = False) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
            "attempts = attempts + 1, last_error = NULL, via_digest = ?, edit_pending = 0, "
            "edit_after = NULL WHERE alert_id = ? AND destination = ?",
            [message_id, _iso(now), int(via_digest), alert_id, destination])

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
        rows = self.db.query(f"SELECT {self._ALERT_COLUMNS} FROM alerts a {self._ALERT_JOIN} "
                             "ORDER BY a.id DESC LIMIT ?", [n])
        return [self._alert_from_row(r) for r in rows]

    def prune(self, *, older_than: timedelta, now: datetime) -> dict[str, int]:
        """Forget items, stories and fully delivered alerts older than ``now - older_than``,
        then give the space back (WAL checkpoint; VACUUM when much of the file is free)."""
        cutoff = _iso(now - older_than)
        with self.db.atomic():
            items = self.db.execute("DELETE FROM items WHERE seen_at < ?", [cutoff]).rowcount
            stories = self.db.execute("DELETE FROM stories WHERE last_seen < ?", [cutoff]).rowcount
            alerts = self.db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "deliveries d WHERE d.alert_id = alerts.id AND d.status = 'pending')",
                [cutoff]).rowcount
        if self.path is not None:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            if pages and free / pages > 0.25:
                self.db.execute("VACUUM")
        return {"items": items, "stories": stories, "alerts": alerts}


def stored_items(path: Path | str, *, since: datetime) -> list[StoredItem]:
    """Items seen since ``since``, oldest first, read through a read-only connection: this
    never writes, migrates or locks the database a running bot is using."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no database yet (run the bot first)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            columns = {r[1] for r in db.execute("PRAGMA table_info(items)")}
            summary = "i.summary" if "summary" in columns else "NULL"
            rows = db.execute(
                f"SELECT i.feed, i.title, {summary}, i.link, i.seen_at, "
                "(i.story_id IS NOT NULL OR (a.id IS NOT NULL AND a.rules != '[]')) "
                "FROM items i LEFT JOIN alerts a ON a.id = i.alert_id "
                "WHERE i.seen_at >= ? ORDER BY i.seen_at, i.id", [_iso(since)]).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read database: {exc}") from exc
    return [StoredItem(feed=f, title=t, summary=s or "", link=link or "", seen_at=_dt(at),
                       alerted=bool(alerted)) for f, t, s, link, at, alerted in rows]


def _chunks(values: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _match_json(m: Match) -> dict:
    return {**m.to_json(), "score": m.score, "field": m.field}


def _migrate(db: sqlite_utils.Database, path: Path | str | None) -> None:
    """Bring the schema up to date inside one exclusive transaction: two processes opening a
    new file at once cannot both migrate (the second waits, then finds nothing to do)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version < SCHEMA_VERSION:
        db.execute("BEGIN EXCLUSIVE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # as of the lock
            for target in range(version, SCHEMA_VERSION):
                MIGRATIONS[target](db)
            db.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this chipwatch "
                         f"understands ({SCHEMA_VERSION}); upgrade chipwatch")


def open_store(path: Path | str | None) -> Store:
    """Open (creating and migrating as needed) the database; ``None`` means in memory."""
    try:
        if path is None:
            db = sqlite_utils.Database(memory=True)
        else:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_utils.Database(path)
            db.execute("PRAGMA busy_timeout = 10000")  # before WAL: openers may race there too
            db.enable_wal()
            # In WAL mode NORMAL is crash-safe (a killed process loses nothing committed);
            # only a power cut may lose the last transactions. FULL would fsync every commit.
            db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from exc
    return Store(db, Path(path) if path else None)
