"""``run``: polls on schedule, never overlaps polls of one feed, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from alerts.app import run_forever
from alerts.config import FeedConfig, load_config
from alerts.deliver import Deliverer
from alerts.deliver.telegram import TelegramSink
from alerts.loopback import Route
from alerts.pipeline import not_due
from alerts.scheduler import Scheduler
from alerts.store import open_store
from alerts.types import FeedState
from tests.fakes.telegram_api import FakeTelegram
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    ROOT,
    ago,
    alerting_item,
    deliveries,
    record,
    rss,
    write_config,
)


@pytest.mark.slow
async def test_scheduler_never_runs_two_polls_of_one_feed_at_once():
    running, peak, polls, delivers = 0, 0, [], []

    async def poll(feed):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        polls.append(feed.name)
        try:
            await asyncio.sleep(1.5)  # longer than the interval: the next tick must be skipped
        finally:
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
    assert running == 0, "stop() ends the in-flight poll before it returns"
    assert len(delivers) >= 3


async def test_item8_a_job_still_running_is_one_named_event_not_a_warning_a_tick(caplog):
    """A send that hangs used to log APScheduler's unnamed "skipped: maximum number of running
    instances" WARNING every 2 s. Now the skips are counted and logged as one named event at
    most once a minute per job."""
    release = asyncio.Event()

    async def deliver():
        await release.wait()  # a send that hangs

    async def poll(feed):
        pass

    scheduler = Scheduler(poll=poll, deliver=deliver, deliver_every=0.05, first_run_spread=0)
    with caplog.at_level(logging.INFO):
        scheduler.start([])
        deadline = time.monotonic() + 30
        while scheduler.skipped.get("deliver", 0) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        release.set()
        await scheduler.stop()
    assert scheduler.skipped["deliver"] >= 5
    assert "maximum number of running instances" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if "job_still_running" in r.getMessage()]
    assert lines == [
        'job_still_running job=deliver skipped=1 note="its ticks are skipped until it ends"'
    ]


async def test_job_still_running_is_logged_again_after_a_minute_with_the_skips_since(caplog):
    """At most one line a minute per job; the next one counts the ticks skipped since the last
    (on the scheduler's injected clock, which moves only when the test moves it)."""
    release = asyncio.Event()
    now = [1000.0]

    async def deliver():
        await release.wait()  # a send that hangs

    async def poll(feed):
        pass

    async def skips(at_least):
        deadline = time.monotonic() + 30
        while scheduler.skipped.get("deliver", 0) < at_least and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return scheduler.skipped["deliver"]

    def lines():
        return [r.getMessage() for r in caplog.records if "job_still_running" in r.getMessage()]

    scheduler = Scheduler(
        poll=poll, deliver=deliver, deliver_every=0.05, first_run_spread=0, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO):
        scheduler.start([])
        await skips(3)
        now[0] += 59
        await skips(scheduler.skipped["deliver"] + 3)
        assert len(lines()) == 1, "none before the minute"
        # No tick comes between these two lines: the next skip is the first after the minute.
        seen = scheduler.skipped["deliver"]
        now[0] += 2  # 61 s after the first line
        await skips(seen + 1)
        release.set()
        await scheduler.stop()
    note = 'note="its ticks are skipped until it ends"'
    assert lines() == [
        f"job_still_running job=deliver skipped=1 {note}",
        f"job_still_running job=deliver skipped={seen} {note}",
    ]
    assert seen >= 6


async def test_item8_stop_cancels_polls_in_flight_and_cuts_a_hung_delivery_short(caplog):
    """SIGTERM used to wait for fetches in flight (up to ``timeout_seconds`` each) and for a
    send, which can exceed Docker's 10-second stop timeout. Now polls are cancelled at once
    (they run again at the next start) and a delivery gets ``grace_seconds``."""
    started, cancelled = asyncio.Event(), []
    hang = asyncio.Event()  # never set: a fetch and a send that do not answer

    async def poll(feed):
        started.set()
        try:
            await hang.wait()
        except asyncio.CancelledError:
            cancelled.append(feed.name)
            raise

    async def deliver():
        try:
            await hang.wait()
        except asyncio.CancelledError:
            cancelled.append("deliver")
            raise

    scheduler = Scheduler(poll=poll, deliver=deliver, deliver_every=60, first_run_spread=0)
    with caplog.at_level(logging.INFO):
        scheduler.start([FeedConfig(name="slow", url="http://127.0.0.1:9/", interval_seconds=60)])
        await asyncio.wait_for(started.wait(), 30)
        await scheduler.stop(grace_seconds=0.2)
    assert sorted(cancelled) == ["deliver", "slow"]
    assert "poll_cancelled job=feed:slow" in caplog.text
    assert "job_cut_short job=deliver" in caplog.text
    assert "scheduler_stopped polls_cancelled=1 cut_short=1" in caplog.text
    assert "raised an exception" not in caplog.text


def _channel(telegram, store):
    """A deliverer of ``store``'s outbox to the fake's channel, and its sink."""
    sink = TelegramSink(token=telegram.token, chat_id=CHANNEL, base_url=telegram.base_url)
    return Deliverer(store, [sink]), sink


async def test_a_delivery_cut_short_at_stop_stays_pending_and_goes_out_once_later(tmp_path, caplog):
    """A send whose answer never comes (Telegram took the message, the reply hangs) is cut
    short by stop(): its alert stays pending, and the next start sends it once more (the one
    repeat the scheduler's docstring allows), then never again."""
    server_clock = [0.0]  # the fake's flood control; it moves when the bot restarts
    chats = {CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "t"}}
    title = "US widens export controls on Nvidia H20"
    with FakeTelegram(chats=chats, clock=lambda: server_clock[0]) as telegram:
        store = open_store(tmp_path / "cw.db")
        item = alerting_item("c1", title, feed="Wire", destinations=("telegram",))
        [alert_id] = record(store, "Wire", item)
        deliverer, sink = _channel(telegram, store)
        held = telegram.hold_next("sendMessage")
        scheduler = Scheduler(
            poll=lambda feed: asyncio.sleep(0),
            deliver=deliverer.deliver_due,
            deliver_every=60,
            first_run_spread=0,
        )
        with caplog.at_level(logging.INFO):
            scheduler.start([])
            assert await asyncio.to_thread(held.wait, 30), "the send is in flight"
            await scheduler.stop(grace_seconds=0.2)
        telegram.release_held()
        await sink.aclose()
        assert "job_cut_short job=deliver" in caplog.text
        [row] = deliveries(store, alert_id)
        assert row["status"] == "pending" and row["message_id"] is None
        store.close()

        server_clock[0] += 5  # a restart takes a few seconds
        store = open_store(tmp_path / "cw.db")
        deliverer, sink = _channel(telegram, store)
        try:
            assert (await deliverer.deliver_due()).sent == 1
            assert (await deliverer.deliver_due()).sent == 0, "sent once"
        finally:
            await sink.aclose()
        [row] = deliveries(store, alert_id)
        assert row["status"] == "sent"
        store.close()
    assert [m["shown_text"].split("\n")[0] for m in telegram.sent] == [title, title]


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


