"""One poll cycle, in process: the backlog rule, per-feed failures as data, and the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.config import load_config
from alerts.deliver import Deliverer
from alerts.errors import Rejected, RetryLater, Unavailable
from alerts.fetch import Fetcher
from alerts.match import compile_matcher
from alerts.pipeline import run_cycle
from alerts.store import open_store
from tests.conftest import ago, rss, write_config

H200 = "China approves first imports of Nvidia H200 AI chips"


async def _cycle(config, store, now=None):
    matcher = compile_matcher(config.watchlists, config.rules)
    async with Fetcher(config.poll) as fetcher:
        return await run_cycle(config.feeds, config=config, store=store, matcher=matcher,
                               fetcher=fetcher, now=now or datetime.now(timezone.utc))


async def test_first_poll_alerts_only_fresh_dated_items_and_records_the_rest(tmp_path, feed_server, serve):
    items = [
        {"title": H200, "link": "https://n.example/fresh", "guid": "fresh", "date": ago(hours=1)},
        {"title": H200 + " (old)", "link": "https://n.example/old", "guid": "old",
         "date": ago(hours=30)},
        {"title": H200 + " (undated)", "link": "https://n.example/undated", "guid": "undated"},
    ]
    url = serve(rss(items))
    config = load_config(write_config(tmp_path, [("Wire", url)]))
    store = open_store(config.database)

    report = await _cycle(config, store)

    assert report.new_items == 3
    assert [a.title for a in store.pending("console", now=datetime.now(timezone.utc))] == [H200]
    # On later polls an undated new item is news, so it alerts; an old one still never does.
    items.append({"title": "Huawei faces new export controls", "link": "https://n.example/u2",
                  "guid": "undated-2"})
    items.append({"title": "SMIC added to entity list", "link": "https://n.example/o2",
                  "guid": "old-2", "date": ago(hours=48)})
    feed_server.routes[url.split(str(feed_server.port))[1]].body = rss(items).encode()
    await _cycle(config, store)
    titles = [a.title for a in store.pending("console", now=datetime.now(timezone.utc))]
    assert titles == [H200, "Huawei faces new export controls"]
    store.close()


async def test_feed_state_records_failures_and_recovers(tmp_path, feed_server, serve):
    from alerts.loopback import Route

    url = serve(Route(body=b"oops", status=500))
    config = load_config(write_config(tmp_path, [("Flaky", url)]))
    store = open_store(config.database)

    await _cycle(config, store)
    await _cycle(config, store)
    state = store.feed_state("Flaky")
    assert (state.last_status, state.consecutive_failures, state.last_error) == ("error", 2, "http_500")

    feed_server.routes[url.split(str(feed_server.port))[1]] = Route(body=rss([]).encode())
    report = await _cycle(config, store)
    state = store.feed_state("Flaky")
    assert report.failed == ()
    assert (state.last_status, state.consecutive_failures, state.last_error) == ("ok", 0, None)
    store.close()


class FlakySink:
    """A hand-written sink that fails in scripted ways before it accepts."""

    def __init__(self, script, allowance=1000):
        self.name = "console"
        self.script = list(script)
        self.delivered = []
        self._allowance = allowance

    def allowance(self, within):
        return self._allowance

    async def send_digest(self, alerts):
        if self.script:
            raise self.script.pop(0)
        self.delivered.append([a.title for a in alerts[:2]])
        return "digest", alerts[:2]

    async def send(self, alert):
        if self.script:
            raise self.script.pop(0)
        self.delivered.append(alert.title)
        return f"m{len(self.delivered)}"

    async def aclose(self):
        pass


async def _one_pending_alert(tmp_path, serve):
    url = serve(rss([{"title": H200, "link": "https://n.example/x", "guid": "x",
                      "date": ago(minutes=1)}]))
    config = load_config(write_config(tmp_path, [("Wire", url)]))
    store = open_store(config.database)
    await _cycle(config, store)
    return store


async def test_retry_later_keeps_alert_pending_until_its_time(tmp_path, serve):
    store = await _one_pending_alert(tmp_path, serve)
    sink = FlakySink([RetryLater("429", retry_after=30)])
    now = datetime.now(timezone.utc)

    clock = [now]
    deliverer = Deliverer(store, [sink], now=lambda: clock[0])
    report = await deliverer.deliver_due()
    assert (report.sent, report.retrying) == (0, 1)
    assert store.count_pending() == 1
    assert store.pending("console", now=now + timedelta(seconds=29)) == []
    clock[0] = now + timedelta(seconds=29)
    assert (await deliverer.deliver_due()).sent == 0, "the destination holds as it was told"

    clock[0] = now + timedelta(seconds=31)
    report = await deliverer.deliver_due()
    assert report.sent == 1 and sink.delivered == [H200]
    assert store.count_pending() == 0
    [row] = store.deliveries(1)
    assert (row["status"], row["attempts"], row["message_id"]) == ("sent", 2, "m1")
    store.close()


async def test_rejected_alert_is_recorded_not_retried_and_unavailable_pauses(tmp_path, serve):
    store = await _one_pending_alert(tmp_path, serve)
    paused = await Deliverer(store, [FlakySink([Unavailable("403 kicked")])]).deliver_due()
    assert paused.paused == ["console"] and store.count_pending() == 1

    report = await Deliverer(store, [FlakySink([Rejected("400 bad entity")])]).deliver_due()
    assert report.rejected == 1
    assert store.count_pending() == 0
    [row] = store.deliveries(1)
    assert (row["status"], row["last_error"]) == ("rejected", "400 bad entity")
    store.close()


async def test_drain_waits_for_short_retries(tmp_path, serve):
    store = await _one_pending_alert(tmp_path, serve)
    sink = FlakySink([RetryLater("network down"), RetryLater("still down", retry_after=1)])
    clock = [datetime.now(timezone.utc)]
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    deliverer = Deliverer(store, [sink], now=lambda: clock[0], sleep=fake_sleep)
    report = await deliverer.drain(max_wait=60)
    assert report.sent == 1 and sink.delivered == [H200]
    assert slept == pytest.approx([5, 1], abs=0.01)  # backoff for the first, Retry-After for the second
    store.close()
