"""Delivery: sinks that send one alert each, and ``deliver_pending`` that drains the outbox.

A sink raises ``RetryLater``, ``Rejected`` or ``Unavailable`` (see ``alerts.errors``) when a
destination does not accept an alert; ``deliver_pending`` turns each into outbox state, so an
alert is marked sent only after its destination took it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ..errors import Rejected, RetryLater, Unavailable
from ..logs import event
from ..store import Alert, Store, utcnow

log = logging.getLogger("chipwatch.deliver")

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0


class Sink(Protocol):
    """Something that can show an alert to people."""

    name: str

    async def send(self, alert: Alert) -> str | None:
        """Deliver one alert; return the destination's message id if it has one."""

    async def aclose(self) -> None:
        """Release connections."""


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    rejected: int = 0
    paused: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.rejected += other.rejected
        self.paused += other.paused


def backoff(attempts: int) -> float:
    """Seconds to wait after the n-th failed attempt: 5, 10, 20, … capped at an hour."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


async def deliver_pending(store: Store, sinks: Sequence[Sink], *,
                          now: Callable[[], datetime] = utcnow) -> DeliveryReport:
    """Send every alert that is due, per sink, oldest first."""
    report = DeliveryReport()
    for sink in sinks:
        for alert in store.pending(sink.name, now=now()):
            try:
                message_id = await sink.send(alert)
            except RetryLater as exc:
                attempts = store.attempts(alert.id, sink.name) + 1
                wait = exc.retry_after if exc.retry_after is not None else backoff(attempts)
                store.mark_retry(alert.id, sink.name, error=str(exc),
                                 at=now() + timedelta(seconds=wait))
                event(log, "alert_retry", logging.WARNING, destination=sink.name, alert=alert.id,
                      wait=f"{wait:g}s", error=str(exc))
                report.retrying += 1
                continue
            except Rejected as exc:
                store.mark_rejected(alert.id, sink.name, error=str(exc))
                event(log, "alert_rejected", logging.ERROR, destination=sink.name, alert=alert.id,
                      error=str(exc))
                report.rejected += 1
                continue
            except Unavailable as exc:
                event(log, "destination_paused", logging.ERROR, destination=sink.name,
                      alert=alert.id, error=str(exc))
                report.paused.append(sink.name)
                break
            store.mark_sent(alert.id, sink.name, message_id=message_id, now=now())
            event(log, "alert_sent", destination=sink.name, alert=alert.id, message_id=message_id)
            report.sent += 1
    return report


async def drain_outbox(store: Store, sinks: Sequence[Sink], *, max_wait: float = 120.0,
                       now: Callable[[], datetime] = utcnow,
                       sleep: Callable[[float], object] | None = None) -> DeliveryReport:
    """Deliver until nothing is pending, or the next retry is further than ``max_wait`` away,
    or every destination with pending alerts is paused. Used by ``once`` and at shutdown."""
    import asyncio

    sleep = sleep or asyncio.sleep
    deadline = now() + timedelta(seconds=max_wait)
    total = DeliveryReport()
    active = list(sinks)
    while active:
        report = await deliver_pending(store, active, now=now)
        total.add(report)
        active = [s for s in active if s.name not in report.paused and store.count_pending(s.name)]
        if not active:
            break
        due = min((store.next_attempt_at(s.name) or now()) for s in active)
        if due > deadline:
            break
        await sleep(max(0.0, (due - now()).total_seconds()))
    return total
