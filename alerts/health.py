"""One health model for the three views of it: ``/status`` (a bot command), ``GET /healthz``
(``run``'s endpoint, for a supervisor) and ``python bot.py status`` (the database alone, for
cron). ``assess`` is pure: it weighs what the store reports (``HealthFacts``) and, where there
is a running process, what only it knows (``Live``), against the config's thresholds.

Findings come in two kinds, the same in every view:

- **reasons** (unhealthy): something is broken that needs a restart or a person now. They turn
  /healthz 503 and ``status`` exit 1: the scheduler stalled, the database refuses writes, every
  feed has been failing for over ``poll.failing_after_hours``, or a configured destination has
  delivered nothing for over ``ops.paused_after_minutes``.
- **warnings** (attention): a person should look, a restart would not help. /healthz stays 200
  and lists them; ``status`` exits 1 for them too (for cron): one feed failing for over
  ``failing_after_hours``, a feed disabled, a destination held with /pause, instances running
  different watchlists, commands not started yet.

Personal chats (subscribers) are never a finding: one subscriber who blocked the bot is their
business. They are folded into one destination, ``telegram:subscribers``, with counts and no
user id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import Config
from .deliver import SUBSCRIBERS, public_destination
from .digest import DigestState, states
from .logs import redact_credentials
from .store.health import HealthFacts, InstanceRecord, LastAlert

MAX_LISTED = 10  # findings named one by one in /healthz and /status; the rest are counted


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationLive:
    """What the deliverer of a running process knows of one destination."""

    # ok | failing (retrying after errors) | paused (refused) | held (/pause) | elsewhere
    # (another instance on the same database sends to it)
    state: str
    since: datetime | None = None  # when it stopped delivering (failing, paused)


@dataclass(frozen=True, slots=True, kw_only=True)
class Live:
    """What only a running ``run`` knows."""

    tick_age: float | None  # seconds since the scheduler ticked (None: never)
    tick_every: float
    database_error: str | None  # why the database refuses a write now (None: it takes one)
    destinations: Mapping[str, DestinationLive]  # by sink name, personal chats included
    commands: str = "off"  # off | starting | up | elsewhere (another instance answers them)
    instance: Mapping[str, object] | None = None  # several instances: this one's id and roles


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHealth:
    name: str
    state: str  # ok | failing | disabled | never polled
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    error: str | None = None
    next_poll_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationHealth:
    # ok | failing | paused | held | elsewhere (live); from the database alone, ok | held; and
    # "not configured" for alerts left pending for a destination the config no longer has
    state: str
    since: datetime | None = None  # failing or paused since
    pending: int = 0
    oldest: datetime | None = None  # when the oldest pending alert was queued
    chats: int | None = None  # telegram:subscribers: private chats subscribed
    suspended: int | None = None  # telegram:subscribers: chats suspended (blocked the bot)
    digest: DigestState | None = None  # its scheduled digest: last sent, next due


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    reasons: tuple[str, ...]  # unhealthy
    warnings: tuple[str, ...]  # attention
    feeds: tuple[FeedHealth, ...]
    destinations: dict[str, DestinationHealth]
    last_poll: datetime | None
    last_alert: LastAlert | None
    alerts_today: int
    database: str  # the path, or the URL without its password
    database_bytes: int
    instances: tuple[InstanceRecord, ...] = ()
    live: Live | None = None  # None: the database alone (``status``)

    @property
    def healthy(self) -> bool:
        """No reason to restart or wake someone: /healthz 200."""
        return not self.reasons

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything a person should look at: ``status`` exits 1 when there is any."""
        return self.reasons + self.warnings

    def count(self, state: str) -> int:
        return sum(f.state == state for f in self.feeds)


def span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g}s"


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


def _feeds(config: Config, facts: HealthFacts) -> tuple[FeedHealth, ...]:
    out = []
    for feed in config.feeds:
        r = facts.feeds.get(feed.name)
        if r is None or r.url != feed.url:
            out.append(FeedHealth(name=feed.name, state="never polled"))
        elif r.disabled_reason:
            out.append(FeedHealth(name=feed.name, state="disabled", error=r.disabled_reason))
        elif r.last_status == "error":
            out.append(
                FeedHealth(
                    name=feed.name,
                    state="failing",
                    last_ok_at=r.last_ok_at,
                    failing_since=r.failing_since,
                    error=r.last_error,
                    next_poll_at=r.next_poll_at,
                )
            )
        else:
            out.append(
                FeedHealth(
                    name=feed.name, state="ok", last_ok_at=r.last_ok_at, next_poll_at=r.next_poll_at
                )
            )
    return tuple(out)


