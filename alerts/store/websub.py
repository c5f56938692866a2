"""WebSub: the hub each feed names (recorded by polls) and the subscriptions at hubs. Every
check-and-set a hub's request depends on is one conditional statement, so instances sharing
the database cannot both act on one verification."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from ..types import HubLink, WebSubscription
from .engine import Database
from .schema import _dt, _iso, _when

_DATES = ("requested_at", "verified_at", "expires_at", "due_at", "last_push_at")
_COLUMNS = tuple(f.name for f in fields(WebSubscription))


def _subscription(row: dict) -> WebSubscription:
    values = {k: row[k] for k in _COLUMNS}
    values.update({k: _dt(row[k]) for k in _DATES}, created_at=_when(row["created_at"]))
    return WebSubscription(**values)


class WebSubStore:
    """Hubs found by polls, and subscriptions: requested, verified, renewed, pushed to."""

    db: Database

    # --- what polls found -------------------------------------------------------------------

    def record_hub(self, feed: str, link: HubLink, *, now: datetime) -> None:
        """The hub (or none) a poll of ``feed`` found; written only when it changed."""
        row = self.db.execute("SELECT hub, topic FROM hubs WHERE feed = ?", [feed]).fetchone()
        if row is not None and (row[0], row[1]) == (link.hub, link.topic):
            return
        self.db.execute(
            "INSERT INTO hubs (feed, hub, topic, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (feed) "
            "DO UPDATE SET hub = excluded.hub, topic = excluded.topic, seen_at = excluded.seen_at",
            [feed, link.hub, link.topic, _iso(now)],
        )

    def hubs(self) -> dict[str, HubLink]:
        return {
            r["feed"]: HubLink(hub=r["hub"], topic=r["topic"])
            for r in self.db.query("SELECT feed, hub, topic FROM hubs")
        }

    # --- subscriptions ------------------------------------------------------------------------

    def websub_subscriptions(self) -> list[WebSubscription]:
        return [
            _subscription(r)
            for r in self.db.query("SELECT * FROM websub ORDER BY feed, created_at")
        ]

    def websub_subscription(self, sub_id: str) -> WebSubscription | None:
        rows = list(self.db.query("SELECT * FROM websub WHERE id = ?", [sub_id]))
        return _subscription(rows[0]) if rows else None

    def websub_active(self, feed: str, *, now: datetime) -> bool:
        """Whether a hub pushes ``feed`` now: a verified subscription whose lease runs."""
        return (
            self.db.execute(
                "SELECT 1 FROM websub WHERE feed = ? AND state = 'active' AND expires_at > ?",
                [feed, _iso(now)],
            ).fetchone()
            is not None
        )

    def add_websub(self, sub: WebSubscription) -> None:
        self.db.execute(
            "INSERT INTO websub (id, feed, hub, topic, secret, state, pending, created_at, "
            "requested_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sub.id,
                sub.feed,
                sub.hub,
                sub.topic,
                sub.secret,
                sub.state,
                sub.pending,
                _iso(sub.created_at),
                _iso(sub.requested_at),
                _iso(sub.due_at),
            ],
        )

    def websub_requested(self, sub_id: str, mode: str, *, now: datetime, due_at: datetime) -> None:
        """About to ask the hub (recorded first: the hub may verify before it answers); one
        more attempt until the hub verifies one."""
        state = ", state = 'unsubscribing'" if mode == "unsubscribe" else ""
        self.db.execute(
            "UPDATE websub SET pending = ?, requested_at = ?, due_at = ?, attempts = attempts + 1"
            f"{state} WHERE id = ?",
            [mode, _iso(now), _iso(due_at), sub_id],
        )

    def websub_failed(self, sub_id: str, error: str, *, due_at: datetime) -> None:
        """The hub refused the request: try again at ``due_at``."""
        self.db.execute(
            "UPDATE websub SET last_error = ?, due_at = ? WHERE id = ?",
            [error, _iso(due_at), sub_id],
        )

    def websub_verified(
        self,
        sub_id: str,
        topic: str,
        *,
        lease_seconds: int,
        now: datetime,
        expires_at: datetime,
        renew_at: datetime,
    ) -> bool:
        """The hub verified a subscribe we asked for (pending, same topic): active until
        ``expires_at``. False when we asked for no such thing."""
        return (
            self.db.execute(
                "UPDATE websub SET state = 'active', pending = NULL, verified_at = ?, "
                "lease_seconds = ?, expires_at = ?, due_at = ?, attempts = 0, last_error = NULL "
                "WHERE id = ? AND topic = ? AND pending = 'subscribe'",
                [_iso(now), lease_seconds, _iso(expires_at), _iso(renew_at), sub_id, topic],
            ).rowcount
            == 1
        )

    def websub_unsubscribed(self, sub_id: str, topic: str) -> bool:
        """The hub verified an unsubscribe we asked for: the subscription is gone."""
        return (
            self.db.execute(
                "DELETE FROM websub WHERE id = ? AND topic = ? AND pending = 'unsubscribe'",
                [sub_id, topic],
            ).rowcount
            == 1
        )

    def websub_denied(self, sub_id: str, topic: str, reason: str, *, due_at: datetime) -> bool:
        return (
            self.db.execute(
                "UPDATE websub SET state = 'denied', pending = NULL, last_error = ?, due_at = ? "
                "WHERE id = ? AND topic = ?",
                [f"denied: {reason}", _iso(due_at), sub_id, topic],
            ).rowcount
            == 1
        )

    def websub_pushed(self, sub_id: str, *, now: datetime) -> None:
        self.db.execute(
            "UPDATE websub SET pushes = pushes + 1, last_push_at = ? WHERE id = ?",
            [_iso(now), sub_id],
        )

    def delete_websub(self, sub_id: str) -> None:
        self.db.execute("DELETE FROM websub WHERE id = ?", [sub_id])
