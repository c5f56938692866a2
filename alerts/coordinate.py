"""Several instances on one PostgreSQL database: who polls each feed, who places stories, who
sends to each destination, who answers commands. SQLite has one writer (``lock``) and needs
none of this: ``Coordinator.for_store`` gives ``None`` there.

- **Feeds**: a lease per feed (``feeds.lease_owner`` / ``lease_until``), claimed before the
  fetch and only when the feed is due, so each feed is polled by one instance per interval.
  A dead instance's leases lapse and the others' next ticks take its feeds.
- **Story placement** runs under one advisory lock, after catching up on what the others
  recorded, so it decides as one instance would (``Clusterer.catch_up``).
- **Delivery**: one instance at a time sends to each destination, under a session advisory
  lock taken before its first send. The lock ends with the holder's connection, whatever
  killed it; the next holder finds every unsent alert still pending. Per-destination (not
  per-alert) claims keep one pacing budget and the outbox order per channel.
- **Commands**: the holder of another advisory lock answers them (Telegram allows one
  ``getUpdates`` poller per token); the others try again every few seconds.
- **WebSub**: the holder of a third advisory lock subscribes to hubs and renews leases (the
  hub's calls may reach any instance: they read the shared subscriptions).
- **Heartbeat**: each instance records itself and its watchlist hash, and warns when another
  one runs a different watchlist.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from .config import Config, FeedConfig, PollConfig
from .logs import event
from .store import Store
from .stories import Clusterer
from .types import utcnow

log = logging.getLogger("chipwatch.coordinate")

PLACEMENT_LOCK = 0x63770003
COMMANDS_LOCK = 0x63770004
WEBSUB_LOCK = 0x63770005
DESTINATION_LOCKS = 0x6377  # the first key of the two-key locks, one per destination
HEARTBEAT_SECONDS = 10.0
LEADER_CHECK_SECONDS = 5.0


def watchlist_hash(config: Config) -> str:
    """A short hash of what decides alerts: the watchlists and the rules."""
    text = repr((sorted(config.watchlists.items()), config.rules))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def feed_lease(poll: PollConfig, feeds: int) -> timedelta:
    """How long a claim on ``feeds`` feeds polled together lasts: room for every fetch of the
    batch (``concurrency`` at a time) to time out, and for the parse and the write after."""
    rounds = math.ceil(max(1, feeds) / max(1, poll.concurrency))
    return timedelta(seconds=max(60.0, 3 * poll.timeout_seconds + 30) * rounds)


class Coordinator:
    """This instance's part in sharing one database with others."""

    def __init__(self, store: Store, *, command: str):
        self.store = store
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"
        self.command = command
        self.started_at = utcnow()
        self.leader = False  # answers commands
        self.websub = False  # subscribes to WebSub hubs and renews the leases
        self._destinations: set[str] = set()
        self._warned: set[tuple[str, str, str]] = set()
        self._placing = asyncio.Lock()
        self._rows: set[str] = set()  # feeds whose row exists

    @classmethod
    def for_store(cls, store: Store, *, command: str) -> Coordinator | None:
        if getattr(store.db, "dialect", "sqlite") != "postgresql":
            return None
        return cls(store, command=command)

    # --- feeds ------------------------------------------------------------------------------

    def claim_feed(
        self, feed: FeedConfig, *, now: datetime, until: datetime, due_by: datetime | None
    ) -> bool:
        # Feed rows are never deleted: once one is known to exist, a failed claim (not due,
        # or another instance's) is one statement, not two.
        create = feed.name not in self._rows
        claimed = self.store.claim_feed(
            feed.name, feed.url, owner=self.id, now=now, until=until, due_by=due_by, create=create
        )
        self._rows.add(feed.name)
        return claimed

    def still_holds(self, feed: FeedConfig) -> bool:
        """Whether the feed's lease is still ours; inside a transaction it also locks the row,
        so no other instance can claim it until that transaction ends."""
        return self.store.holds_feed(feed.name, owner=self.id)

    def release_feed(self, feed: FeedConfig) -> None:
        self.store.release_feed(feed.name, owner=self.id)

    # --- story placement ------------------------------------------------------------------

    @asynccontextmanager
    async def placement(self, clusterer: Clusterer | None) -> AsyncIterator[None]:
        """Hold the placement lock; the clusterer first learns what the others recorded."""
        # The advisory lock is per session, and a session may take it again: polls of this
        # instance (one session) are kept apart by an asyncio lock first.
        async with self._placing:
            wait = 0.005
            while not self._try_lock(PLACEMENT_LOCK):
                # Held for milliseconds at a time; backing off keeps a queue of waiters from
                # flooding the server with tries when every poll has news (a first cycle).
                await asyncio.sleep(wait)
                wait = min(wait * 1.5, 0.1)
            try:
                if clusterer is not None:
                    clusterer.catch_up(self.store)
                yield
            finally:
                try:
                    if clusterer is not None:
                        clusterer.recorded(self.store)
                finally:
                    self.store.unlock(PLACEMENT_LOCK)

    # --- delivery and commands ------------------------------------------------------------

    def may_send(self, destination: str) -> bool:
        """Whether this instance sends to ``destination``: it holds the destination's lock, or
        takes it now because no live instance does."""
        if destination in self._destinations:
            return True
        taken = self.store.try_lock(DESTINATION_LOCKS, destination)
        if taken:
            self._destinations.add(destination)
            event(log, "destination_claimed", destination=destination, instance=self.id)
            self._roles_changed()
        return bool(taken)

    def lead(self) -> bool:
        """Whether this instance answers commands (taking the lead when nobody holds it)."""
        return self._lead("leader", COMMANDS_LOCK, "commands")

    def lead_websub(self) -> bool:
        """Whether this instance subscribes to hubs (taking the role when nobody holds it)."""
        return self._lead("websub", WEBSUB_LOCK, "websub")

    def _lead(self, attribute: str, key: int, role: str) -> bool:
        """A role one instance holds at a time, by its advisory lock: ours already, or taken
        now because no live instance holds it."""
        if not getattr(self, attribute) and self._try_lock(key):
            setattr(self, attribute, True)
            event(log, "leader_elected", instance=self.id, role=role)
            self._roles_changed()
        return bool(getattr(self, attribute))

    def _roles_changed(self) -> None:
        """Shown at once (``status``), not at the next heartbeat."""
        self.store.set_roles(self.id, ",".join(self.roles()))

    def _try_lock(self, key: int) -> bool:
        return self.store.try_lock(key)

    def roles(self) -> list[str]:
        """What this instance does besides polling: ``commands``, ``websub``,
        ``deliver:<destination>``."""
        return (
            (["commands"] if self.leader else [])
            + (["websub"] if self.websub else [])
            + [f"deliver:{d}" for d in sorted(self._destinations)]
        )

    # --- heartbeat ------------------------------------------------------------------------

    def heartbeat(self, config: Config, *, now: datetime) -> list[dict]:
        """Record this instance; returns the other live ones. A different watchlist hash on
        another instance is logged at WARNING, once per pair of hashes."""
        mine = watchlist_hash(config)
        self.store.heartbeat(
            self.id,
            host=self.host,
            pid=self.pid,
            command=self.command,
            started_at=self.started_at,
            now=now,
            config_hash=mine,
            roles=",".join(self.roles()),
        )
        since = now - timedelta(seconds=3 * HEARTBEAT_SECONDS)
        others = [i for i in self.store.live_instances(since=since) if i["id"] != self.id]
        for other in others:
            key = (other["id"], other["config_hash"], mine)
            if other["config_hash"] != mine and key not in self._warned:
                self._warned.add(key)
                event(
                    log,
                    "config_mismatch",
                    logging.WARNING,
                    instance=other["id"],
                    theirs=other["config_hash"],
                    ours=mine,
                    hint="instances on one database must run the same config",
                )
        return others

    def close(self) -> None:
        """Give up every lock and lease at once (a clean stop hands over without waiting)."""
        self.leader = self.websub = False
        self._destinations.clear()
        try:
            self.store.unlock_all()
            self.store.release_feeds(owner=self.id)
            self.store.forget_instance(self.id, before=utcnow() - timedelta(days=1))
        except Exception as exc:  # noqa: BLE001 - a lost session took its locks with it
            event(log, "coordinator_close_failed", logging.WARNING, error=str(exc).strip())