def _destinations(
    config: Config, facts: HealthFacts, live: Live | None, now: datetime
) -> dict[str, DestinationHealth]:
    pending: dict[str, tuple[int, datetime | None]] = {}
    for name, waiting in facts.pending.items():
        public = public_destination(name)
        count, oldest = pending.get(public, (0, None))
        pending[public] = (
            count + waiting.count,
            waiting.oldest if oldest is None else min(oldest, waiting.oldest),
        )
    out = {}
    digests = states(config, facts.digests, now=now)
    configured = config.destinations.names()
    for name in (*configured, *(n for n in pending if n not in configured)):
        if name == SUBSCRIBERS:
            continue
        count, oldest = pending.get(name, (0, None))
        state = live.destinations.get(name) if live is not None else None
        if name in facts.held:
            state = DestinationLive(state="held")
        elif name not in configured:
            state = DestinationLive(state="not configured")
        out[name] = DestinationHealth(
            state=state.state if state else "ok",
            since=state.since if state else None,
            pending=count,
            oldest=oldest,
            digest=digests.get(name),
        )
    count, oldest = pending.get(SUBSCRIBERS, (0, None))
    if config.destinations.telegram is not None and (facts.subscribers or facts.suspended or count):
        out[SUBSCRIBERS] = DestinationHealth(
            state="ok",
            pending=count,
            oldest=oldest,
            chats=facts.subscribers,
            suspended=facts.suspended,
        )
    return out


def assess(
    config: Config, facts: HealthFacts, *, now: datetime, live: Live | None = None
) -> Health:
    """The verdict, with its reasons and warnings (see the module's docstring)."""
    failing_after = timedelta(hours=config.poll.failing_after_hours)
    paused_after = timedelta(minutes=config.ops.paused_after_minutes)
    feeds = _feeds(config, facts)
    destinations = _destinations(config, facts, live, now)
    reasons: list[str] = []
    warnings: list[str] = []

    if live is not None:
        if live.tick_age is None or live.tick_age > 2 * live.tick_every:
            reasons.append(
                "scheduler stalled: "
                + (
                    "it never ticked"
                    if live.tick_age is None
                    else f"last tick {live.tick_age:.0f}s ago (it ticks every {live.tick_every:g}s)"
                )
            )
        if live.database_error is not None:
            reasons.append(f"database not writable: {live.database_error}")

    def failing_long(f: FeedHealth) -> bool:
        return f.failing_since is not None and now - f.failing_since >= failing_after

    polled = [f for f in feeds if f.state != "never polled"]
    every = bool(polled) and all(
        f.state == "disabled" or (f.state == "failing" and failing_long(f)) for f in polled
    )
    if every:
        reasons.append(f"every feed is failing, for over {span(failing_after)}")
    for name, d in destinations.items():
        if name == SUBSCRIBERS:
            continue
        if live is not None:
            # The live view: how long the destination has accepted nothing.
            if d.state in ("paused", "failing") and d.since and now - d.since > paused_after:
                reasons.append(
                    f"destination {name} is {d.state} since "
                    f"{d.since:%Y-%m-%d %H:%M:%S} UTC (over {span(paused_after)})"
                )
        elif d.state == "ok" and d.oldest is not None and now - d.oldest > paused_after:
            # The database alone: how long its oldest alert has waited.
            reasons.append(
                f"{d.pending} alert(s) for {name} waiting since {when(d.oldest)} "
                f"(over {span(paused_after)})"
            )

    for f in feeds:
        if f.state == "disabled":
            warnings.append(f"feed {f.name} is disabled: {f.error}")
        elif f.state == "failing" and failing_long(f):
            warnings.append(f"feed {f.name} failing since {when(f.failing_since)} ({f.error})")
    for name, d in destinations.items():
        if d.state == "held":
            warnings.append(f"destination {name} is paused (/resume to release it)")
        elif d.state == "not configured":
            warnings.append(
                f"{d.pending} alert(s) for {name} waiting since {when(d.oldest)}: "
                f"{name} is no longer configured"
            )
    if len({i.config_hash for i in facts.instances}) > 1:
        warnings.append(
            "instances run different watchlists: "
            + ", ".join(f"{i.id} ({i.config_hash})" for i in facts.instances)
        )
    if live is not None and live.commands == "starting":
        warnings.append("commands are not answered yet: Telegram could not be reached (retrying)")

    polls = [f.last_polled_at for f in facts.feeds.values() if f.last_polled_at]
    return Health(
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        feeds=feeds,
        destinations=destinations,
        last_poll=max(polls) if polls else None,
        last_alert=facts.last_alert,
        alerts_today=facts.alerts_today,
        database=redact_credentials(str(config.database)),
        database_bytes=facts.size_bytes,
        instances=facts.instances,
        live=live,
    )


def listed(findings: tuple[str, ...], limit: int = MAX_LISTED) -> list[str]:
    """At most ``limit`` findings, then how many more (a thousand failing feeds stay short)."""
    if len(findings) <= limit:
        return list(findings)
    return [*findings[:limit], f"… and {len(findings) - limit} more"]
