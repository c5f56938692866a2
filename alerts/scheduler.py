"""The scheduler only ticks: one APScheduler job per feed on its interval, plus a delivery job.

``max_instances=1`` means a feed is never polled twice at once; a tick that comes while the
previous poll still runs is skipped (and coalesced), not queued. Such skips are one named event,
``job_still_running``, at most once a minute per job with the count (APScheduler's own WARNING
for each skip, every 2 s while a send hangs, is dropped).

``stop`` (SIGTERM) cancels the polls in flight at once (nothing of theirs is recorded: they are
polled again at the next start) and gives the deliveries in flight ``grace_seconds`` to finish,
then cancels them too (the alert stays pending; at most that one message repeats), so ``run``
exits well within Docker's 10-second stop timeout.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from .config import FeedConfig
from .logs import event

log = logging.getLogger("chipwatch.scheduler")

DELIVER_EVERY_SECONDS = 2.0
FIRST_RUN_SPREAD_SECONDS = 5.0  # first polls are spread over this, so feeds do not fire at once
STOP_GRACE_SECONDS = 5.0  # deliveries in flight at SIGTERM get this long (Docker waits 10 s)
OVERLAP_LOG_EVERY_SECONDS = 60.0  # job_still_running at most this often per job


class _DropSkipWarnings(logging.Filter):
    """APScheduler's WARNING for each skipped tick; ``job_still_running`` says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(
            'Execution of job "%s" skipped: maximum number of running instances'
        )


_APSCHEDULER_LOG = logging.getLogger("apscheduler.scheduler")
if not any(isinstance(f, _DropSkipWarnings) for f in _APSCHEDULER_LOG.filters):
    _APSCHEDULER_LOG.addFilter(_DropSkipWarnings())


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
        clock: Callable[[], float] = time.monotonic,
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
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self._clock = clock
        self._in_flight: dict[asyncio.Task, str] = {}  # task -> job name
        self._polls: set[asyncio.Task] = set()  # those of them that are polls
        self._stopping = False
        self._feeds: dict[str, FeedConfig] = {}
        # job id -> (ticks skipped since the last job_still_running, when that was logged)
        self._skips: dict[str, tuple[int, float | None]] = {}
        self.skipped: dict[str, int] = {}  # job id -> ticks skipped in all
        self._digests: dict[str, CronTrigger] = {}

    def _tracked(
        self, make: Callable[[], Awaitable[object]], *, name: str, poll: bool = False
    ) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight[task] = name
                if poll:
                    self._polls.add(task)
            try:
                await make()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Cut short by stop(): a poll records nothing and runs again at the next start;
                # a delivery leaves its alert pending.
                event(log, "poll_cancelled" if poll else "job_cut_short", job=name)
            except Exception:  # a failing tick must not kill the job; the next tick retries
                log.exception("scheduled_job_failed")
            finally:
                if task is not None:
                    self._in_flight.pop(task, None)
                    self._polls.discard(task)

        return job

    def _skipped(self, submission: JobSubmissionEvent) -> None:
        """A tick came while the job's previous run was still going: counted, and logged as
        one event at most once a minute per job."""
        job = submission.job_id
        self.skipped[job] = self.skipped.get(job, 0) + 1
        count, logged = self._skips.get(job, (0, None))
        now = self._clock()
        if logged is not None and now - logged < OVERLAP_LOG_EVERY_SECONDS:
            self._skips[job] = (count + 1, logged)
            return
        self._skips[job] = (0, now)
        event(
            log,
            "job_still_running",
            logging.WARNING,
            job=job,
            skipped=count + 1,
            note="its ticks are skipped until it ends",
        )

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
                self._tracked(functools.partial(self._poll, feed), name=f"feed:{name}", poll=True),
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

    def set_digests(
        self, triggers: dict[str, CronTrigger], job: Callable[[], Awaitable[object]]
    ) -> None:
        """One cron job per scheduled digest (``job`` queues whatever is due), replacing the
        jobs of the last call."""
        for name in list(self._digests):
            if repr(triggers.get(name)) != repr(self._digests[name]):
                self._scheduler.remove_job(f"digest:{name}")
                del self._digests[name]
        for name, trigger in triggers.items():
            if name in self._digests:
                continue
            self._scheduler.add_job(
                self._tracked(job, name=f"digest:{name}"),
                trigger,
                id=f"digest:{name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,  # however late it fires, the digest is queued
            )
            self._digests[name] = trigger

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
            self._tracked(self._deliver, name="deliver"),
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
            self._tracked(job, name=name),
            "interval",
            seconds=seconds,
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    async def stop(self, *, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop ticking; cancel the polls in flight; give the other jobs (a delivery, a
        reload) up to ``grace_seconds`` to finish, then cancel them too."""
        # Pause first: shutting down APScheduler's asyncio executor cancels running jobs.
        self._scheduler.pause()
        self._stopping = True
        polls = [t for t in self._polls if not t.done()]
        for task in polls:
            task.cancel()
        others = [t for t in self._in_flight if not t.done() and t not in self._polls]
        late: set[asyncio.Task] = set()
        if others:
            event(log, "scheduler_draining", jobs=",".join(self._in_flight[t] for t in others))
            _, late = await asyncio.wait(others, timeout=grace_seconds)
            for task in late:
                task.cancel()
        await asyncio.gather(*polls, *late, return_exceptions=True)
        self._scheduler.shutdown(wait=False)
        event(log, "scheduler_stopped", polls_cancelled=len(polls), cut_short=len(late))
