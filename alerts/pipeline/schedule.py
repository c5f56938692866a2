"""When a feed is polled next: after a success, after failures, and whether it is due now."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..config import FeedConfig, PollConfig
from ..types import FeedState
from .model import FeedOutcome

log = logging.getLogger("chipwatch.pipeline")


def next_interval(
    feed: FeedConfig,
    poll: PollConfig,
    *,
    previous: float | None,
    had_new: bool,
    hint: float | None = None,
    pushed: bool = False,
) -> float:
    """Seconds until the next poll after a success. Busy feeds stay at ``interval_seconds``; each
    quiet poll stretches the interval by half, up to ``max_interval_seconds``. ``hint`` (from
    Cache-Control max-age or RSS <ttl>) is a lower bound, capped by the same maximum. A feed
    its WebSub hub ``pushed`` is polled at the maximum: a safety net against a silent hub."""
    low, high = feed.interval_seconds, feed.max_interval_seconds
    if pushed:
        return float(high)
    if not poll.adaptive or had_new or previous is None:
        seconds = float(low)
    else:
        seconds = min(float(high), max(float(low), previous * 1.5))
    if hint:
        seconds = max(seconds, min(hint, float(high)))
    return seconds


def backoff_seconds(
    feed: FeedConfig, poll: PollConfig, *, failures: int, retry_after: float | None = None
) -> float:
    """Seconds until the next try after ``failures`` failures in a row: the interval doubled per
    failure, at least what ``Retry-After`` asked for, capped by ``max_backoff_seconds``."""
    seconds = feed.interval_seconds * 2.0 ** max(0, failures - 1)
    if retry_after:
        seconds = max(seconds, retry_after)
    return min(seconds, float(poll.max_backoff_seconds))


def not_due(
    feed: FeedConfig, state: FeedState | None, *, now: datetime, respect_schedule: bool
) -> FeedOutcome | None:
    """A feed that is not polled now: disabled, or (on schedule) not due yet."""
    if state is not None and state.disabled_reason:
        return FeedOutcome(feed=feed.name, status="disabled", error=state.disabled_reason)
    if (
        respect_schedule
        and state is not None
        and state.next_poll_at is not None
        and state.next_poll_at > due_by(feed, now)
    ):
        return FeedOutcome(feed=feed.name, status="skipped", next_poll_at=state.next_poll_at)
    return None


def due_by(feed: FeedConfig, now: datetime) -> datetime:
    """A feed whose next poll time is before this is due now (see ``jitter_seconds``)."""
    return now + timedelta(seconds=feed.jitter_seconds)
