"""Scheduled digests: when each falls due (APScheduler's cron trigger, in the destination's
zoneinfo time zone), what goes in it, and queueing it once.

A period runs from one due time to the next: a daily digest at 08:00 Europe/Berlin covers the
alerts recorded from yesterday's 08:00 to today's, whatever the clocks did in between. When a
period ends, its digest is rendered and queued as one outbox row keyed by (destination, period
end); whoever queues it first (this instance, another one on PostgreSQL, or this one before a
restart) wins, and the others find it there. Only the latest period is ever caught up: a bot
that was down for three days sends one digest when it starts, not three.

- A configured destination's digest holds the period's alerts it takes (``Destination.takes``:
  its rules, categories, feeds and feed tags, as configured now), whether or not it also got
  them one by one.
- A subscriber who chose a digest (``/digest daily``) has their alerts held at decide time
  (delivery status ``digest``); their digest is what was held, and sending it marks them sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from .config import Config, Destination, DigestConfig
from .deliver import personal_chat
from .deliver.digest import Heading, render, story_count, telegram_parts
from .logs import event
from .store import Store
from .types import Alert

log = logging.getLogger("chipwatch.digest")

_TICK = timedelta(microseconds=1)
DIGEST_CHECK_SECONDS = 60.0  # subscribers' digests, and any cron tick missed, within this


def trigger(schedule: DigestConfig) -> CronTrigger:
    """The digest's schedule as APScheduler's cron trigger, in its own time zone."""
    hour, minute = (int(x) for x in schedule.at.split(":"))
    return CronTrigger(
        hour=hour,
        minute=minute,
        day_of_week=schedule.weekday if schedule.every == "week" else "*",
        timezone=ZoneInfo(schedule.timezone),
    )


def next_due(schedule: DigestConfig, now: datetime) -> datetime:
    """The first due time after ``now`` (in UTC, as everything stored)."""
    found = trigger(schedule).get_next_fire_time(None, now + _TICK)
    assert found is not None  # a cron trigger without an end date always has a next time
    return found.astimezone(timezone.utc)


def last_due(schedule: DigestConfig, now: datetime) -> datetime:
    """The latest due time at or before ``now``."""
    cron = trigger(schedule)
    t = cron.get_next_fire_time(None, now - timedelta(days=8))
    assert t is not None
    while (n := cron.get_next_fire_time(None, t + _TICK)) is not None and n <= now:
        t = n
    return t.astimezone(timezone.utc)


def period(schedule: DigestConfig, now: datetime) -> tuple[datetime, datetime]:
    """The latest period that has ended by ``now``: (its start, its end, a due time)."""
    end = last_due(schedule, now)
    return last_due(schedule, end - _TICK), end


def heading(name: str, schedule: DigestConfig, start: datetime, end: datetime) -> Heading:
    zone = ZoneInfo(schedule.timezone)
    local_end = end.astimezone(zone)
    if schedule.every == "week":
        local_start = start.astimezone(zone)
        return Heading(
            title="Weekly digest",
            destination=name,
            period=f"{local_start:%a %d %b} – {local_end:%a %d %b %Y}",
        )
    return Heading(title="Daily digest", destination=name, period=f"{local_end:%a %d %b %Y}")


def taken(config: Config, dest: Destination, alerts: Sequence[Alert]) -> list[Alert]:
    """The alerts ``dest`` takes, by its filters and the feeds' tags as configured now."""
    tags = {f.name: f.tags for f in config.feeds}
    return [
        a
        for a in alerts
        if dest.takes(
            rules=a.rules,
            categories={m.category for m in a.matches},
            feed=a.feed,
            feed_tags=tags.get(a.feed, ()),
        )
    ]


def subscriber_schedule(settings: str) -> DigestConfig:
    """A subscriber's digest settings as stored (JSON of ``DigestConfig``'s fields)."""
    return DigestConfig(**json.loads(settings))


