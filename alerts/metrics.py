"""Prometheus metrics of one ``run`` process, in a registry of its own (never the library's
global one, so several runtimes in one process, as in tests, do not collide).

Counters are fed from what the stages already return (a poll's outcome, a delivery report, a
reload's result); gauges that describe stored state (outbox, feeds) are read at scrape time by a
collector the ops endpoint adds.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from . import __version__

# A poll is a fetch plus a parse: most take well under a second, a slow host up to the timeout.
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

# The *_created series double every counter for little use here.
disable_created_metrics()


class Metrics:
    """The counters and histograms ``run`` updates, and their rendering."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter(
            "chipwatch_polls",
            "Feed polls by outcome (skipped: not due yet).",
            ["status"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "chipwatch_poll_duration_seconds",
            "Time to poll one feed (fetch, parse, match, record); skipped polls are not observed.",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.new_items = Counter(
            "chipwatch_new_items", "Items seen for the first time.", registry=r
        )
        self.alerts = Counter(
            "chipwatch_alerts",
            "Alerts queued (one per new story; a follow-up's is quiet).",
            registry=r,
        )
        self.story_reports = Counter(
            "chipwatch_story_reports",
            "Alerting items by placement: the first report of a new "
            "story, a follow-up (a new story posted quietly in an earlier one's thread), "
            "or joined to an existing one (no new alert).",
            ["placement"],
            registry=r,
        )
        self.deliveries = Counter(
            "chipwatch_deliveries",
            "Delivery attempts by destination and result (sent and "
            "rejected count alerts, followup the sent alerts that were quiet "
            "follow-ups; retry, unavailable and edited count attempts).",
            ["destination", "result"],
            registry=r,
        )
        self.reloads = Counter(
            "chipwatch_config_reloads", "Config file reloads by result.", ["result"], registry=r
        )
        self.websub_pushes = Counter(
            "chipwatch_websub_pushes",
            "Content WebSub hubs pushed, by result: accepted (signature valid, its items "
            "went through the pipeline), rejected (signature missing or wrong: ignored), "
            "gone (no such subscription), failed (not processed; the hub retries).",
            ["result"],
            registry=r,
        )
        self.websub_requests = Counter(
            "chipwatch_websub_requests",
            "Requests to WebSub hubs by mode (subscribe, unsubscribe) and result (accepted, "
            "failed), and the hubs' verifications by mode and result (verified, refused).",
            ["mode", "result"],
            registry=r,
        )
        build = Info("chipwatch_build", "The running chipwatch.", registry=r)
        build.info({"version": __version__, "python": platform.python_version()})
        for status in ("ok", "not_modified", "unchanged", "error", "disabled", "skipped"):
            self.polls.labels(status)  # present at 0 from the start, so rate() sees the first
        for placement in ("new_story", "followup", "joined"):
            self.story_reports.labels(placement)
        for result in ("applied", "invalid"):
            self.reloads.labels(result)
        for result in ("accepted", "rejected", "gone", "failed"):
            self.websub_pushes.labels(result)

    def poll(
        self,
        *,
        status: str,
        seconds: float | None,
        new_items: int = 0,
        alerts: int = 0,
        story_joins: int = 0,
        story_followups: int = 0,
    ) -> None:
        """One feed poll's outcome (``alerts`` counts its follow-ups too)."""
        self.polls.labels(status).inc()
        if seconds is not None:
            self.poll_seconds.observe(seconds)
        self.found(
            new_items=new_items,
            alerts=alerts,
            story_joins=story_joins,
            story_followups=story_followups,
        )

    def found(
        self,
        *,
        new_items: int = 0,
        alerts: int = 0,
        story_joins: int = 0,
        story_followups: int = 0,
    ) -> None:
        """What a poll or a push found: new items, alerts and their placement."""
        self.new_items.inc(new_items)
        self.alerts.inc(alerts)
        self.story_reports.labels("new_story").inc(alerts - story_followups)
        self.story_reports.labels("followup").inc(story_followups)
        self.story_reports.labels("joined").inc(story_joins)

    def delivery(self, results: Mapping[tuple[str, str], int]) -> None:
        """A delivery round's (destination, result) -> count."""
        for (destination, result), n in results.items():
            self.deliveries.labels(destination, result).inc(n)

    def reload(self, result: str) -> None:
        self.reloads.labels(result).inc()

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for, and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
