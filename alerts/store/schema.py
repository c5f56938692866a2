"""The schema, its migrations and the small conversions every part of the store shares.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n to n+1,
and ``migrate`` applies what is missing inside one exclusive transaction.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from ..config import is_postgres_url
from ..errors import StoreError
from ..types import Match
from .engine import MIGRATION_LOCK, Database, PgReader, redact_url

T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _when(value: str) -> datetime:
    """A NOT NULL timestamp column."""
    return datetime.fromisoformat(value)


def _run_script(db: Database, script: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the migration's transaction."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    for statement in without_comments.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_1(db: Database) -> None:
    _run_script(
        db,
        """
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
    """,
    )


def _migrate_2(db: Database) -> None:
    """Polling state: adaptive interval, backoff, moved and gone feeds, body-identical skip."""
    _run_script(
        db,
        """
    ALTER TABLE feeds ADD COLUMN effective_url TEXT;      -- after a permanent redirect
    ALTER TABLE feeds ADD COLUMN body_hash TEXT;          -- sha1 of the last body parsed
    ALTER TABLE feeds ADD COLUMN next_poll_at TEXT;       -- not before this (backoff, Retry-After)
    ALTER TABLE feeds ADD COLUMN interval_seconds REAL;   -- the current adaptive interval
    ALTER TABLE feeds ADD COLUMN failing_since TEXT;
    ALTER TABLE feeds ADD COLUMN disabled_reason TEXT;    -- e.g. 410 Gone, cleared by a new URL
    ALTER TABLE feeds ADD COLUMN last_new_at TEXT         -- when the feed last had a new item
    """,
    )


def _migrate_3(db: Database) -> None:
    """Stories: clustering across sources, edits of sent messages, title-edit detection."""
    _run_script(
        db,
        """
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
    """,
    )


def _migrate_4(db: Database) -> None:
    """Living with the bot: mutes, operator settings (pause), personal subscriptions."""
    _run_script(
        db,
        """
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
    """,
    )


def _migrate_5(db: Database) -> None:
    """Stories by outlet: an item's own source (an aggregator carries many), and the
    headlines of joining outlets that say more than the story's title."""
    _run_script(
        db,
        """
    ALTER TABLE items ADD COLUMN source TEXT;            -- the outlet, when not the feed
    ALTER TABLE stories ADD COLUMN reports TEXT NOT NULL DEFAULT '[]';  -- JSON [[name, headline]]
    ALTER TABLE stories ADD COLUMN outlets TEXT NOT NULL DEFAULT '[]'   -- JSON: who reported it
    """,
    )


def _migrate_6(db: Database) -> None:
    """Summaries of seen items, so a backtest can replay them through a candidate config."""
    _run_script(
        db,
        """
    ALTER TABLE items ADD COLUMN summary TEXT
    """,
    )


def _migrate_7(db: Database) -> None:
    """Several instances on one PostgreSQL database: feed leases, and who is running."""
    _run_script(
        db,
        """
    ALTER TABLE feeds ADD COLUMN lease_owner TEXT;       -- the instance polling it now
    ALTER TABLE feeds ADD COLUMN lease_until TEXT;       -- when that claim lapses
    CREATE TABLE IF NOT EXISTS instances (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        roles TEXT NOT NULL DEFAULT ''
    )
    """,
    )


def _migrate_8(db: Database) -> None:
    """Story threads: a follow-up is a story of its own whose alert replies, quietly, to the
    message of the story it follows; and why each alert was placed as it was."""
    _run_script(
        db,
        """
    ALTER TABLE stories ADD COLUMN parent INTEGER;       -- a follow-up: the story it is under
    ALTER TABLE alerts ADD COLUMN thread_story INTEGER;  -- a follow-up: the story it replies to
    ALTER TABLE alerts ADD COLUMN decision TEXT;         -- the clusterer's explanation
    CREATE INDEX stories_parent ON stories (parent)
    """,
    )


def _migrate_9(db: Database) -> None:
    """Subscriptions of a subscriber who blocked the bot (or whose account is gone) are
    suspended, not deleted: they come back when the subscriber writes to the bot again."""
    _run_script(
        db,
        """
    ALTER TABLE subscriptions ADD COLUMN suspended_at TEXT;
    ALTER TABLE subscriptions ADD COLUMN suspended_reason TEXT
    """,
    )


def _migrate_10(db: Database) -> None:
    """Scheduled digests: one row per destination and period, queued once (the primary key)
    whichever instance or restart gets there first; its messages rendered when queued, and
    sent part by part."""
    _run_script(
        db,
        """
    CREATE TABLE digests (
        destination TEXT NOT NULL,
        period_end TEXT NOT NULL,            -- when it fell due
        period_start TEXT NOT NULL,
        created_at TEXT NOT NULL,
        stories INTEGER NOT NULL,
        parts TEXT NOT NULL,                 -- JSON: the messages, rendered for the sink
        sent_parts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | skipped | rejected
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        message_ids TEXT NOT NULL DEFAULT '[]',
        sent_at TEXT,
        PRIMARY KEY (destination, period_end)
    );
    CREATE INDEX digests_pending ON digests (status, destination)
    """,
    )


