"""The scheduler only ticks: one APScheduler job per feed on its interval, plus a delivery job.

``max_instances=1`` means a feed is never polled twice at once; a tick that comes while the
previous poll still runs is skipped (and coalesced), not queued. ``stop`` lets in-flight polls and
deliveries finish before it returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .config import FeedConfig
from .logs import event

log = logging.getLogger("chipwatch.scheduler")

DELIVER_EVERY_SECONDS = 2.0
FIRST_RUN_SPREAD_SECONDS = 5.0  # first polls are spread over this, so feeds do not fire at once


class Scheduler:
    """Calls ``poll(feed)`` for each feed on its interval and ``deliver()`` every few seconds."""

    def __init__(
        self,
        *,
        poll: Callable[[FeedConfig], Awaitable[object]],
        deliver: Callable[[], Awaitable[object]],
        deliver_every: float = DELIVER_EVERY_SECONDS,
        first_run_spread: float = FIRST_RUN_SPREAD_SECONDS,
        tick_every: float = 5.0,
    ):
        self._poll = poll
        self._deliver = deliver
        self._deliver_every = deliver_every
        # A job of its own proves the scheduler ticks: a long delivery or poll skips its own
        # next tick (max_instances=1), this one returns at once and is never skipped.
        self.tick_every = tick_every
        self.last_tick: float | None = None  # time.monotonic() of the last tick
        self._spread = first_run_spread
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._in_flight: set[asyncio.Task] = set()
        self._feeds: dict[str, FeedConfig] = {}

    def _tracked(self, make: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                await make()
            except Exception:  # a failing tick must not kill the job; the next tick retries
                log.exception("scheduled_job_failed")
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        return job

    def set_feeds(self, feeds: Iterable[FeedConfig]) -> None:
        """Add, remove and reschedule feed jobs to match ``feeds``."""
        wanted = {f.name: f for f in feeds}
        for name in list(self._feeds):
            if name not in wanted:
                self._scheduler.remove_job(f"feed:{name}")
                del self._feeds[name]
        now = datetime.now(timezone.utc)
        for name, feed in wanted.items():
            if self._feeds.get(name) == feed:
                continue
            if name in self._feeds:
                self._scheduler.remove_job(f"feed:{name}")
            # Spread first polls over a few seconds so feeds do not all fire at once.
            first = now + timedelta(seconds=random.uniform(0, self._spread))
            self._scheduler.add_job(
                self._tracked(functools.partial(self._poll, feed)),
                "interval",
                seconds=feed.interval_seconds,
                id=f"feed:{name}",
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=feed.interval_seconds,
                next_run_time=first,
                jitter=feed.jitter_seconds,
            )
            self._feeds[name] = feed

    async def _tick(self) -> None:
        self.last_tick = time.monotonic()

    def start(self, feeds: Iterable[FeedConfig]) -> None:
        self.last_tick = time.monotonic()
        self._scheduler.start()
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=self.tick_every,
            id="tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.add_job(
            self._tracked(self._deliver),
            "interval",
            seconds=self._deliver_every,
            id="deliver",
            max_instances=1,
            coalesce=True,
            # However late a busy event loop lets it fire, a delivery still runs (APScheduler's
            # default grace of 1 s dropped them when thousands of polls kept the loop busy).
            misfire_grace_time=None,
            next_run_time=datetime.now(timezone.utc),
        )
        self.set_feeds(feeds)
        event(log, "scheduler_started", feeds=len(self._feeds))

    def every(self, seconds: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
        """A housekeeping job (e.g. pruning) every ``seconds``, first run after one period."""
        self._scheduler.add_job(
            self._tracked(job),
            "interval",
            seconds=seconds,
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    async def stop(self, *, grace_seconds: float = 30.0) -> None:
        """Stop ticking, then wait (up to the grace period) for running jobs to finish."""
        # Pause first: shutting down APScheduler's asyncio executor cancels running jobs.
        self._scheduler.pause()
        running = [t for t in self._in_flight if not t.done()]
        if running:
            event(log, "scheduler_draining", jobs=len(running))
            await asyncio.wait(running, timeout=grace_seconds)
        self._scheduler.shutdown(wait=False)
        event(log, "scheduler_stopped")
