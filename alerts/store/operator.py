"""Operator state: mutes, settings, personal subscriptions (and their suspension)."""

from __future__ import annotations

from datetime import datetime

from .engine import Database
from .schema import _iso, _when


class OperatorStore:
    """Mutes, settings and subscriptions."""

    db: Database

    def mute(self, term: str, *, until: datetime, by_user: int | None = None) -> None:
        self.db.execute(
            "INSERT INTO mutes (term, until, by_user) VALUES (?, ?, ?) "
            "ON CONFLICT (term) DO UPDATE SET until = excluded.until, "
            "by_user = excluded.by_user",
            [term.casefold(), _iso(until), by_user],
        )

    def unmute(self, term: str) -> bool:
        return self.db.execute("DELETE FROM mutes WHERE term = ?", [term.casefold()]).rowcount > 0

    def active_mutes(self, *, now: datetime) -> dict[str, datetime]:
        return {
            r[0]: _when(r[1])
            for r in self.db.execute("SELECT term, until FROM mutes WHERE until > ?", [_iso(now)])
        }

    def get_setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = ?", [key])
        else:
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                [key, value],
            )

    def subscribe(self, chat_id: int, kind: str, value: str, *, now: datetime) -> bool:
        cur = self.db.execute(
            "INSERT INTO subscriptions (chat_id, kind, value, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [chat_id, kind, value, _iso(now)],
        )
        return cur.rowcount > 0

    def unsubscribe(self, chat_id: int, value: str) -> bool:
        return (
            self.db.execute(
                "DELETE FROM subscriptions WHERE chat_id = ? AND lower(value) = ?",
                [chat_id, value.casefold()],
            ).rowcount
            > 0
        )

    def subscriptions(self, chat_id: int | None = None) -> list[tuple[int, str, str]]:
        """Active subscriptions (chat, kind, value); suspended ones are left out."""
        sql, args = "SELECT chat_id, kind, value FROM subscriptions WHERE suspended_at IS NULL", []
        if chat_id is not None:
            sql, args = sql + " AND chat_id = ?", [chat_id]
        return [tuple(r) for r in self.db.execute(sql + " ORDER BY chat_id, kind, value", args)]

    def suspend_subscriber(
        self, chat_id: int, destination: str, *, reason: str, now: datetime
    ) -> tuple[int, int]:
        """The subscriber cannot be written to (blocked the bot, account deleted): suspend
        their subscriptions and reject what waits for their chat, with the reason, in one
        transaction. Returns (subscriptions suspended, alerts rejected); suspending again
        suspends nothing more, and rejects what was queued for them since (another instance
        may have queued it from subscriptions it read before the first suspension)."""
        with self.db.atomic():
            suspended = self.db.execute(
                "UPDATE subscriptions SET suspended_at = ?, suspended_reason = ? "
                "WHERE chat_id = ? AND suspended_at IS NULL",
                [_iso(now), reason, chat_id],
            ).rowcount
            rejected = self.db.execute(
                "UPDATE deliveries SET status = 'rejected', last_error = ? "
                "WHERE destination = ? AND status = 'pending'",
                [f"subscriber unreachable: {reason}", destination],
            ).rowcount
        return suspended, rejected

    def resume_subscriber(self, chat_id: int) -> int:
        """The subscriber wrote to the bot again: their suspended subscriptions are active
        again. Returns how many."""
        return self.db.execute(
            "UPDATE subscriptions SET suspended_at = NULL, suspended_reason = NULL "
            "WHERE chat_id = ? AND suspended_at IS NOT NULL",
            [chat_id],
        ).rowcount
