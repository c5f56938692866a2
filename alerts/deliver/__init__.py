"""Delivery: sinks that send alerts, and a ``Deliverer`` that drains the outbox into them.

A sink raises ``RetryLater``, ``Rejected`` or ``Unavailable`` (see ``alerts.errors``) when its
destination does not take a message; the deliverer turns each into outbox state, so an alert is
marked sent only after its destination accepted it:

- ``RetryLater``: the alert stays pending; the whole destination holds for ``retry_after`` (as
  told) or an exponential backoff, so alerts keep their order.
- ``Rejected``: recorded with the API's reason, not retried.
- ``Unavailable`` (401/403, chat gone): the destination is paused, loudly; its alerts stay pending
  and a probe retries it later (1 min, doubling to 15 min) until it works again.
- ``RecipientGone`` (a subscriber blocked the bot): that private chat's sink is dropped and
  reported (``DeliveryReport.gone``); the runtime suspends the subscription. Nothing pauses.

When more alerts wait for a destination than its rate allows in the next ten seconds, they go
out as digests: one message listing several headlines.

A follow-up (an alert with ``thread_of``) goes after its story's alert and is handed the id of
the message that carried the story to the same destination, to reply to it quietly; with none
(the story was rejected there, never queued there, or pruned) the sink names the story instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..errors import RecipientGone, Rejected, RetryLater, Unavailable
from ..logs import event
from ..store import Store
from ..types import Alert, utcnow

log = logging.getLogger("chipwatch.deliver")

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0
PAUSE_FIRST_SECONDS = 60.0
PAUSE_MAX_SECONDS = 900.0
DIGEST_WINDOW_SECONDS = 10.0

# A subscriber's private chat is a destination of its own, ``telegram:<chat id>``; whatever is
# shown outside (/healthz, /metrics, ``status``) names them all as one, without a user id.
SUBSCRIBERS = "telegram:subscribers"
_PERSONAL = "telegram:"


def personal_destination(chat_id: int) -> str:
    return f"{_PERSONAL}{chat_id}"


def personal_chat(destination: str) -> int | None:
    """The chat id of a subscriber's destination; None for any other destination."""
    rest = destination.removeprefix(_PERSONAL)
    return int(rest) if rest != destination and rest.isdigit() else None


def public_destination(destination: str) -> str:
    """The name to show: a configured destination's own, or ``telegram:subscribers``."""
    return SUBSCRIBERS if personal_chat(destination) is not None else destination


class Sink(Protocol):
    """Something that can show alerts to people."""

    name: str

    def allowance(self, within: float) -> int:
        """How many messages it may send in the next ``within`` seconds without waiting."""

    async def send(self, alert: Alert, *, reply_to: str | None = None) -> str | None:
        """Deliver one alert; return the destination's message id if it has one. For a
        follow-up, ``reply_to`` is its story's message there (None: there is none)."""

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        """Deliver several alerts in one message; return its id and the alerts it included
        (the first ones given)."""

    async def send_prepared(self, message: Any) -> str | None:
        """Deliver one message rendered ahead for this kind of sink (a part of a scheduled
        digest: ``deliver.digest.render``); return its id if it has one."""

    # Optional: ``async def edit(self, message_id: str, alert: Alert, *, reply_to: str | None)
    # -> None`` re-renders a sent alert whose story grew (``reply_to`` as for ``send``). Sinks
    # without it (Slack webhooks) get no updates.

    async def aclose(self) -> None:
        """Release connections."""


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    messages: int = 0
    edits: int = 0
    retrying: int = 0
    rejected: int = 0
    paused: list[str] = field(default_factory=list)
    # subscribers' chats that can no longer be written to: (destination, reason)
    gone: list[tuple[str, str]] = field(default_factory=list)
    # (destination, result) -> alerts: sent, retry, rejected, unavailable, unreachable (a
    # subscriber's chat gone), edited; followup: the sent alerts that were follow-ups
    results: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, destination: str, result: str, n: int = 1) -> None:
        key = (destination, result)
        self.results[key] = self.results.get(key, 0) + n

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.messages += other.messages
        self.edits += other.edits
        self.retrying += other.retrying
        self.rejected += other.rejected
        self.paused += [p for p in other.paused if p not in self.paused]
        self.gone += other.gone
        for (destination, result), n in other.results.items():
            self.count(destination, result, n)


