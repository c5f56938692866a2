"""The outbox: alerts and their delivery state per destination."""

from __future__ import annotations

import json
from datetime import datetime

from ..types import Alert
from .engine import Database
from .schema import _dt, _iso, _match_from_json, _when


class OutboxStore:
    """Alerts waiting, sent, retried, rejected; edits due."""

    db: Database

    def alerts_since(self, since: datetime) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM alerts WHERE created_at >= ?", [_iso(since)]
        ).fetchone()[0]

    # --- outbox --------------------------------------------------------------------------

    # A follow-up's thread: the alert and headline of the story it is threaded under; a story's
    # follow-ups, counted.
    _ALERT_COLUMNS = (
        "a.*, s.sources AS story_sources, s.major AS story_major, s.reports AS story_reports, "
        "t.alert_id AS thread_alert, t.title AS thread_title, "
        "(SELECT COUNT(*) FROM stories f WHERE f.parent = a.story_id) AS story_followups"
    )
    _ALERT_JOIN = (
        "LEFT JOIN stories s ON s.id = a.story_id LEFT JOIN stories t ON t.id = a.thread_story"
    )

    def _alert_from_row(self, r: dict) -> Alert:
        sources = tuple(json.loads(r["story_sources"])) if r.get("story_sources") else ()
        return Alert(
            id=r["id"],
            feed=r["feed"],
            title=r["title"],
            link=r["link"],
            summary=r["summary"],
            published=_dt(r["published"]),
            created_at=_when(r["created_at"]),
            matches=tuple(_match_from_json(m) for m in json.loads(r["matches"])),
            rules=tuple(json.loads(r["rules"])),
            story_id=r.get("story_id"),
            sources=sources,
            major=bool(r.get("story_major")),
            reports=tuple(tuple(x) for x in json.loads(r.get("story_reports") or "[]")),
            thread_of=r.get("thread_alert"),
            thread_title=r.get("thread_title") or "",
            followups=int(r.get("story_followups") or 0),
            decision=r.get("decision") or "",
        )

    def pending(self, destination: str, *, now: datetime, limit: int = 1000) -> list[Alert]:
        """Alerts waiting for a destination whose retry time has come, oldest first."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            f"{self._ALERT_JOIN} WHERE d.destination = ? AND d.status = 'pending' "
            "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) ORDER BY a.id LIMIT ?",
            [destination, _iso(now), limit],
        )
        return [self._alert_from_row(r) for r in rows]

    def edits_due(self, destination: str, *, now: datetime) -> list[tuple[Alert, str]]:
        """Sent alerts whose story changed and whose edit time has come, with their message id."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS}, d.message_id AS message_id FROM deliveries d "
            f"JOIN alerts a ON a.id = d.alert_id {self._ALERT_JOIN} "
            "WHERE d.destination = ? AND d.edit_pending = 1 AND d.edit_after <= ? ORDER BY a.id",
            [destination, _iso(now)],
        )
        return [(self._alert_from_row(r), r["message_id"]) for r in rows]

    def next_edit_at(self, destination: str) -> datetime | None:
        row = self.db.execute(
            "SELECT MIN(edit_after) FROM deliveries WHERE destination = ? AND edit_pending = 1",
            [destination],
        ).fetchone()
        return _dt(row[0]) if row else None

    def edit_done(self, alert_id: int, destination: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET edit_pending = 0, edit_after = NULL "
            "WHERE alert_id = ? AND destination = ?",
            [alert_id, destination],
        )

    def edit_later(self, alert_id: int, destination: str, *, at: datetime) -> None:
        self.db.execute(
            "UPDATE deliveries SET edit_after = ? WHERE alert_id = ? AND destination = ?",
            [_iso(at), alert_id, destination],
        )

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
            [destination],
        ).fetchone()
        return _dt(row[0]) if row else None

    def mark_sent(
        self,
        alert_id: int,
        destination: str,
        *,
        message_id: str | None,
        now: datetime,
        via_digest: bool = False,
    ) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
            "attempts = attempts + 1, last_error = NULL, via_digest = ?, edit_pending = 0, "
            "edit_after = NULL WHERE alert_id = ? AND destination = ?",
            [message_id, _iso(now), int(via_digest), alert_id, destination],
        )

    def message_id(self, alert_id: int, destination: str) -> str | None:
        """The id of the message that carried an alert to a destination, once sent."""
        row = self.db.execute(
            "SELECT message_id FROM deliveries WHERE alert_id = ? AND destination = ? "
            "AND status = 'sent'",
            [alert_id, destination],
        ).fetchone()
        return row[0] if row else None

    def delivery_pending(self, alert_id: int, destination: str) -> bool:
        """Whether an alert still waits for a destination (due or not)."""
        row = self.db.execute(
            "SELECT 1 FROM deliveries WHERE alert_id = ? AND destination = ? "
            "AND status = 'pending'",
            [alert_id, destination],
        ).fetchone()
        return row is not None

    def attempts(self, alert_id: int, destination: str) -> int:
        row = self.db.execute(
            "SELECT attempts FROM deliveries WHERE alert_id = ? AND destination = ?",
            [alert_id, destination],
        ).fetchone()
        return row[0] if row else 0

    def mark_retry(self, alert_id: int, destination: str, *, error: str, at: datetime) -> None:
        """Keep the alert pending, not to be tried again before ``at``."""
        self.db.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE alert_id = ? AND destination = ?",
            [error, _iso(at), alert_id, destination],
        )

    def mark_rejected(self, alert_id: int, destination: str, *, error: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'rejected', attempts = attempts + 1, last_error = ? "
            "WHERE alert_id = ? AND destination = ?",
            [error, alert_id, destination],
        )

    def alert_by_title(self, title: str) -> Alert | None:
        """The latest alert with this headline (letter case aside), if one is stored."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM alerts a {self._ALERT_JOIN} "
            "WHERE LOWER(a.title) = LOWER(?) ORDER BY a.id DESC LIMIT 1",
            [title],
        )
        return next((self._alert_from_row(r) for r in rows), None)

    def recent_alerts(self, n: int = 10) -> list[Alert]:
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM alerts a {self._ALERT_JOIN} "
            "ORDER BY a.id DESC LIMIT ?",
            [n],
        )
        return [self._alert_from_row(r) for r in rows]
