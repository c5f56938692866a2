"""Feeds and their fetch state."""

from __future__ import annotations

from datetime import datetime

from ..types import FeedState
from .engine import Database
from .schema import _dt, _iso

_FEED_DATES = (
    "first_polled_at",
    "last_polled_at",
    "last_ok_at",
    "last_new_at",
    "failing_since",
    "next_poll_at",
)


class FeedsStore:
    """Feeds: fetch state, failures, backoff."""

    db: Database

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
            [name, url],
        )

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
        return self.db.execute(
            f"UPDATE feeds SET {assignments} WHERE {where}", [*values, *args]
        ).rowcount

    def record_failure(
        self,
        name: str,
        url: str,
        error: str,
        *,
        now: datetime,
        next_poll_at: datetime | None = None,
    ) -> FeedState:
        with self.db.atomic():
            self._upsert_feed(name, url)
            self.db.execute(
                "UPDATE feeds SET last_polled_at = ?, last_status = 'error', last_error = ?, "
                "consecutive_failures = consecutive_failures + 1, "
                "failing_since = COALESCE(failing_since, ?), next_poll_at = ? WHERE name = ?",
                [_iso(now), error, _iso(now), _iso(next_poll_at), name],
            )
        state = self.feed_state(name)
        assert state is not None
        return state

    @staticmethod
    def _ok_fields(status: str, now: datetime, fields: dict[str, object]) -> dict[str, object]:
        return {
            "last_polled_at": now,
            "last_ok_at": now,
            "last_status": status,
            "last_error": None,
            "consecutive_failures": 0,
            "failing_since": None,
            **fields,
        }

    def _mark_ok(self, name: str, status: str, now: datetime, fields: dict[str, object]) -> None:
        self._set_feed(name, self._ok_fields(status, now, fields))

    def record_unchanged(
        self, name: str, url: str, status: str, *, now: datetime, **fields: object
    ) -> None:
        """A 304, or a body identical to the last one: nothing to parse. The common case is
        one UPDATE (atomic on its own); a feed new to the database gets its row first."""
        if not self._set_feed(name, self._ok_fields(status, now, fields), url=url):
            with self.db.atomic():
                self._upsert_feed(name, url)
                self._mark_ok(name, status, now, fields)
