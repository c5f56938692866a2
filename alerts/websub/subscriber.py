"""Subscribing: ask each hub a poll found for its topic, renew every lease at 80% of it, and
unsubscribe from what the config no longer polls (or from a hub the feed no longer names).

One instance does this (the coordinator's ``websub`` role; always the only one on SQLite),
on a timer. Each request is recorded before it goes out (the hub may verify it before it
answers), so whichever instance the hub's verification reaches can confirm it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric

from ..config import WebSubConfig
from ..logs import event
from ..runtime import Runtime
from ..store import Store
from ..types import WebSubscription, utcnow

log = logging.getLogger("chipwatch.websub")

RENEW_AT = 0.8  # of the lease the hub granted: renewed then, well before it ends
VERIFY_WAIT = timedelta(minutes=5)  # a request the hub has not verified by then is repeated
RETRY_MAX = timedelta(hours=6)  # the longest wait between two tries
DENIED_RETRY = timedelta(days=1)  # a hub that denied a subscription is asked again after this
UNSUBSCRIBE_TRIES = 3  # then the subscription is forgotten: its lease lapses at the hub


def callback_url(config: WebSubConfig, sub_id: str) -> str:
    return f"{config.callback_url}/{sub_id}"


def renew_at(verified: datetime, lease_seconds: int) -> datetime:
    return verified + timedelta(seconds=lease_seconds * RENEW_AT)


class Subscriber:
    """Keeps the subscriptions at hubs in step with the config and what polls found."""

    def __init__(self, runtime: Runtime, config: WebSubConfig):
        self.runtime = runtime
        self.config = config  # as the process started: the callback it serves

    async def maintain(self, now: datetime | None = None) -> None:
        """Subscribe, renew, retry and unsubscribe whatever is due."""
        runtime, config = self.runtime, self.config
        if runtime.coordinator is not None and not runtime.coordinator.lead_websub():
            return
        now = now or utcnow()
        store = runtime.store
        polled = {f.name for f in runtime.config.feeds}
        wanted = {n: h for n, h in store.hubs().items() if n in polled and h.hub is not None}
        covered: set[str] = set()
        for sub in store.websub_subscriptions():
            link = wanted.get(sub.feed)
            current = link is not None and (link.hub, link.topic) == (sub.hub, sub.topic)
            due = sub.due_at is None or sub.due_at <= now
            if current and sub.state != "unsubscribing":
                covered.add(sub.feed)
                if due:  # a renewal, a retry, or a denied one asked again
                    await self._request(sub, "subscribe", config, now=now)
            elif sub.state == "denied":
                store.delete_websub(sub.id)  # not wanted any more, and the hub has none
            elif sub.state != "unsubscribing" or (due and sub.attempts < UNSUBSCRIBE_TRIES):
                await self._request(sub, "unsubscribe", config, now=now)
            elif due:
                store.delete_websub(sub.id)
                event(log, "websub_forgotten", logging.WARNING, feed=sub.feed, hub=sub.hub)
        for feed, link in wanted.items():
            if feed in covered:
                continue
            assert link.hub is not None
            sub = WebSubscription(
                id=secrets.token_urlsafe(18),  # the callback's path: unguessable, one each
                feed=feed,
                hub=link.hub,
                topic=link.topic,
                secret=secrets.token_hex(32),
                state="requested",
                pending="subscribe",
                created_at=now,
            )
            store.add_websub(sub)
            await self._request(sub, "subscribe", config, now=now)

    async def _request(
        self, sub: WebSubscription, mode: str, config: WebSubConfig, *, now: datetime
    ) -> None:
        """Ask the hub to (un)subscribe; the hub then verifies at the callback."""
        runtime = self.runtime
        attempts = sub.attempts if sub.pending == mode else 0
        wait = min(VERIFY_WAIT * 2**attempts, RETRY_MAX)
        runtime.store.websub_requested(sub.id, mode, now=now, due_at=now + wait)
        fields = {
            "hub.mode": mode,
            "hub.topic": sub.topic,
            "hub.callback": callback_url(config, sub.id),
        }
        if mode == "subscribe":
            fields["hub.secret"] = sub.secret
            fields["hub.lease_seconds"] = str(config.lease_seconds)
        feed = next((f for f in runtime.config.feeds if f.name == sub.feed), None)
        proxy = feed.proxy if feed is not None else runtime.config.poll.proxy
        status, detail = await runtime.fetcher.post_form(sub.hub, fields, proxy=proxy)
        if status is not None and 200 <= status < 300:
            runtime.metrics.websub_requests.labels(mode, "accepted").inc()
            event(log, "websub_requested", mode=mode, feed=sub.feed, hub=sub.hub, topic=sub.topic)
            return
        error = f"http_{status}: {detail}".strip() if status is not None else detail
        runtime.store.websub_failed(sub.id, error, due_at=now + wait)
        runtime.metrics.websub_requests.labels(mode, "failed").inc()
        event(
            log,
            "websub_request_failed",
            logging.WARNING,
            mode=mode,
            feed=sub.feed,
            hub=sub.hub,
            error=error,
            retry_in=f"{wait.total_seconds():g}s",
        )


class SubscriptionCollector:
    """Gauges read at scrape time: subscriptions by state, and the shortest lease left among
    the active ones (a renewal that keeps failing shows here before pushes stop)."""

    STATES = ("requested", "active", "unsubscribing", "denied")

    def __init__(self, store: Store):
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # collect() needs the live store

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        subs = self.store.websub_subscriptions()
        states = GaugeMetricFamily(
            "chipwatch_websub_subscriptions",
            "WebSub subscriptions by state (requested: the hub has not verified it yet).",
            labels=["state"],
        )
        for state in self.STATES:
            states.add_metric([state], sum(s.state == state for s in subs))
        yield states
        left = [
            (s.expires_at - now).total_seconds()
            for s in subs
            if s.state == "active" and s.expires_at is not None
        ]
        yield GaugeMetricFamily(
            "chipwatch_websub_lease_remaining_seconds",
            "The shortest lease left among active WebSub subscriptions (-1: none).",
            value=min(left) if left else -1.0,
        )
