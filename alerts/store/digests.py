"""Scheduled digests: one row per destination and period (the primary key makes it once, for
every instance and restart), sent part by part; and the alerts a digest is made of."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..types import Alert, QueuedDigest
from .engine import Database
from .schema import _dt, _iso, _when

DIGEST_MODE_PREFIX = "digest:"  # a settings row per subscriber's chat that gets digests
HELD = "digest"  # a delivery held for a subscriber's digest


class DigestStore:
    """The digest outbox and the alerts of a period."""

    db: Database
    _ALERT_COLUMNS: str
    _ALERT_JOIN: str

    if TYPE_CHECKING:

        def _alert_from_row(self, r: dict) -> Alert: ...  # OutboxStore's

    def queue_digest(
        self,
        destination: str,
        *,
        period_start: datetime,
        period_end: datetime,
        stories: int,
        parts: list[Any],
        now: datetime,
        held: Sequence[int] = (),
    ) -> bool:
        """Queue a period's digest unless it is queued already (by this instance before a
        restart, or by another); nothing to send (``parts`` empty) records it as skipped. A
        subscriber's held alerts (``held``) count as sent with it, in the same transaction."""
        with self.db.atomic():
            added = (
                self.db.execute(
                    "INSERT INTO digests (destination, period_end, period_start, created_at, "
                    "stories, parts, status) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [
                        destination,
                        _iso(period_end),
                        _iso(period_start),
                        _iso(now),
                        stories,
                        json.dumps(parts),
                        "pending" if parts else "skipped",
                    ],
                ).rowcount
                > 0
            )
            if added and held:
                marks = ", ".join("?" * len(held))
                self.db.execute(
                    "UPDATE deliveries SET status = 'sent', via_digest = 1, sent_at = ? "
                    f"WHERE destination = ? AND status = '{HELD}' AND alert_id IN ({marks})",
                    [_iso(now), destination, *held],
                )
        return added

    def digest_queued(self, destination: str, period_end: datetime) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM digests WHERE destination = ? AND period_end = ?",
            [destination, _iso(period_end)],
        ).fetchone()
        return row is not None

    def digests_due(self, destination: str, *, now: datetime) -> list[QueuedDigest]:
        """The destination's unsent digests whose time has come, oldest period first."""
        rows = self.db.query(
            "SELECT destination, period_end, parts, sent_parts, attempts FROM digests "
            "WHERE destination = ? AND status = 'pending' "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY period_end",
            [destination, _iso(now)],
        )
        return [
            QueuedDigest(
                destination=r["destination"],
                period_end=_when(r["period_end"]),
                parts=tuple(json.loads(r["parts"])),
                sent_parts=r["sent_parts"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    def next_digest_at(self, destination: str) -> datetime | None:
        """When the destination's next unsent digest may go (None: none waits)."""
        row = self.db.execute(
            "SELECT COUNT(*), MIN(COALESCE(next_attempt_at, created_at)) FROM digests "
            "WHERE destination = ? AND status = 'pending'",
            [destination],
        ).fetchone()
        return _dt(row[1]) if row and row[0] else None

    def digest_part_sent(
        self, digest: QueuedDigest, part: int, *, message_id: str | None, now: datetime
    ) -> None:
        """Part ``part`` (0-based) went out; the last one makes the digest sent."""
        row = self.db.execute(
            "SELECT message_ids FROM digests WHERE destination = ? AND period_end = ?",
            [digest.destination, _iso(digest.period_end)],
        ).fetchone()
        ids = [*json.loads(row[0]), message_id] if row else [message_id]
        done = part + 1 >= len(digest.parts)
        self.db.execute(
            "UPDATE digests SET sent_parts = ?, message_ids = ?, status = ?, sent_at = ?, "
            "attempts = attempts + 1, last_error = NULL WHERE destination = ? AND period_end = ?",
            [
                part + 1,
                json.dumps(ids),
                "sent" if done else "pending",
                _iso(now) if done else None,
                digest.destination,
                _iso(digest.period_end),
            ],
        )

    def digest_retry(self, digest: QueuedDigest, *, error: str, at: datetime) -> None:
        self.db.execute(
            "UPDATE digests SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE destination = ? AND period_end = ?",
            [error, _iso(at), digest.destination, _iso(digest.period_end)],
        )

    def digest_rejected(self, digest: QueuedDigest, *, error: str) -> None:
        self.db.execute(
            "UPDATE digests SET status = 'rejected', attempts = attempts + 1, last_error = ? "
            "WHERE destination = ? AND period_end = ?",
            [error, digest.destination, _iso(digest.period_end)],
        )

    def count_pending_digests(self, destination: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM digests WHERE destination = ? AND status = 'pending'",
            [destination],
        ).fetchone()[0]

    # --- what a digest is made of ---------------------------------------------------------

    def period_alerts(self, start: datetime, end: datetime) -> list[Alert]:
        """The alerts recorded in [start, end), oldest first."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM alerts a {self._ALERT_JOIN} "
            "WHERE a.created_at >= ? AND a.created_at < ? ORDER BY a.id",
            [_iso(start), _iso(end)],
        )
        return [self._alert_from_row(r) for r in rows]

    def held_alerts(self, destination: str, *, before: datetime) -> list[Alert]:
        """A subscriber's alerts held for their digest, recorded before ``before``."""
        rows = self.db.query(
            f"SELECT {self._ALERT_COLUMNS} FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            f"{self._ALERT_JOIN} WHERE d.destination = ? AND d.status = '{HELD}' "
            "AND a.created_at < ? ORDER BY a.id",
            [destination, _iso(before)],
        )
        return [self._alert_from_row(r) for r in rows]

    # --- a subscriber's choice: instant or a digest ---------------------------------------

    def digest_modes(self) -> dict[str, str]:
        """Subscribers' chats that get digests: destination -> its digest settings (JSON)."""
        rows = self.db.execute(
            "SELECT key, value FROM settings WHERE key LIKE ?", [f"{DIGEST_MODE_PREFIX}%"]
        )
        return {k.removeprefix(DIGEST_MODE_PREFIX): v for k, v in rows}

    def set_digest_mode(self, destination: str, settings: str | None) -> int:
        """Digests (``settings``, JSON) or, with None, instant alerts for a subscriber's chat;
        back to instant, what was held for the digest is sent now. Returns the alerts
        released."""
        key = f"{DIGEST_MODE_PREFIX}{destination}"
        with self.db.atomic():
            if settings is None:
                self.db.execute("DELETE FROM settings WHERE key = ?", [key])
                return self.db.execute(
                    "UPDATE deliveries SET status = 'pending' "
                    f"WHERE destination = ? AND status = '{HELD}'",
                    [destination],
                ).rowcount
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                [key, settings],
            )
        return 0
