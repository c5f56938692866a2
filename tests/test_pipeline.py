"""One poll cycle, in process: the backlog rule, per-feed failures as data, and the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.config import load_config
from alerts.deliver import Deliverer
from alerts.errors import Rejected, RetryLater, Unavailable
from alerts.fetch import Fetcher, FetchResult
from alerts.match import compile_matcher
from alerts.pipeline import Fetched, Known, PollContext, decide, run_cycle
from alerts.store import open_store
from alerts.types import FeedItem, FeedState, ParsedFeed
from tests.support import ago, deliveries, poll_cycle, rss, write_config

H200 = "China approves first imports of Nvidia H200 AI chips"


async def test_first_poll_alerts_only_fresh_dated_items_and_records_the_rest(
    tmp_path, feed_server, serve
):
    items = [
        {"title": H200, "link": "https://n.example/fresh", "guid": "fresh", "date": ago(hours=1)},
        {
            "title": H200 + " (old)",
            "link": "https://n.example/old",
            "guid": "old",
            "date": ago(hours=30),
        },
        {"title": H200 + " (undated)", "link": "https://n.example/undated", "guid": "undated"},
    ]
    url = serve(rss(items))
    config = load_config(write_config(tmp_path, [("Wire", url)]))
    store = open_store(config.database)

    report = await poll_cycle(config, store)

    assert report.new_items == 3
    assert [a.title for a in store.pending("console", now=datetime.now(timezone.utc))] == [H200]
    # On later polls an undated new item is news, so it alerts; an old one still never does.
    items.append(
        {
            "title": "Huawei faces new export controls",
            "link": "https://n.example/u2",
            "guid": "undated-2",
        }
    )
    items.append(
        {
            "title": "SMIC added to entity list",
            "link": "https://n.example/o2",
            "guid": "old-2",
            "date": ago(hours=48),
        }
    )
    feed_server.routes[url.split(str(feed_server.port))[1]].body = rss(items).encode()
    await poll_cycle(config, store)
    titles = [a.title for a in store.pending("console", now=datetime.now(timezone.utc))]
    assert titles == [H200, "Huawei faces new export controls"]
    store.close()


async def test_feed_state_records_failures_and_recovers(tmp_path, feed_server, serve):
    from alerts.loopback import Route

    url = serve(Route(body=b"oops", status=500))
    config = load_config(write_config(tmp_path, [("Flaky", url)]))
    store = open_store(config.database)

    await poll_cycle(config, store)
    await poll_cycle(config, store)
    state = store.feed_state("Flaky")
    assert (state.last_status, state.consecutive_failures, state.last_error) == (
        "error",
        2,
        "http_500",
    )

    feed_server.routes[url.split(str(feed_server.port))[1]] = Route(body=rss([]).encode())
    report = await poll_cycle(config, store)
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

    async def send(self, alert, *, reply_to=None):
        if self.script:
            raise self.script.pop(0)
        self.delivered.append(alert.title)
        return f"m{len(self.delivered)}"

    async def aclose(self):
        pass


async def _one_pending_alert(tmp_path, serve):
    url = serve(
        rss([{"title": H200, "link": "https://n.example/x", "guid": "x", "date": ago(minutes=1)}])
    )
    config = load_config(write_config(tmp_path, [("Wire", url)]))
    store = open_store(config.database)
    await poll_cycle(config, store)
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
    [row] = deliveries(store, 1)
    assert (row["status"], row["attempts"], row["message_id"]) == ("sent", 2, "m1")
    store.close()


async def test_rejected_alert_is_recorded_not_retried_and_unavailable_pauses(tmp_path, serve):
    store = await _one_pending_alert(tmp_path, serve)
    paused = await Deliverer(store, [FlakySink([Unavailable("403 kicked")])]).deliver_due()
    assert paused.paused == ["console"] and store.count_pending() == 1

    report = await Deliverer(store, [FlakySink([Rejected("400 bad entity")])]).deliver_due()
    assert report.rejected == 1
    assert store.count_pending() == 0
    [row] = deliveries(store, 1)
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
    assert slept == pytest.approx(
        [5, 1], abs=0.01
    )  # backoff for the first, Retry-After for the second
    store.close()


# --- the pure decision: what was fetched and known → a plan, no store, no network -----------


def _decide(tmp_path, fetched_status, *, state=None, items=(), parse_error=None, **result):
    config = load_config(write_config(tmp_path, [("Wire", "http://127.0.0.1:1/feed")]))
    feed = config.feeds[0]
    fetched = Fetched(
        feed=feed,
        state=state,
        url=feed.url,
        result=FetchResult(feed=feed.name, url=feed.url, status=fetched_status, **result),
        parsed=ParsedFeed(items=tuple(items)) if fetched_status == "ok" else None,
        parse_error=parse_error,
        known=Known(
            fresh=tuple((i, i.link) for i in items),
            recent_title_keys=(),
            muted={},
            subscriptions=(),
        )
        if fetched_status == "ok"
        else None,
    )
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    matcher = compile_matcher(config.watchlists, config.rules)
    return decide(fetched, config=config, matcher=matcher, now=now), now


def test_decide_plans_alerts_for_fresh_matching_items_and_silence_for_old_ones(tmp_path):
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    fresh = FeedItem(
        feed="Wire",
        guid="a",
        link="https://n.example/a",
        title=H200,
        summary="",
        published=now - timedelta(hours=1),
    )
    old = FeedItem(
        feed="Wire",
        guid="b",
        link="https://n.example/b",
        title=H200 + " (old)",
        summary="",
        published=now - timedelta(hours=30),
    )
    plan, now = _decide(tmp_path, "ok", items=[fresh, old])
    assert plan.status == "ok" and plan.first_poll
    assert [n.item.guid for n in plan.items] == ["a", "b"]
    assert [n.item.guid for n in plan.alerting] == ["a"]
    assert plan.items[0].destinations == ("console",)
    assert plan.next_poll_at == now + timedelta(seconds=plan.interval)


@pytest.mark.parametrize(
    "status, kwargs, expect",
    [
        ("gone", {}, "gone"),
        ("error", {"error": "http_500: boom"}, "error"),
        ("ok", {"parse_error": "parse: not a feed"}, "error"),
        ("not_modified", {}, "not_modified"),
    ],
)
def test_decide_maps_each_fetch_outcome_to_a_plan_without_touching_a_store(
    tmp_path, status, kwargs, expect
):
    plan, now = _decide(tmp_path, status, **kwargs)
    assert plan.status == expect
    if expect == "error":
        assert plan.failures == 1 and plan.failing_since == now and not plan.flagged
        assert plan.next_poll_at > now
    if expect == "gone":
        assert "410 Gone" in plan.error
    assert not (tmp_path / "cw.db").exists()  # decide never opened the database


@pytest.mark.parametrize(
    "status, kwargs", [("not_modified", {}), ("error", {"error": "http_500: boom"})]
)
def test_the_next_poll_counts_from_when_the_request_went_out(tmp_path, status, kwargs):
    """A fetch that waited 25 s for a free slot polled the feed 25 s after its tick: due
    again one interval after that, not 25 s early (its server would see two requests an
    interval less 25 s apart)."""
    waited, _ = _decide(tmp_path, status, queued=25.0, **kwargs)
    prompt, now = _decide(tmp_path, status, **kwargs)
    assert prompt.next_poll_at == now + timedelta(seconds=prompt.interval)
    assert waited.next_poll_at == prompt.next_poll_at + timedelta(seconds=25)
    assert waited.failing_since == prompt.failing_since  # a failure still dates from the tick


def test_decide_backs_off_from_the_known_failure_count_and_flags_long_failures(tmp_path):
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    since = now - timedelta(hours=30)
    state = FeedState(
        name="Wire",
        url="http://127.0.0.1:1/feed",
        effective_url=None,
        etag=None,
        last_modified=None,
        body_hash=None,
        first_polled_at=since,
        last_polled_at=since,
        last_ok_at=None,
        last_new_at=None,
        last_status="error",
        last_error="x",
        consecutive_failures=3,
        failing_since=since,
        next_poll_at=None,
        interval_seconds=None,
        disabled_reason=None,
    )
    first, _ = _decide(tmp_path, "error", error="timeout")
    fourth, _ = _decide(tmp_path, "error", state=state, error="timeout")
    assert fourth.failures == 4 and fourth.failing_since == since and fourth.flagged
    assert fourth.interval > first.interval


async def test_dry_run_decides_the_same_but_writes_nothing(tmp_path, feed_server, serve):
    url = serve(
        rss([{"title": H200, "link": "https://n.example/a", "guid": "a", "date": ago(hours=1)}])
    )
    config = load_config(write_config(tmp_path, [("Wire", url)]))
    store = open_store(config.database)
    matcher = compile_matcher(config.watchlists, config.rules)
    async with Fetcher(config.poll) as fetcher:
        ctx = PollContext(
            config=config,
            store=store,
            matcher=matcher,
            fetcher=fetcher,
            now=datetime.now(timezone.utc),
            dry_run=True,
        )
        dry = await run_cycle(config.feeds, ctx)
        assert [a.title for a in dry.outcomes[0].previews] == [H200]
        assert store.feed_state("Wire") is None and store.count_pending() == 0
        real = await run_cycle(
            config.feeds,
            PollContext(config=config, store=store, matcher=matcher, fetcher=fetcher, now=ctx.now),
        )
    assert real.alerts == dry.alerts == 1
    assert store.count_pending() == 1
    store.close()