def log_not_threaded(destination: str, alert: Alert, reply_to: str, reason: str) -> None:
    """A sink could not put a follow-up under its story's message (it names the story)."""
    event(
        log,
        "followup_not_threaded",
        logging.WARNING,
        destination=destination,
        alert=alert.id,
        reply_to=reply_to,
        reason=reason,
    )


def backoff(attempts: int) -> float:
    """Seconds to wait after the n-th failed attempt: 5, 10, 20, … capped at an hour."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


class Deliverer:
    """Drains the outbox into sinks, remembering per destination when it may send again."""

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        *,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        may_send: Callable[[str], bool] | None = None,
    ):
        self.store = store
        self.sinks = list(sinks)
        # Several instances on one database: whether this one sends to a destination (see
        # ``coordinate``); the destinations another instance sends to are left to it.
        self._may_send = may_send
        self.elsewhere: set[str] = set()
        self._now = now
        self._sleep = sleep
        self._hold: dict[str, datetime] = {}  # no sends before this time (rate limit, backoff)
        self._paused: dict[str, float] = {}  # name -> current probe interval, while paused
        self.held_back: set[str] = set()  # destinations an operator paused (/pause)
        # name -> first failure since its last accepted send (paused, or retrying after an
        # error; a rate limit with a stated wait is no failure)
        self._down_since: dict[str, datetime] = {}
        self.stop = asyncio.Event()  # set on SIGTERM: finish the send in flight, start no other

    def is_paused(self, name: str) -> bool:
        return name in self._paused

    def down_since(self, name: str) -> datetime | None:
        """When this destination started failing every send (None: it is working)."""
        return self._down_since.get(name)

    def due_at(self, sink: Sink) -> datetime | None:
        """When this sink next has something to do, or None when nothing is pending."""
        if sink.name in self.held_back or sink.name in self.elsewhere:
            return None
        times = []
        if self.store.count_pending(sink.name):
            times.append(self.store.next_attempt_at(sink.name) or self._now())
        edit_at = self.store.next_edit_at(sink.name)
        if edit_at is not None:
            times.append(edit_at)
        digest_at = self.store.next_digest_at(sink.name)
        if digest_at is not None:
            times.append(digest_at)
        if not times:
            return None
        hold = self._hold.get(sink.name)
        return max(min(times), hold) if hold else min(times)

    async def deliver_due(self) -> DeliveryReport:
        """Send every alert whose time has come, per sink, oldest first."""
        report = DeliveryReport()
        for sink in list(self.sinks):  # a subscriber's sink may leave (RecipientGone)
            if sink.name in self.held_back or self.stop.is_set():
                continue
            hold = self._hold.get(sink.name)
            if hold and hold > self._now():
                continue
            if not self._mine(sink.name):
                continue
            await self._deliver_sink(sink, report)
            if sink in self.sinks and sink.name not in report.paused and not self.stop.is_set():
                await self._digest_sink(sink, report)
            if sink in self.sinks and sink.name not in report.paused and not self.stop.is_set():
                await self._edit_sink(sink, report)
        return report

    def _mine(self, name: str) -> bool:
        if self._may_send is None or self._may_send(name):
            self.elsewhere.discard(name)
            return True
        self.elsewhere.add(name)
        return False

    async def _edit_sink(self, sink: Sink, report: DeliveryReport) -> None:
        """Re-render sent alerts whose story gained sources or became major."""
        edit = getattr(sink, "edit", None)
        for alert, message_id in self.store.edits_due(sink.name, now=self._now()):
            if edit is None or not message_id:
                self.store.edit_done(alert.id, sink.name)  # e.g. a webhook: nothing to edit
                continue
            try:
                await edit(message_id, alert, reply_to=self._reply_to(alert, sink.name))
            except RetryLater as exc:
                wait = exc.retry_after if exc.retry_after is not None else BACKOFF_BASE_SECONDS
                at = self._now() + timedelta(seconds=wait)
                self.store.edit_later(alert.id, sink.name, at=at)
                self._hold[sink.name] = at
                report.count(sink.name, "retry")
                event(
                    log,
                    "edit_retry",
                    logging.WARNING,
                    destination=sink.name,
                    alert=alert.id,
                    wait=f"{wait:g}s",
                    error=str(exc),
                )
                return
            except Rejected as exc:  # e.g. the message was deleted: there is nothing to edit
                self.store.edit_done(alert.id, sink.name)
                event(
                    log,
                    "edit_rejected",
                    logging.WARNING,
                    destination=sink.name,
                    alert=alert.id,
                    error=str(exc),
                )
                report.count(sink.name, "rejected")
                continue
            except (RecipientGone, Unavailable) as exc:
                self._cannot_send(sink, exc, report)
                return
            self.store.edit_done(alert.id, sink.name)
            event(
                log,
                "alert_edited",
                destination=sink.name,
                alert=alert.id,
                sources=len(alert.sources),
                major=alert.major or None,
            )
            report.edits += 1
            report.count(sink.name, "edited")
            if self.stop.is_set():
                return

    def _reply_to(self, alert: Alert, destination: str) -> str | None:
        """A follow-up's story's message at this destination, if it has one."""
        if alert.thread_of is None:
            return None
        return self.store.message_id(alert.thread_of, destination)

    def _stories_first(self, pending: list[Alert], destination: str) -> list[Alert]:
        """Each follow-up after its story: a follow-up can be recorded before it (another feed
        of the same cycle). A follow-up whose story waits here but is not due yet waits too."""
        due = {a.id for a in pending}
        placed: set[int] = set()
        waiting: dict[int, list[Alert]] = {}  # story alert -> follow-ups waiting for it
        ordered: list[Alert] = []

        def place(alert: Alert) -> None:
            ordered.append(alert)
            placed.add(alert.id)
            for followup in waiting.pop(alert.id, []):
                place(followup)

        for alert in pending:
            story = alert.thread_of
            if story is not None and story not in placed:
                if story in due or self.store.delivery_pending(story, destination):
                    waiting.setdefault(story, []).append(alert)
                    continue
            place(alert)
        return ordered

    async def _deliver_sink(self, sink: Sink, report: DeliveryReport) -> None:
        pending = self._stories_first(self.store.pending(sink.name, now=self._now()), sink.name)
        i = 0
        while i < len(pending) and not self.stop.is_set():
            backlog = pending[i:]
            digest = len(backlog) > 1 and len(backlog) > sink.allowance(DIGEST_WINDOW_SECONDS)
            try:
                if digest:
                    message_id, included = await sink.send_digest(backlog)
                    if not included:
                        raise Rejected("digest included no alert")
                else:
                    reply_to = self._reply_to(backlog[0], sink.name)
                    message_id = await sink.send(backlog[0], reply_to=reply_to)
                    included = [backlog[0]]
            except RetryLater as exc:
                self._retry_later(sink, backlog[0], exc)
                report.retrying += 1
                report.count(sink.name, "retry")
                return
            except Rejected as exc:
                self.store.mark_rejected(backlog[0].id, sink.name, error=str(exc))
                event(
                    log,
                    "alert_rejected",
                    logging.ERROR,
                    destination=sink.name,
                    alert=backlog[0].id,
                    error=str(exc),
                )
                report.rejected += 1
                report.count(sink.name, "rejected")
                i += 1
                continue
            except (RecipientGone, Unavailable) as exc:
                self._cannot_send(sink, exc, report)
                return
            now = self._now()
            for alert in included:
                self.store.mark_sent(
                    alert.id, sink.name, message_id=message_id, now=now, via_digest=digest
                )
            self._hold.pop(sink.name, None)
            self._down_since.pop(sink.name, None)
            if self._paused.pop(sink.name, None) is not None:
                event(log, "destination_resumed", logging.WARNING, destination=sink.name)
            followups = [a for a in included if a.thread_of is not None]
            event(
                log,
                "digest_sent" if digest else "alert_sent",
                destination=sink.name,
                alerts=",".join(str(a.id) for a in included),
                message_id=message_id,
                followup_of=",".join(str(a.thread_of) for a in followups) or None,
            )
            report.sent += len(included)
            report.messages += 1
            report.count(sink.name, "sent", len(included))
            if followups:
                report.count(sink.name, "followup", len(followups))
            i += len(included)

    async def _digest_sink(self, sink: Sink, report: DeliveryReport) -> None:
        """Send the destination's scheduled digests that are due, part by part: each part is
        recorded as it goes, so a digest cut short goes on where it stopped."""
        if self._hold.get(sink.name, self._now()) > self._now():
            return  # the alerts just now were told to wait
        for digest in self.store.digests_due(sink.name, now=self._now()):
            for part in range(digest.sent_parts, len(digest.parts)):
                if self.stop.is_set():
                    return

                where = {
                    "destination": sink.name,
                    "period": digest.period_end.isoformat(),
                    "part": f"{part + 1}/{len(digest.parts)}",
                }
                try:
                    message_id = await sink.send_prepared(digest.parts[part])
                except RetryLater as exc:
                    wait, at = self._hold_for(sink, exc, digest.attempts + 1)
                    self.store.digest_retry(digest, error=str(exc), at=at)
                    event(
                        log,
                        "scheduled_digest_retry",
                        logging.WARNING,
                        **where,
                        wait=f"{wait:g}s",
                        error=str(exc),
                    )
                    report.count(sink.name, "retry")
                    return
                except Rejected as exc:
                    self.store.digest_rejected(digest, error=str(exc))
                    event(log, "scheduled_digest_rejected", logging.ERROR, **where, error=str(exc))
                    report.count(sink.name, "rejected")
                    break
                except (RecipientGone, Unavailable) as exc:
                    self._cannot_send(sink, exc, report)
                    return
                self.store.digest_part_sent(digest, part, message_id=message_id, now=self._now())
                self._down_since.pop(sink.name, None)
                report.messages += 1
                event(log, "scheduled_digest_sent", **where, message_id=message_id)
            else:
                report.count(sink.name, "digest")

    def _retry_later(self, sink: Sink, alert: Alert, exc: RetryLater) -> None:
        attempts = self.store.attempts(alert.id, sink.name) + 1
        wait, at = self._hold_for(sink, exc, attempts)
        self.store.mark_retry(alert.id, sink.name, error=str(exc), at=at)
        event(
            log,
            "alert_retry",
            logging.WARNING,
            destination=sink.name,
            alert=alert.id,
            attempt=attempts,
            wait=f"{wait:g}s",
            error=str(exc),
        )

    def _hold_for(self, sink: Sink, exc: RetryLater, attempts: int) -> tuple[float, datetime]:
        """Hold the whole destination as told, or for the n-th attempt's backoff (then it
        counts as failing); returns the wait and when it ends."""
        wait = exc.retry_after if exc.retry_after is not None else backoff(attempts)
        at = self._now() + timedelta(seconds=wait)
        self._hold[sink.name] = at
        if exc.retry_after is None:
            self._down_since.setdefault(sink.name, self._now())
        return wait, at

    def _cannot_send(
        self, sink: Sink, exc: RecipientGone | Unavailable, report: DeliveryReport
    ) -> None:
        """Nothing more goes to this sink for now: a subscriber's chat is gone, or the
        destination is paused until a probe finds it working."""
        if isinstance(exc, RecipientGone):
            self._gone(sink, exc, report)
            return
        self._pause(sink, exc)
        report.paused.append(sink.name)
        report.count(sink.name, "unavailable")

    def _gone(self, sink: Sink, exc: RecipientGone, report: DeliveryReport) -> None:
        """A subscriber's chat cannot be written to: stop sending there (the runtime suspends
        the subscription and rejects what waits, with the reason)."""
        self.sinks.remove(sink)
        report.gone.append((sink.name, str(exc)))
        report.count(sink.name, "unreachable")
        event(log, "recipient_unreachable", logging.WARNING, destination=sink.name, error=str(exc))

    def _pause(self, sink: Sink, exc: Unavailable) -> None:
        interval = self._paused.get(sink.name)
        interval = PAUSE_FIRST_SECONDS if interval is None else min(PAUSE_MAX_SECONDS, interval * 2)
        self._paused[sink.name] = interval
        self._down_since.setdefault(sink.name, self._now())
        self._hold[sink.name] = self._now() + timedelta(seconds=interval)
        event(
            log,
            "destination_paused",
            logging.ERROR,
            destination=sink.name,
            pending=self.store.count_pending(sink.name),
            retry_in=f"{interval:g}s",
            error=str(exc),
        )

    async def drain(self, *, max_wait: float = 120.0) -> DeliveryReport:
        """Deliver until nothing is pending, or every destination with pending alerts is paused
        or next due further than ``max_wait`` seconds away. Used by ``once`` and at shutdown."""
        deadline = self._now() + timedelta(seconds=max_wait)
        total = DeliveryReport()
        while True:
            total.add(await self.deliver_due())
            active = [s for s in self.sinks if not self.is_paused(s.name)]
            due = [d for d in (self.due_at(s) for s in active) if d is not None]
            if not due or min(due) > deadline or self.stop.is_set():
                return total
            await self._sleep(max(0.0, (min(due) - self._now()).total_seconds()))