def _migrate_11(db: Database) -> None:
    """WebSub: the hub each feed names, and the subscriptions at hubs (shared by every
    instance on the database: any of them may answer the hub, one subscribes and renews)."""
    _run_script(
        db,
        """
    CREATE TABLE hubs (
        feed TEXT PRIMARY KEY,
        hub TEXT,                        -- NULL: the feed's last full poll named no hub
        topic TEXT NOT NULL,             -- its rel=self, else the feed's URL
        seen_at TEXT NOT NULL
    );
    CREATE TABLE websub (
        id TEXT PRIMARY KEY,             -- the callback URL's last segment, random
        feed TEXT NOT NULL,
        hub TEXT NOT NULL,
        topic TEXT NOT NULL,
        secret TEXT NOT NULL,            -- hub.secret: HMAC key of the pushes
        state TEXT NOT NULL,             -- requested | active | unsubscribing | denied
        pending TEXT,                    -- subscribe | unsubscribe: asked, not verified yet
        created_at TEXT NOT NULL,
        requested_at TEXT,
        verified_at TEXT,
        lease_seconds INTEGER,
        expires_at TEXT,
        due_at TEXT,                     -- the next renewal or retry
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        pushes INTEGER NOT NULL DEFAULT 0,
        last_push_at TEXT
    );
    CREATE INDEX websub_feed ON websub (feed)
    """,
    )


MIGRATIONS: list[Callable[[Database], None]] = [
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
    _migrate_8,
    _migrate_9,
    _migrate_10,
    _migrate_11,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _match_from_json(d: dict) -> Match:
    return Match(
        d["category"], d["term"], d["text"], d["kind"], float(d["score"]), d.get("field", "title")
    )


def _chunks(values: list[T], size: int = 500) -> Iterable[list[T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _match_json(m: Match) -> dict:
    return {**m.to_json(), "score": m.score, "field": m.field}


def migrate(db: Database, path: Path | str | None) -> None:
    """Bring the schema up to date inside one exclusive transaction: two processes opening a
    new file at once cannot both migrate (the second waits, then finds nothing to do)."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        _migrate_postgres(db, path)
        return
    assert isinstance(db, sqlite_utils.Database)  # the one other engine
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
        raise StoreError(
            f"{path}: schema version {version} is newer than this chipwatch "
            f"understands ({SCHEMA_VERSION}); upgrade chipwatch"
        )


def _migrate_postgres(db: Database, url: Path | str | None) -> None:
    """The same migrations on PostgreSQL, whose DDL is transactional: one transaction under an
    advisory lock, so concurrent openers wait and then find nothing to do. The version lives
    in a one-row table (PostgreSQL has no ``user_version``)."""
    with db.atomic():
        db.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
        db.execute("CREATE TABLE IF NOT EXISTS chipwatch_schema (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM chipwatch_schema").fetchone()
        version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{redact_url(str(url))}: schema version {version} is newer than "
                f"this chipwatch understands ({SCHEMA_VERSION}); upgrade chipwatch"
            )
        for target in range(version, SCHEMA_VERSION):
            MIGRATIONS[target](db)
        if row is None:
            db.execute("INSERT INTO chipwatch_schema (version) VALUES (?)", [SCHEMA_VERSION])
        elif version < SCHEMA_VERSION:
            db.execute("UPDATE chipwatch_schema SET version = ?", [SCHEMA_VERSION])


def table_columns(db: sqlite3.Connection | PgReader, table: str) -> set[str]:
    """The column names of ``table``, on either engine (readers of older files ask)."""
    if isinstance(db, PgReader):
        return db.table_columns(table)
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


@contextmanager
def read_only(path: Path | str) -> Iterator[sqlite3.Connection | PgReader]:
    """A read-only connection to the database at ``path`` (or PostgreSQL URL), for readers
    beside a running bot: it never writes, migrates or locks. Missing or unreadable files are
    ``StoreError``s."""
    if is_postgres_url(path):
        yield from _read_only_postgres(str(path))
        return
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no database yet (run the bot first)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            yield db
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read database: {exc}") from exc


def _read_only_postgres(url: str) -> Iterator[PgReader]:
    import psycopg

    db = PgReader(url)
    try:
        if db.execute("SELECT to_regclass('chipwatch_schema')").fetchone()[0] is None:
            raise StoreError(f"{redact_url(url)}: no chipwatch tables yet (run the bot first)")
        yield db
    except psycopg.Error as exc:
        raise StoreError(f"{redact_url(url)}: cannot read database: {exc}") from exc
    finally:
        db.close()
