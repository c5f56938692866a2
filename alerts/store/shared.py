"""What several instances on one database share: feed leases, who is running, and what the
others recorded (for the clusterer to catch up on)."""

from __future__ import annotations

from datetime import datetime

from .engine import Database
from .schema import _iso, _when


class SharedStore:
    """Feed leases and instance heartbeats."""

    db: Database

    # --- feed leases ----------------------------------------------------------------------

    def claim_feed(
        self,
        name: str,
        url: str,
        *,
        owner: str,
        now: datetime,
        until: datetime,
        due_by: datetime | None,
        create: bool = True,
    ) -> bool:
        """Take the feed's lease until ``until``: it is free (or lapsed, or already ours), and
        (when ``due_by`` is given) its next poll is due by then. One conditional UPDATE: the
        row lock makes a concurrent claimer wait and then re-check the condition, which fails,
        so exactly one claim wins (what ``FOR UPDATE SKIP LOCKED`` gives a queue). ``create``:
        the feed may have no row yet (then a failed claim costs a second statement)."""
        due = ""
        args: list[object] = [owner, _iso(until), name, _iso(now), owner]
        if due_by is not None:
            due = " AND (next_poll_at IS NULL OR next_poll_at <= ? OR url != ?)"
            args += [_iso(due_by), url]
        sql = (
            "UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE name = ? AND "
            f"(lease_until IS NULL OR lease_until <= ? OR lease_owner = ?){due}"
        )
        if self.db.execute(sql, args).rowcount == 1:
            return True
        if not create:
            return False
        added = self.db.execute(
            "INSERT INTO feeds (name, url) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [name, url]
        ).rowcount
        return bool(added) and self.db.execute(sql, args).rowcount == 1

    def holds_feed(self, name: str, *, owner: str) -> bool:
        """Whether ``owner`` still holds the feed's lease. Inside a transaction the row stays
        locked (``FOR UPDATE``, PostgreSQL only), so no claim can slip in before the commit."""
        return (
            self.db.execute(
                "SELECT 1 FROM feeds WHERE name = ? AND lease_owner = ? FOR UPDATE", [name, owner]
            ).fetchone()
            is not None
        )

    def release_feed(self, name: str, *, owner: str) -> None:
        self.db.execute(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
            "WHERE name = ? AND lease_owner = ?",
            [name, owner],
        )

    def release_feeds(self, *, owner: str) -> None:
        """Every lease ``owner`` holds (a clean stop hands its feeds over at once)."""
        self.db.execute(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            [owner],
        )

    # --- advisory locks (PostgreSQL): held by this session until released or closed -------

    def try_lock(self, key: int, name: str | None = None) -> bool:
        """Take the session lock ``key`` (or, with ``name``, the two-key lock (key, name))
        unless another session holds it."""
        if name is None:
            row = self.db.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()
        else:
            row = self.db.execute("SELECT pg_try_advisory_lock(?, hashtext(?))", [key, name])
            row = row.fetchone()
        return bool(row[0])

    def unlock(self, key: int) -> None:
        self.db.execute("SELECT pg_advisory_unlock(?)", [key])

    def unlock_all(self) -> None:
        self.db.execute("SELECT pg_advisory_unlock_all()")

    # --- instances ------------------------------------------------------------------------

    def heartbeat(
        self,
        instance: str,
        *,
        host: str,
        pid: int,
        command: str,
        started_at: datetime,
        now: datetime,
        config_hash: str,
        roles: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO instances (id, host, pid, command, started_at, seen_at, config_hash, "
            "roles) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "seen_at = excluded.seen_at, config_hash = excluded.config_hash, "
            "roles = excluded.roles",
            [instance, host, pid, command, _iso(started_at), _iso(now), config_hash, roles],
        )

    def set_roles(self, instance: str, roles: str) -> None:
        self.db.execute("UPDATE instances SET roles = ? WHERE id = ?", [roles, instance])

    def live_instances(self, *, since: datetime) -> list[dict]:
        """Instances that reported since ``since``, oldest first."""
        return [
            {**r, "started_at": _when(r["started_at"]), "seen_at": _when(r["seen_at"])}
            for r in self.db.query(
                "SELECT * FROM instances WHERE seen_at >= ? ORDER BY started_at, id", [_iso(since)]
            )
        ]

    def forget_instance(self, instance: str, *, before: datetime | None = None) -> None:
        """Remove our row on a clean stop, and rows not seen since ``before``."""
        self.db.execute("DELETE FROM instances WHERE id = ?", [instance])
        if before is not None:
            self.db.execute("DELETE FROM instances WHERE seen_at < ?", [_iso(before)])

    # --- what the others recorded -----------------------------------------------------------

    def max_item_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]

    def items_after(self, item_id: int) -> list[tuple[int, str, int | None]]:
        """(id, title, story id) of the items recorded after ``item_id``, in order."""
        return [
            (r[0], r[1], r[2])
            for r in self.db.execute(
                "SELECT id, title, story_id FROM items WHERE id > ? ORDER BY id", [item_id]
            )
        ]
