"""``run``: polls on schedule, never overlaps polls of one feed, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from alerts.config import FeedConfig
from alerts.pipeline import not_due
from alerts.scheduler import Scheduler
from alerts.types import FeedState
from tests.support import ROOT, ago, rss, write_config


async def test_scheduler_never_runs_two_polls_of_one_feed_at_once():
    running, peak, polls, delivers = 0, 0, [], []

    async def poll(feed):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        polls.append(feed.name)
        await asyncio.sleep(1.5)  # longer than the interval: the next tick must be skipped
        running -= 1

    async def deliver():
        delivers.append(1)

    scheduler = Scheduler(poll=poll, deliver=deliver, deliver_every=0.5, first_run_spread=0)
    scheduler.start([FeedConfig(name="slow", url="http://127.0.0.1:9/", interval_seconds=1)])
    deadline = time.monotonic() + 30
    while (len(polls) < 2 or len(delivers) < 3) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await scheduler.stop()

    assert peak == 1
    assert 2 <= len(polls) <= 3
    assert running == 0, "stop() waits for the in-flight poll"
    assert len(delivers) >= 3


def test_a_tick_that_fires_less_late_than_the_last_still_finds_its_feed_due():
    """Ticks fire up to ``jitter_seconds`` late. The last poll, 25 s late, set the next poll
    time to one interval after it; this tick fires only 3 s late. Skipping it would stretch the
    interval to two."""
    feed = FeedConfig(name="a", url="http://127.0.0.1:9/a", interval_seconds=300)
    assert feed.jitter_seconds == 30
    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    last_poll = t0 + timedelta(seconds=25)
    state = _state(feed, next_poll_at=last_poll + timedelta(seconds=300))
    tick = t0 + timedelta(seconds=303)
    assert not_due(feed, state, now=tick, respect_schedule=True) is None
    early = not_due(feed, state, now=t0 + timedelta(seconds=150), respect_schedule=True)
    assert early is not None and early.status == "skipped"


def _state(feed: FeedConfig, **fields) -> FeedState:
    values = dict.fromkeys(FeedState.__slots__)
    values.update(name=feed.name, url=feed.url, consecutive_failures=0, **fields)
    return FeedState(**values)


async def test_scheduler_reschedules_added_and_removed_feeds():
    seen = []

    async def poll(feed):
        seen.append(feed.name)

    async def deliver():
        pass

    scheduler = Scheduler(poll=poll, deliver=deliver, first_run_spread=0)
    a = FeedConfig(name="a", url="http://127.0.0.1:9/a", interval_seconds=60)
    b = FeedConfig(name="b", url="http://127.0.0.1:9/b", interval_seconds=60)
    scheduler.start([a])
    await _until(lambda: seen == ["a"])
    scheduler.set_feeds([b])
    await _until(lambda: seen == ["a", "b"])
    await scheduler.stop()
    assert seen == ["a", "b"]


async def _until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _read_until(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    out, deadline = "", time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
    return out


@pytest.mark.system
def test_run_polls_delivers_and_exits_0_on_sigterm(tmp_path, serve):
    title = "Nvidia H20 sales to China need new export controls licence"
    url = serve(
        rss(
            [
                {
                    "title": title,
                    "link": "https://n.example/run",
                    "guid": "run-1",
                    "date": ago(minutes=2),
                }
            ]
        )
    )
    config = write_config(tmp_path, [("Wire", url)])
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out = _read_until(proc, title, timeout=30)
        assert title in out, proc.stderr.read() if proc.poll() is not None else out
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert code == 0, err
    assert "shutdown_requested" in err and "bot_stopped" in err