def subscriber_settings(schedule: DigestConfig) -> str:
    return json.dumps(asdict(schedule), sort_keys=True)


def queue_due(config: Config, store: Store, *, now: datetime) -> list[str]:
    """Queue every digest whose period has ended and that nobody queued yet; returns the
    destinations queued (an empty one skipped counts: it is recorded as handled)."""
    queued = []
    for dest in config.destinations.digests:
        schedule = dest.digest
        assert schedule is not None
        start, end = period(schedule, now)
        if store.digest_queued(dest.name, end):
            continue
        alerts = taken(config, dest, store.period_alerts(start, end))
        parts = (
            render(dest.kind, heading(dest.name, schedule, start, end), alerts)
            if alerts or schedule.empty == "send"
            else []
        )
        if _queue(store, dest.name, start, end, alerts, parts, now=now):
            queued.append(dest.name)
    for destination, settings in store.digest_modes().items():
        if personal_chat(destination) is None:
            continue
        schedule = subscriber_schedule(settings)
        start, end = period(schedule, now)
        if store.digest_queued(destination, end):
            continue
        alerts = store.held_alerts(destination, before=end)
        parts = (
            telegram_parts(heading("your subscriptions", schedule, start, end), alerts)
            if alerts
            else []
        )
        if _queue(store, destination, start, end, alerts, parts, now=now, held=True):
            queued.append(destination)
    return queued


def _queue(
    store: Store,
    destination: str,
    start: datetime,
    end: datetime,
    alerts: Sequence[Alert],
    parts: list,
    *,
    now: datetime,
    held: bool = False,
) -> bool:
    added = store.queue_digest(
        destination,
        period_start=start,
        period_end=end,
        stories=story_count(alerts),
        parts=parts,
        now=now,
        held=[a.id for a in alerts] if held else (),
    )
    if added:
        event(
            log,
            "scheduled_digest_queued" if parts else "scheduled_digest_skipped",
            destination=destination,
            period=end.isoformat(),
            stories=story_count(alerts),
            parts=len(parts),
        )
    return added


def so_far(config: Config, store: Store, dest: Destination, *, now: datetime) -> list[str]:
    """The current period's digest for ``dest`` until ``now``, as Telegram messages (for an
    admin's ``/digest``): nothing is queued or marked."""
    schedule = dest.digest or DigestConfig()
    start = last_due(schedule, now)
    alerts = taken(config, dest, store.period_alerts(start, now))
    zone = ZoneInfo(schedule.timezone)
    head = Heading(
        title="Digest so far",
        destination=dest.name,
        period=f"since {start.astimezone(zone):%a %d %b %H:%M} {schedule.timezone}",
    )
    return telegram_parts(head, alerts)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestState:
    """A destination's digest, for ``status``, ``/healthz`` and ``/metrics``."""

    schedule: str  # "daily at 08:00 Europe/Berlin"
    next_due: datetime
    last_period: datetime | None = None  # the latest period queued
    last_status: str | None = None  # pending | sent | skipped | rejected
    last_sent: datetime | None = None

    def to_json(self) -> dict:
        return {
            "schedule": self.schedule,
            "next_due": self.next_due.isoformat(),
            "last_period": self.last_period.isoformat() if self.last_period else None,
            "last_status": self.last_status,
            "last_sent": self.last_sent.isoformat() if self.last_sent else None,
        }


def states(
    config: Config, latest: dict[str, tuple[datetime, str, datetime | None]], *, now: datetime
) -> dict[str, DigestState]:
    """Each configured digest's state, from ``latest`` (destination -> its latest period's
    end, status and sent time, as the store reads them)."""
    out = {}
    for dest in config.destinations.digests:
        assert dest.digest is not None
        last = latest.get(dest.name)
        out[dest.name] = DigestState(
            schedule=dest.digest.describe(),
            next_due=next_due(dest.digest, now),
            last_period=last[0] if last else None,
            last_status=last[1] if last else None,
            last_sent=last[2] if last else None,
        )
    return out
