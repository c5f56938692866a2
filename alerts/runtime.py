"""The live state of ``run``: config, matcher, sinks, deliverer and clusterer, and the hot
reload that swaps them when ``config.yaml`` changes.

A changed file is validated first; an invalid edit never replaces the running config. The bot
keeps running on the last good one, logs the error (file, line, key) and tells the admins.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import Config, FeedConfig, load_config
from .coordinate import Coordinator
from .deliver import Deliverer, Sink, personal_chat, personal_destination, public_destination
from .deliver.sinks import build_sinks
from .deliver.telegram import TelegramClient, TelegramSink
from .errors import ConfigError
from .fetch import Fetcher, FetchResult
from .health import DestinationLive
from .logs import event, redact
from .match import Matcher, compile_matcher
from .metrics import Metrics
from .pipeline import FeedOutcome, PollContext, poll_feed, push_feed
from .store import Store
from .stories import Clusterer
from .types import utcnow

log = logging.getLogger("chipwatch.runtime")


@dataclass(frozen=True, slots=True)
class FileStamp:
    """Enough of a file's stat to notice edits, including atomic saves (write, then rename)."""

    mtime_ns: int
    size: int
    inode: int

    @staticmethod
    def of(path: Path) -> FileStamp | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return FileStamp(st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a look at the config file did."""

    status: Literal["unchanged", "applied", "invalid"]
    error: str | None = None  # when invalid: file, line, key and why
    repeated: bool = False  # the same error as last time (already reported)


class Runtime:
    """Owns what a config determines; ``reload_if_changed`` swaps it safely."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        sink_factory: Callable[..., list[Sink]] = build_sinks,
        coordinator: Coordinator | None = None,
    ):
        self.store = store
        self.coordinator = coordinator  # several instances on one database
        self._sink_factory = sink_factory
        self.metrics = Metrics()
        # One Bot and one pacing budget for the token, kept across reloads: the channel sink,
        # personal chats, command replies and admin notices all go through it.
        self.telegram = _telegram_client(config)
        self.config = config
        self.matcher: Matcher = compile_matcher(config.watchlists, config.rules, config.learned)
        self.fetcher = Fetcher(config.poll)
        self.clusterer = Clusterer(
            store, config.stories, now=utcnow(), watchlists=config.watchlists
        )
        self.deliverer = self._deliverer(sink_factory(config, telegram=self.telegram))
        self._add_private_sinks()
        self._stamp = FileStamp.of(config.path)
        self._last_error: str | None = None
        # Bot commands: off (no Telegram) | starting (Telegram not reached yet) | up |
        # elsewhere (another instance on the same database answers them)
        self.commands = "off"
        self._feed_locks: dict[str, asyncio.Lock] = {}
        # Set when a push queued alerts: the delivery job runs at once instead of at its tick.
        self.deliver_soon = asyncio.Event()
        self._delivering = asyncio.Lock()
        self._load_paused()

    # --- the work the scheduler ticks -----------------------------------------------------

    async def poll(self, feed: FeedConfig) -> None:
        started = time.perf_counter()
        async with self._feed_lock(feed.name):
            outcome = await poll_feed(feed, self._context(respect_schedule=True))
        seconds = time.perf_counter() - started if outcome.status != "skipped" else None
        self.metrics.poll(
            status=outcome.status,
            seconds=seconds,
            new_items=outcome.new_items,
            alerts=outcome.alerts,
            story_joins=outcome.story_joins,
            story_followups=outcome.story_followups,
        )

    async def push(self, feed: FeedConfig, pushed: FetchResult) -> FeedOutcome:
        """What a WebSub hub pushed for ``feed``, through the poll's steps; a poll of the same
        feed in this process waits (both would take the same items for new)."""
        async with self._feed_lock(feed.name):
            outcome = await push_feed(feed, pushed, self._context())
        self.metrics.found(
            new_items=outcome.new_items,
            alerts=outcome.alerts,
            story_joins=outcome.story_joins,
            story_followups=outcome.story_followups,
        )
        if outcome.alerts:
            self.deliver_soon.set()
        return outcome

    def _context(self, *, respect_schedule: bool = False) -> PollContext:
        return PollContext(
            config=self.config,
            store=self.store,
            matcher=self.matcher,
            fetcher=self.fetcher,
            now=utcnow(),
            clusterer=self.clusterer,
            coordinator=self.coordinator,
            respect_schedule=respect_schedule,
        )

    def _feed_lock(self, name: str) -> asyncio.Lock:
        lock = self._feed_locks.get(name)
        if lock is None:
            lock = self._feed_locks[name] = asyncio.Lock()
        return lock

    async def deliver(self) -> None:
        """One delivery round; the scheduler's tick and a push's wake-up take turns."""
        async with self._delivering:
            await self._deliver()

    async def _deliver(self) -> None:
        if self.coordinator is not None:
            # The instance answering commands may have paused a destination or added a
            # subscriber since the last tick: follow the shared state.
            self._load_paused()
            self._add_private_sinks()
        report = await self.deliverer.deliver_due()
        for destination, reason in report.gone:
            await self._suspend(destination, reason)
        # Every subscriber's chat under one label: bounded, and no user id in the metrics.
        results: dict[tuple[str, str], int] = {}
        for (destination, result), n in report.results.items():
            key = (public_destination(destination), result)
            results[key] = results.get(key, 0) + n
        self.metrics.delivery(results)

    async def _suspend(self, destination: str, reason: str) -> None:
        """A subscriber's chat cannot be written to: suspend their subscriptions (they come
        back when the subscriber writes to the bot again) and tell the admins, once."""
        chat = personal_chat(destination)
        if chat is None:
            return
        suspended, rejected = self.store.suspend_subscriber(
            chat, destination, reason=reason, now=utcnow()
        )
        event(
            log,
            "subscription_suspended",
            logging.WARNING,
            chat=chat,
            subscriptions=suspended,
            rejected=rejected,
            reason=reason,
        )
        if suspended:
            await self.notify_admins(
                f"ℹ️ A subscriber ({chat}) can no longer be written to ({reason}): their "
                f"{suspended} subscription{'' if suspended == 1 else 's'} "
                f"{'is' if suspended == 1 else 'are'} suspended until they write to the bot "
                f"again. The channel is not affected."
            )

    async def notify_admins(self, text: str) -> None:
        """A notice to every admin in a private chat (they must have sent /start once); a
        failure is logged, never raised."""
        if self.telegram is None:
            return
        for admin in self.config.destinations.admins:
            try:
                await self.telegram.send_html(admin, html.escape(text))
            except Exception as exc:  # noqa: BLE001 - a notice must never stop delivery
                event(
                    log,
                    "admin_notify_failed",
                    logging.WARNING,
                    admin=admin,
                    error=redact(f"{type(exc).__name__}: {exc}", [self.telegram.token]),
                )

    def live_destinations(self) -> dict[str, DestinationLive]:
        """Each sink's delivery state as this process sees it."""
        deliverer = self.deliverer
        out = {}
        for sink in deliverer.sinks:
            down = deliverer.down_since(sink.name)
            if sink.name in deliverer.held_back:
                out[sink.name] = DestinationLive(state="held")
            elif sink.name in deliverer.elsewhere:
                out[sink.name] = DestinationLive(state="elsewhere")
            elif down is not None:
                state = "paused" if deliverer.is_paused(sink.name) else "failing"
                out[sink.name] = DestinationLive(state=state, since=down)
            else:
                out[sink.name] = DestinationLive(state="ok")
        return out

    # --- personal subscriptions ---------------------------------------------------------------

    def channel_sink(self) -> TelegramSink | None:
        """The sink of the bot's own destination (the first Telegram one)."""
        bot = self.config.destinations.bot
        return next(
            (
                s
                for s in self.deliverer.sinks
                if isinstance(s, TelegramSink) and bot is not None and s.name == bot.name
            ),
            None,
        )

    def ensure_private_sink(self, chat_id: int) -> None:
        """A sink for a subscriber's private chat, so its outbox rows can be delivered."""
        channel = self.channel_sink()
        name = personal_destination(chat_id)
        if channel is not None and all(s.name != name for s in self.deliverer.sinks):
            self.deliverer.sinks.append(channel.for_chat(chat_id))

    def _add_private_sinks(self) -> None:
        for chat_id in {chat for chat, _, _ in self.store.subscriptions()}:
            self.ensure_private_sink(chat_id)

    # --- pause and resume (operator state, kept in SQLite) --------------------------------

    def _load_paused(self) -> None:
        held = self.store.held()
        for sink in self.deliverer.sinks:
            if sink.name in held:
                self.deliverer.held_back.add(sink.name)
            else:
                self.deliverer.held_back.discard(sink.name)

    def set_paused(self, destination: str, paused: bool) -> None:
        self.store.set_held(destination, paused)
        (self.deliverer.held_back.add if paused else self.deliverer.held_back.discard)(destination)

    # --- hot reload ---------------------------------------------------------------------------

    async def reload_if_changed(self) -> Reload:
        """Apply the config file if it changed and is valid. The caller reschedules feeds
        after an applied reload and tells the admins about a new error."""
        stamp = FileStamp.of(self.config.path)
        if stamp is None:
            return self._missing()
        if stamp == self._stamp:
            return Reload("unchanged")
        self._stamp = stamp
        try:
            new = load_config(self.config.path)
            sinks = (
                self._sink_factory(new, telegram=self.telegram)
                if new.destinations != self.config.destinations
                else None
            )
        except ConfigError as exc:
            message = str(exc)
            event(
                log, "config_invalid", logging.ERROR, error=message, keeping="the last good config"
            )
            repeated, self._last_error = message == self._last_error, message
            self.metrics.reload("invalid")
            return Reload("invalid", error=message, repeated=repeated)
        await self.apply(new, sinks=sinks)
        self.metrics.reload("applied")
        return Reload("applied")

    def _missing(self) -> Reload:
        """The config file is gone (deleted, moved, an unmounted volume): say so once, and go on
        with the last good config until a file is there again (then it is loaded as an edit)."""
        if self._stamp is None:
            return Reload("unchanged")  # already said
        self._stamp = None
        message = (
            f"{self.config.path}: the config file is gone (deleted or moved); chipwatch keeps "
            "running on the last good config and loads the file again when it is back"
        )
        event(
            log,
            "config_missing",
            logging.WARNING,
            path=self.config.path,
            keeping="the last good config",
        )
        self._last_error = message
        self.metrics.reload("invalid")
        return Reload("invalid", error=message)

    async def apply(self, new: Config, *, sinks: list[Sink] | None = None) -> None:
        old = self.config
        for changed, name, reason, fields in (
            (
                new.database != old.database,
                "config_database_ignored",
                "a new database path needs a restart",
                {"database": new.database},
            ),
            (
                new.ops.listen != old.ops.listen,
                "config_ops_listen_ignored",
                "a new ops.listen needs a restart",
                {"listen": new.ops.listen or '""'},
            ),
            (
                new.websub != old.websub,
                "config_websub_ignored",
                "a new websub section needs a restart (feeds added or removed apply now)",
                {},
            ),
        ):
            if changed:
                event(log, name, logging.WARNING, reason=reason, **fields)
        self.matcher = compile_matcher(new.watchlists, new.rules, new.learned)
        if new.poll != old.poll:
            old_fetcher, self.fetcher = self.fetcher, Fetcher(new.poll)
            await old_fetcher.aclose()
        if new.stories != old.stories:
            self.clusterer = Clusterer(
                self.store, new.stories, now=utcnow(), watchlists=new.watchlists
            )
        self.config = new  # before the private sinks: they come from its bot's destination
        if sinks is not None:
            old_sinks = self.deliverer.sinks
            held = self.deliverer.held_back
            self.deliverer = self._deliverer(sinks)
            self.deliverer.held_back |= held
            self._add_private_sinks()
            for sink in old_sinks:
                await sink.aclose()
        self._last_error = None
        terms = sum(len(t) for t in new.watchlists.values())
        event(
            log,
            "config_reloaded",
            feeds=len(new.feeds),
            terms=terms,
            rules=",".join(r.name for r in new.rules),
        )

    def _deliverer(self, sinks: list[Sink]) -> Deliverer:
        may_send = self.coordinator.may_send if self.coordinator is not None else None
        return Deliverer(self.store, sinks, may_send=may_send)

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        for sink in self.deliverer.sinks:
            await sink.aclose()
        if self.telegram is not None:
            await self.telegram.aclose()


def _telegram_client(config: Config) -> TelegramClient | None:
    telegram = config.destinations.telegram
    token = os.environ.get(telegram.token_env, "").strip() if telegram else ""
    if telegram is None or not token:
        return None
    return TelegramClient(token=token, base_url=telegram.api_base_url)