async def test_item8_run_stops_with_a_fetch_in_flight_and_records_nothing(
    tmp_path, serve, feed_server, caplog
):
    """``run`` told to stop while a server is still answering (``timeout_seconds`` is 60):
    the fetch is cancelled, nothing about the feed is recorded, and the next start polls it."""
    answer = threading.Event()

    def slow() -> bytes:
        answer.wait(60)
        return rss([]).encode()

    url = serve(Route(body=slow))
    config = load_config(write_config(tmp_path, [("Wire", url)], timeout=60))
    stop = asyncio.Event()
    try:
        with caplog.at_level(logging.INFO):
            task = asyncio.create_task(run_forever(config, stop=stop, first_run_spread=0))
            deadline = time.monotonic() + 30
            while not any(url.endswith(path) for path, _ in feed_server.requests):
                assert time.monotonic() < deadline and not task.done(), "the fetch"
                await asyncio.sleep(0.05)
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
        assert not answer.is_set(), "it stopped while the server still had not answered"
    finally:
        answer.set()
    assert "poll_cancelled job=feed:Wire" in caplog.text
    assert "scheduler_stopped polls_cancelled=1" in caplog.text
    store = open_store(config.database)
    try:
        assert store.feed_state("Wire") is None, "nothing recorded: polled afresh next start"
    finally:
        store.close()
