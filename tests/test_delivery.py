"""Telegram and Slack delivery through the real clients against strict loopback fakes."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from alerts.deliver import Deliverer
from alerts.deliver.console import ConsoleSink
from alerts.deliver.slack import SlackAppSink, SlackSink
from alerts.deliver.telegram import TelegramSink
from alerts.store import open_store
from alerts.types import FeedItem, Match, MatchResult, NewItem
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_webhook import FakeSlack, unescaped_specials
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    HOSTILE,
    ROOT,
    Clock,
    ago,
    alerting_item,
    cli,
    deliveries,
    record,
    rss,
    run_bot,
    write_config,
)


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def _queue(store, titles, *, destinations=("telegram",), feed="Wire"):
    now = datetime.now(timezone.utc)
    result = MatchResult(
        matches=(
            Match("companies", "Nvidia", "Nvidia", "exact", 100.0),
            Match("export_terms", "export controls", "export controls", "exact", 100.0),
        ),
        rules=("chip-trade",),
    )
    new = [
        NewItem(
            item=FeedItem(
                feed=feed,
                guid=f"g{i}",
                link=f"https://n.example/{i}?a=1&b=2",
                title=t,
                summary=f"Summary of {t}",
                published=now,
            ),
            canonical_link=f"https://n.example/{i}",
            result=result,
            destinations=tuple(destinations),
        )
        for i, t in enumerate(titles)
    ]
    return store.record_poll(
        feed, "http://127.0.0.1:9/f", new, etag=None, last_modified=None, now=now
    )


def _sink(fake, **kw):
    return TelegramSink(token=fake.token, chat_id=CHANNEL, base_url=fake.base_url, **kw)


# For the tests on the deliverer's own clock (``Clock``): the sink's real-time pace of one
# message a second per chat, tested above, would only make them wait.
UNPACED = (1_000, 1.0)


def _429s(fake):
    return [c for c in fake.calls if c["status"] == 429 and not c.get("injected")]


@pytest.mark.slow
async def test_burst_of_60_alerts_arrives_complete_without_429_using_digests(database, telegram):
    store = open_store(database)
    titles = [f"Nvidia export controls story {i} <{i}> & more" for i in range(60)]
    _queue(store, titles)
    sink = _sink(telegram)
    report = await Deliverer(store, [sink]).drain(max_wait=120)
    await sink.aclose()

    assert report.sent == 60 and store.count_pending() == 0
    assert _429s(telegram) == [], "pacing keeps us under Telegram's limits"
    shown = "\n".join(m["shown_text"] for m in telegram.sent)
    assert all(t in shown for t in titles), "no alert lost"
    assert len(telegram.sent) < 10, "the backlog went out as digests"
    assert any("alerts (digest)" in m["shown_text"] for m in telegram.sent)
    ids = {r[0] for r in store.db.execute("SELECT message_id FROM deliveries")}
    assert ids == {str(m["message_id"]) for m in telegram.sent}
    store.close()


@pytest.mark.slow
async def test_a_few_alerts_go_out_one_message_each_paced_per_chat(database, telegram):
    store = open_store(database)
    _queue(
        store, ["Nvidia export controls A", "Nvidia export controls B", "Nvidia export controls C"]
    )
    sink = _sink(telegram)
    await Deliverer(store, [sink]).drain()
    await sink.aclose()
    assert [m["shown_text"].split("\n")[0] for m in telegram.sent] == [
        "Nvidia export controls A",
        "Nvidia export controls B",
        "Nvidia export controls C",
    ]
    gaps = [
        b["timestamp"] - a["timestamp"]
        for a, b in zip(telegram.sent, telegram.sent[1:], strict=False)
    ]
    assert all(g >= 1.0 for g in gaps)
    assert all(m["preview_disabled"] for m in telegram.sent)
    assert _429s(telegram) == []
    store.close()


async def test_injected_429_waits_as_told_and_500_backs_off(database, telegram):
    store = open_store(database)
    _queue(store, ["Nvidia export controls one"])
    clock = Clock()
    telegram.fail_next(1, 429, retry_after=7, method="sendMessage")
    telegram.fail_next(2, 500, method="sendMessage")
    sink = _sink(telegram, per_chat=UNPACED)
    report = await Deliverer(store, [sink], now=clock, sleep=clock.sleep).drain(max_wait=600)
    await sink.aclose()
    assert report.sent == 1 and len(telegram.sent) == 1
    assert clock.slept[0] == pytest.approx(7, abs=0.01), "429: wait exactly retry_after"
    assert clock.slept[1:] == pytest.approx([10, 20], abs=0.01), "5xx: exponential backoff"
    [row] = deliveries(store, 1)
    assert row["attempts"] == 4 and row["status"] == "sent"
    store.close()


async def test_403_pauses_destination_keeps_alerts_then_resumes(database, telegram, caplog):
    store = open_store(database)
    _queue(store, ["Nvidia export controls kicked"])
    clock = Clock()
    sink = _sink(telegram, per_chat=UNPACED)
    deliverer = Deliverer(store, [sink], now=clock, sleep=clock.sleep)
    telegram.kick(CHANNEL_ID)
    with caplog.at_level(logging.WARNING, logger="chipwatch"):
        report = await deliverer.drain(max_wait=30)
        assert report.paused == ["telegram"] and store.count_pending() == 1
        assert "destination_paused destination=telegram" in caplog.text
        assert "kicked" in caplog.text

        telegram.unkick(CHANNEL_ID)
        assert (await deliverer.deliver_due()).sent == 0, "still waiting for the probe time"
        clock.now += timedelta(seconds=61)
        report = await deliverer.deliver_due()
    await sink.aclose()
    assert report.sent == 1 and store.count_pending() == 0
    assert "destination_resumed destination=telegram" in caplog.text
    store.close()


@pytest.mark.slow
async def test_400_is_recorded_with_reason_and_not_retried(database, telegram):
    store = open_store(database)
    _queue(store, ["Nvidia export controls bad", "Nvidia export controls good"])
    telegram.fail_next(
        1, 400, description="Bad Request: can't parse entities: test", method="sendMessage"
    )
    sink = _sink(telegram)
    report = await Deliverer(store, [sink]).drain()
    await sink.aclose()
    assert (report.rejected, report.sent) == (1, 1)
    rows = {r["alert_id"]: r for r in store.db.query("SELECT * FROM deliveries")}
    assert rows[1]["status"] == "rejected" and "parse entities" in rows[1]["last_error"]
    assert rows[2]["status"] == "sent"
    store.close()


async def test_hostile_headlines_are_accepted_by_a_strict_server(database, telegram):
    store = open_store(database)
    titles = [h[1] for h in HOSTILE] + ["Nvidia H20 export <b>licence</b> row " + "长" * 5000]
    _queue(store, titles)
    sink = _sink(telegram, per_chat=(1, 0.01), overall=(30, 0.01), per_group_minute=(100, 1))
    telegram.per_chat_interval, telegram.per_minute_limit = 0, None
    report = await Deliverer(store, [sink]).drain()
    await sink.aclose()
    assert report.rejected == 0 and report.sent == len(titles)
    assert len(telegram.sent) == len(titles)
    for title, message in zip(titles, telegram.sent, strict=True):
        assert message["shown_text"].startswith(title[:500])
    store.close()


@pytest.mark.slow
async def test_slack_webhook_gets_escaped_blocks_and_honours_retry_after(database, slack):
    store = open_store(database)
    _queue(
        store,
        ["Nvidia <H20> & AT&T export controls", "Nvidia export controls two"],
        destinations=("slack",),
    )
    clock = Clock()
    slack.fail_next(1, 429, retry_after=3)
    sink = SlackSink(webhook_url=slack.url)
    report = await Deliverer(store, [sink], now=clock, sleep=clock.sleep).drain()
    await sink.aclose()
    assert report.sent == 2 and len(slack.received) == 2
    assert clock.slept[0] == pytest.approx(3, abs=0.01)
    text = slack.received[0]["blocks"][0]["text"]["text"]
    assert "Nvidia &lt;H20&gt; &amp; AT&amp;T" in text
    assert unescaped_specials(text) == []
    store.close()


async def test_slack_bad_hook_pauses_and_server_errors_retry(database, slack):
    store = open_store(database)
    _queue(store, ["Nvidia export controls"], destinations=("slack",))
    sink = SlackSink(webhook_url=slack.url.replace("XXXX", "YYYY"))  # a hook that does not exist
    report = await Deliverer(store, [sink]).deliver_due()
    await sink.aclose()
    assert report.paused == ["slack"] and store.count_pending() == 1
    store.close()


def _env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "CHIPWATCH_DATABASE")
    }
    env.update(extra)
    return env


def _one_alert_feed(serve, guid, title="Nvidia H20 export controls tightened"):
    """The URL of a feed with one alerting item, three minutes old."""
    return serve(
        rss(
            [
                {
                    "title": title,
                    "guid": guid,
                    "link": f"https://n.example/{guid}",
                    "date": ago(minutes=3),
                }
            ]
        )
    )


def _config(tmp_path, feed_url, destination):
    """A config polling one feed (Wire) into one destination (YAML under destinations:)."""
    return write_config(tmp_path, [("Wire", feed_url)], extra=f"destinations:\n{destination}")


def _once(config, **secrets):
    """``bot.py -v once`` (in this process) with only these secrets in its environment; checks
    none is shown."""
    result = cli("-v", "once", "--config", str(config), env=_env(**secrets))
    for secret in secrets.values():
        shown = result.stderr + result.stdout
        assert secret not in shown and secret[-16:] not in shown, "a secret was shown"
    return result


def _telegram_config(tmp_path, feed_url, fake):
    chat = f'  telegram:\n    chat_id: "{CHANNEL}"\n    api_base_url: {fake.base_url}\n'
    return _config(tmp_path, feed_url, chat)


def test_once_sends_to_telegram_and_never_logs_the_token(tmp_path, serve, telegram):
    url = _one_alert_feed(serve, "t1")
    config = _telegram_config(tmp_path, url, telegram)
    result = _once(config, TELEGRAM_BOT_TOKEN=telegram.token)
    assert result.returncode == 0, result.stderr
    assert "sent=1 pending=0" in result.stdout
    assert len(telegram.sent) == 1
    assert "HTTP Request: POST" in result.stderr, "debug logging covered httpx's request lines"
    assert telegram.token.split(":")[1] not in result.stderr + result.stdout
    with sqlite3.connect(tmp_path / "cw.db") as db:
        assert db.execute("SELECT message_id FROM deliveries").fetchone()[0] == str(
            telegram.sent[0]["message_id"]
        )


@pytest.mark.slow
def test_once_threads_a_follow_up_quietly_under_its_story_end_to_end(tmp_path, serve, telegram):
    """From two feeds to the channel: the clusterer makes the second report a follow-up, the
    pipeline records it in the story's thread, and the deliverer posts it as a quiet reply to
    the story's message."""
    story = _one_alert_feed(serve, "s1", title="US tightens export controls on Nvidia H20 chips")
    follow = serve(
        rss(
            [
                {
                    "title": "Nvidia halts H20 shipments to China after new export controls",
                    "guid": "f1",
                    "link": "https://m.example/f1",
                    "date": ago(minutes=2),
                }
            ]
        )
    )
    chat = f'  telegram:\n    chat_id: "{CHANNEL}"\n    api_base_url: {telegram.base_url}\n'
    config = write_config(
        tmp_path, [("Wire", story), ("Bloomberg", follow)], extra=f"destinations:\n{chat}"
    )
    result = _once(config, TELEGRAM_BOT_TOKEN=telegram.token)
    assert result.returncode == 0, result.stderr
    assert "sent=2 pending=0" in result.stdout
    first, second = telegram.sent
    assert "US tightens export controls on Nvidia H20 chips" in first["text"]
    assert not first["disable_notification"] and first["reply_to_message_id"] is None
    assert "Nvidia halts H20 shipments" in second["text"]
    assert second["disable_notification"], "a follow-up does not notify"
    assert second["reply_to_message_id"] == first["message_id"], "it replies to the story"


def test_revoked_token_keeps_alert_pending_and_is_not_logged(tmp_path, serve, telegram):
    url = _one_alert_feed(serve, "r1", title="Nvidia H20 export controls")
    config = _telegram_config(tmp_path, url, telegram)
    revoked = "987654321:AArevokedrevokedrevokedrevokedrevoked"
    result = _once(config, TELEGRAM_BOT_TOKEN=revoked)
    assert result.returncode == 0
    assert "pending=1" in result.stdout and "destination telegram is unavailable" in result.stdout
    assert "destination_paused destination=telegram" in result.stderr
    assert "revokedrevoked" not in result.stderr + result.stdout


def test_missing_token_is_a_config_error(tmp_path, serve, telegram):
    config = _telegram_config(tmp_path, serve(rss([])), telegram)
    result = cli("once", "--config", str(config), env=_env())
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr


def test_slack_webhook_url_never_logged(tmp_path, serve, slack):
    url = _one_alert_feed(serve, "s1", title="Nvidia H20 export controls")
    config = _config(tmp_path, url, f"  slack: {slack.destination}\n")
    result = _once(config, SLACK_WEBHOOK_URL=slack.url)
    assert result.returncode == 0, result.stderr
    assert len(slack.received) == 1
    assert slack.path not in result.stderr and "XXXXXXXXXXXX" not in result.stderr


def _slack_app_config(tmp_path, feed_url, fake):
    app = f"  slack:\n    channel: '#chip-news'\n    api_base_url: {fake.base_url}\n"
    return _config(tmp_path, feed_url, app)


def test_once_posts_to_a_slack_app_and_never_logs_the_token(tmp_path, serve, slack_api):
    url = _one_alert_feed(serve, "a1")
    config = _slack_app_config(tmp_path, url, slack_api)
    result = _once(config, SLACK_BOT_TOKEN=slack_api.token)
    assert result.returncode == 0, result.stderr
    assert "sent=1 pending=0" in result.stdout
    [post] = slack_api.posts
    assert post["channel"] == "C0CHIPNEWS1" and post["text"].startswith("Nvidia H20 export")
    assert "Sending a request - url: POST" in result.stderr, "slack_sdk's debug lines were on"
    with sqlite3.connect(tmp_path / "cw.db") as db:
        stored = db.execute("SELECT message_id FROM deliveries").fetchone()[0]
    assert stored == f"C0CHIPNEWS1:{post['ts']}"


def test_a_slack_app_without_its_token_is_a_config_error(tmp_path, serve, slack_api):
    config = _slack_app_config(tmp_path, serve(rss([])), slack_api)
    result = cli("once", "--config", str(config), env=_env(SLACK_WEBHOOK_URL="x"))
    assert result.returncode == 2
    assert "destinations.slack.channel: " in result.stderr
    assert "SLACK_BOT_TOKEN is not set" in result.stderr


# Different events: story clustering must keep them apart, one message each.
DISTINCT = [
    "Huawei added to entity list over chip sales",
    "SMIC faces new export controls on tools",
    "China grants Nvidia H20 imports",
    "Blackwell servers need licences under export controls",
    "Huawei imports of HBM halted",
    "SMIC shares fall after entity list move",
    "Nvidia lobbies against export controls",
    "Blackwell smuggling case tests entity list",
]


@pytest.mark.system
def test_kill_9_mid_delivery_then_restart_delivers_everything_at_most_one_repeat(
    tmp_path, serve, telegram
):
    titles = DISTINCT
    url = serve(
        rss(
            [
                {
                    "title": t,
                    "guid": f"k{i}",
                    "link": f"https://n.example/k{i}",
                    "date": ago(minutes=5),
                }
                for i, t in enumerate(titles)
            ]
        )
    )
    config = _telegram_config(tmp_path, url, telegram)
    env = _env(TELEGRAM_BOT_TOKEN=telegram.token)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "once", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(telegram.sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert 3 <= len(telegram.sent) < len(titles), "killed in the middle of the run"

    again = run_bot("once", "--config", str(config), env=env)
    assert again.returncode == 0, again.stderr
    first_lines = [m["shown_text"].split("\n")[0] for m in telegram.sent]
    assert set(first_lines) == set(titles), "every alert arrived"
    repeats = len(first_lines) - len(set(first_lines))
    assert repeats <= 1, "at most the single in-flight message repeats"
    assert "pending=0" in again.stdout


@pytest.mark.system
def test_sigterm_during_once_finishes_the_send_in_flight_and_keeps_the_rest(
    tmp_path, serve, telegram
):
    titles = DISTINCT[:6]
    url = serve(
        rss(
            [
                {
                    "title": t,
                    "guid": f"s{i}",
                    "link": f"https://n.example/s{i}",
                    "date": ago(minutes=5),
                }
                for i, t in enumerate(titles)
            ]
        )
    )
    config = _telegram_config(tmp_path, url, telegram)
    env = _env(TELEGRAM_BOT_TOKEN=telegram.token)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "once", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(telegram.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    delivered = len(telegram.sent)
    assert 2 <= delivered < len(titles)
    with sqlite3.connect(tmp_path / "cw.db") as db:
        sent = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
        pending = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[
            0
        ]
    assert sent == delivered, "every message Telegram accepted is recorded as sent"
    assert pending == len(titles) - delivered
    assert f"pending={pending}" in out


# --- story threads: quiet follow-ups ---------------------------------------------------------

STORY = "US curbs Nvidia H20 exports"
FOLLOWUP = "Nvidia halts H20 output after Beijing warning"


def _story(store, *, destinations=("telegram",), story_id=1):
    [story] = record(
        store,
        "Wire",
        alerting_item("s", STORY, feed="Wire", destinations=destinations, story_id=story_id),
    )
    return story


def _followup(store, *, destinations=("telegram",), thread=1, story_id=2, title=FOLLOWUP):
    summary = "Nvidia told suppliers to suspend work on the H20, two people said."
    [followup] = record(
        store,
        "Bloomberg",
        alerting_item(
            f"f{story_id}",
            title,
            feed="Bloomberg",
            destinations=destinations,
            summary=summary,
            story_id=story_id,
            thread=thread,
            decision=f"follow-up of story {thread}: shares nvidia, h20",
        ),
    )
    return followup


def _join(store, outlet, title, *, story_id):
    """Another outlet reports the story: it joins, and the story's messages are to be edited."""
    joining = alerting_item(outlet[0], title, feed=outlet, destinations=(), story_id=story_id)
    record(store, outlet, replace(joining, new_story=False, result=None, source_name=outlet))


def _fast(fake, chat=CHANNEL):
    """A sink (and a fake) without Telegram's one-a-second pacing: these tests are about form."""
    fake.per_chat_interval, fake.per_minute_limit = 0, None
    return TelegramSink(
        token=fake.token,
        chat_id=chat,
        base_url=fake.base_url,
        per_chat=(1, 0.01),
        overall=(30, 0.01),
        per_group_minute=(100, 1),
    )


async def test_a_follow_up_is_a_quiet_reply_to_its_storys_message(database, telegram):
    store = open_store(database)
    story = _story(store)
    followup = _followup(store)
    sink = _fast(telegram)
    report = await Deliverer(store, [sink]).drain()
    await sink.aclose()

    assert report.results[("telegram", "followup")] == 1 and report.sent == 2
    first, second = telegram.sent
    assert first["shown_text"].startswith(STORY) and first["disable_notification"] is None
    assert second["reply_to_message_id"] == first["message_id"]
    assert second["reply_parameters"] == {"message_id": first["message_id"]}
    assert second["disable_notification"] is True, "a follow-up does not buzz"
    assert second["shown_text"].split("\n") == [
        f"↳ Bloomberg: {FOLLOWUP}",
        "Nvidia told suppliers to suspend work on the H20, two people said.",
    ]
    link = [e for e in second["entities"] if e["type"] == "text_link"]
    assert [e["url"] for e in link] == ["https://bloomberg.example/f2"]
    assert store.message_id(story, "telegram") == str(first["message_id"])
    assert store.message_id(followup, "telegram") == str(second["message_id"])
    store.close()


async def test_a_follow_up_recorded_before_its_story_still_goes_after_it(database, telegram):
    store = open_store(database)
    followup = _followup(store)  # another feed of the same cycle was recorded first
    story = _story(store)
    assert followup < story
    sink = _fast(telegram)
    await Deliverer(store, [sink]).drain()
    await sink.aclose()
    first, second = telegram.sent
    assert first["shown_text"].startswith(STORY)
    assert second["reply_to_message_id"] == first["message_id"]
    store.close()


async def test_a_follow_up_whose_story_message_was_deleted_names_the_story(database, telegram):
    store = open_store(database)
    _story(store)
    sink = _fast(telegram)
    deliverer = Deliverer(store, [sink])
    await deliverer.drain()
    [story_message] = telegram.sent
    telegram.delete_message(CHANNEL_ID, story_message["message_id"])

    _followup(store)
    report = await deliverer.drain()
    await sink.aclose()
    assert report.sent == 1 and store.count_pending() == 0
    refused = [c for c in telegram.calls_to("sendMessage") if c["status"] == 400]
    assert [c["description"] for c in refused] == ["Bad Request: message to be replied not found"]
    plain = telegram.sent[-1]
    assert plain["reply_to_message_id"] is None and plain["disable_notification"] is True
    assert plain["shown_text"].split("\n")[:2] == [
        f"↳ follow-up to “{STORY}”",
        f"Bloomberg: {FOLLOWUP}",
    ]
    store.close()


@pytest.mark.slow
async def test_a_personal_subscriber_gets_the_thread_in_their_chat(database, telegram):
    telegram.add_chat(42, "private", first_name="Ann")
    telegram.add_chat(43, "private", first_name="Bob")
    store = open_store(database)
    _story(store, destinations=("telegram", "telegram:42"))  # Bob subscribed later
    _followup(store, destinations=("telegram", "telegram:42", "telegram:43"))
    channel = _fast(telegram)
    sinks = [channel, channel.for_chat(42), channel.for_chat(43)]
    report = await Deliverer(store, sinks).drain()
    for sink in sinks:
        await sink.aclose()

    assert report.results[("telegram:42", "followup")] == 1
    by_chat = {}
    for message in telegram.sent:
        by_chat.setdefault(message["chat_id"], []).append(message)
    ann_story, ann_followup = by_chat[42]
    assert ann_followup["reply_to_message_id"] == ann_story["message_id"], "in Ann's chat"
    assert ann_followup["disable_notification"] is True
    assert ann_followup["shown_text"].startswith("↳ Bloomberg: ")
    [bob] = by_chat[43]  # Bob never got the story: the follow-up names it
    assert bob["reply_to_message_id"] is None and bob["disable_notification"] is True
    assert bob["shown_text"].startswith(f"↳ follow-up to “{STORY}”\nBloomberg: ")
    store.close()


async def test_a_follow_up_whose_story_was_rejected_names_it(database, telegram):
    store = open_store(database)
    _story(store)
    _followup(store)
    telegram.fail_next(
        1, 400, description="Bad Request: can't parse entities", method="sendMessage"
    )
    sink = _fast(telegram)
    report = await Deliverer(store, [sink]).drain()
    await sink.aclose()
    assert (report.rejected, report.sent) == (1, 1)
    [message] = telegram.sent
    assert message["reply_to_message_id"] is None
    assert message["shown_text"].startswith(f"↳ follow-up to “{STORY}”")
    store.close()


async def test_a_follow_up_that_gains_an_outlet_is_edited_in_its_short_form(database, telegram):
    store = open_store(database)
    _story(store)
    followup = _followup(store)
    sink = _fast(telegram)
    deliverer = Deliverer(store, [sink])
    await deliverer.drain()
    _join(store, "Reuters", FOLLOWUP, story_id=2)
    report = await deliverer.drain()
    await sink.aclose()
    assert report.edits == 1
    [edit] = telegram.edits
    assert edit["message_id"] == int(store.message_id(followup, "telegram"))
    assert edit["shown_text"].startswith(f"↳ Bloomberg (also Reuters): {FOLLOWUP}")
    store.close()


async def test_the_console_prints_a_follow_up_under_its_story_or_names_it(database):
    store = open_store(database)
    _story(store, destinations=("console",))
    _followup(store, destinations=("console",))
    _followup(store, destinations=("console",), story_id=3, title="Nvidia H20 stock written off")
    _queue(store, ["SMIC export controls tightened"], destinations=("console",))
    _followup(store, destinations=("console",), story_id=4, title="Nvidia H20 talks resume")
    out = io.StringIO()
    await Deliverer(store, [ConsoleSink(stream=out)]).drain()
    blocks = out.getvalue().strip().split("\n\n")
    assert blocks[0].startswith(f"🔔 {STORY}\n")
    head, *rest = blocks[1].split("\n")
    assert re.fullmatch(r"   ↳ follow-up · Bloomberg · \d\d \w{3} \d{4} \d\d:\d\d UTC", head)
    assert rest[:2] == [f"     {FOLLOWUP}", "     https://bloomberg.example/f2"]
    assert blocks[2].startswith("   ↳ follow-up · Bloomberg · "), "still under the story"
    assert blocks[3].startswith("🔔 SMIC export controls tightened")
    assert blocks[4].startswith(f"   ↳ follow-up to “{STORY}” · Bloomberg · ")
    store.close()


# --- Slack as an app: posts, edits, threads --------------------------------------------------


@pytest.fixture
def slack_api():
    with FakeSlackApi() as fake:
        yield fake


def _app(fake, **kw):
    return SlackAppSink(token=fake.token, channel="#chip-news", base_url=fake.base_url, **kw)


def _fast_app(fake):
    fake.post_interval = 0
    return _app(fake, per_channel=(100, 1.0))


async def test_slack_app_posts_edits_on_a_join_and_threads_a_follow_up(database, slack_api):
    store = open_store(database)
    story = _story(store, destinations=("slack",))
    sink = _fast_app(slack_api)
    deliverer = Deliverer(store, [sink])
    await deliverer.drain()
    [posted] = slack_api.posts
    assert store.message_id(story, "slack") == f"C0CHIPNEWS1:{posted['ts']}"
    assert posted["thread_ts"] is None and posted["unfurl_links"] is False

    _join(store, "Reuters", STORY, story_id=1)
    followup = _followup(store, destinations=("slack",))
    report = await deliverer.drain()
    await sink.aclose()

    assert report.edits == 1 and report.results[("slack", "followup")] == 1
    [update] = slack_api.updates
    assert (update["channel"], update["ts"]) == ("C0CHIPNEWS1", posted["ts"])
    assert "📣 also reported by Reuters" in update["blocks"][0]["text"]["text"]
    reply = slack_api.posts[-1]
    assert reply["thread_ts"] == posted["ts"], "the follow-up is in the story's thread"
    assert reply["reply_broadcast"] is False
    assert reply["text"] == f"↳ Bloomberg: {FOLLOWUP}"
    assert reply["blocks"][0]["text"]["text"].startswith("↳ *Bloomberg*: <https://bloomberg")
    assert store.message_id(followup, "slack") == f"C0CHIPNEWS1:{reply['ts']}"
    store.close()


async def test_slack_app_follow_up_to_a_deleted_message_names_the_story(database, slack_api):
    store = open_store(database)
    _story(store, destinations=("slack",))
    sink = _fast_app(slack_api)
    deliverer = Deliverer(store, [sink])
    await deliverer.drain()
    slack_api.delete_message("C0CHIPNEWS1", slack_api.posts[0]["ts"])
    _followup(store, destinations=("slack",))
    report = await deliverer.drain()
    await sink.aclose()
    assert report.sent == 1
    top = slack_api.posts[-1]
    assert top["thread_ts"] is None, "Slack posted it at the top level"
    [renamed] = slack_api.updates
    assert renamed["ts"] == top["ts"]
    assert renamed["text"] == f"↳ Bloomberg: {FOLLOWUP}"
    assert renamed["blocks"][0]["text"]["text"].startswith(f"↳ follow-up to “{STORY}”\n")
    store.close()


@pytest.mark.slow
async def test_slack_app_waits_as_a_429_tells_and_paces_itself(tmp_path, slack_api):
    store = open_store(tmp_path / "cw.db")  # about the sink: one engine will do
    _queue(store, ["Nvidia export controls A", "Nvidia export controls B"], destinations=("slack",))
    clock = Clock()
    slack_api.fail_next(1, "ratelimited", status=429, retry_after=3, method="chat.postMessage")
    sink = _app(slack_api)
    report = await Deliverer(store, [sink], now=clock, sleep=clock.sleep).drain()
    assert report.sent == 2 and report.results[("slack", "retry")] == 1
    assert clock.slept[0] == pytest.approx(3, abs=0.01), "429: wait exactly Retry-After"
    posts = slack_api.posts
    assert posts[1]["timestamp"] - posts[0]["timestamp"] >= 1.0, "one a second per channel"
    assert [c["status"] for c in slack_api.calls] == [429, 200, 200], "no 429 of its own making"
    await sink.aclose()
    store.close()


async def test_slack_app_takes_slacks_own_429_and_retry_after(database, slack_api):
    store = open_store(database)
    _queue(store, ["Nvidia export controls A", "Nvidia export controls B"], destinations=("slack",))
    clock = Clock()
    slack_api.clock = lambda: clock.now.timestamp()  # Slack's clock is the deliverer's
    sink = _app(slack_api, per_channel=(100, 1.0))  # no pacing of its own: Slack says no
    report = await Deliverer(store, [sink], now=clock, sleep=clock.sleep).drain()
    await sink.aclose()
    assert report.sent == 2 and report.results[("slack", "retry")] == 1
    assert [(c["status"], c["error"]) for c in slack_api.calls] == [
        (200, None),
        (429, "ratelimited"),
        (200, None),
    ]
    assert clock.slept == [1.0], "waited the Retry-After Slack gave"
    store.close()


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("invalid_auth", "paused"),
        ("account_inactive", "paused"),
        ("channel_not_found", "paused"),
        ("not_in_channel", "paused"),
        ("is_archived", "paused"),
        ("msg_too_long", "rejected"),
        ("fatal_error", "retry"),
    ],
)
async def test_slack_app_errors_map_onto_the_delivery_errors(tmp_path, slack_api, error, outcome):
    store = open_store(tmp_path / "cw.db")  # about the sink: one engine will do
    _queue(store, ["Nvidia export controls"], destinations=("slack",))
    slack_api.fail_next(1, error, method="chat.postMessage")
    sink = _app(slack_api)
    report = await Deliverer(store, [sink]).deliver_due()
    await sink.aclose()
    [row] = deliveries(store, 1)
    if outcome == "paused":
        assert report.paused == ["slack"] and row["status"] == "pending"
    elif outcome == "rejected":
        assert report.rejected == 1 and row["status"] == "rejected"
        assert row["last_error"] == f"slack {error} (HTTP 200)"
    else:
        assert report.retrying == 1 and row["status"] == "pending"
    store.close()


async def test_slack_app_network_errors_retry_and_the_token_is_never_shown(tmp_path, caplog):
    store = open_store(tmp_path / "cw.db")  # about the sink: one engine will do
    _queue(store, ["Nvidia export controls"], destinations=("slack",))
    with FakeSlackApi() as gone:
        base_url, token = gone.base_url, gone.token  # the server is closed after this block
    sink = SlackAppSink(token=token, channel="#chip-news", base_url=base_url)
    with caplog.at_level(logging.DEBUG):
        report = await Deliverer(store, [sink]).deliver_due()
    await sink.aclose()
    [row] = deliveries(store, 1)
    assert report.retrying == 1 and row["status"] == "pending"
    assert row["last_error"].startswith("network: ClientConnectorError")
    assert token not in caplog.text and token not in row["last_error"]
    store.close()


async def test_slack_webhook_names_the_story_of_a_follow_up(database, slack):
    store = open_store(database)
    _story(store, destinations=("slack",))
    _followup(store, destinations=("slack",))
    slack.interval = 0
    sink = SlackSink(webhook_url=slack.url, per_webhook=(100, 1.0))
    await Deliverer(store, [sink]).drain()
    await sink.aclose()
    story, followup = slack.received
    assert followup["blocks"][0]["text"]["text"].split("\n")[:2] == [
        f"↳ follow-up to “{STORY}”",
        "*Bloomberg*: <https://bloomberg.example/f2|" + FOLLOWUP + ">",
    ]
    store.close()


async def test_a_digest_of_follow_ups_only_is_quiet(database, telegram):
    store = open_store(database)
    _story(store)
    sink = _fast(telegram)
    await Deliverer(store, [sink]).drain()
    _followup(store)
    _followup(store, story_id=3, title="Nvidia H20 stock written off")
    followups = store.pending("telegram", now=datetime.now(timezone.utc))
    _, included = await sink.send_digest(followups)
    assert included == followups
    digest = telegram.sent[-1]
    assert digest["disable_notification"] is True
    assert f"1. ↳ {FOLLOWUP} — Bloomberg · follow-up to “{STORY}”" in digest["shown_text"]
    _queue(store, ["SMIC export controls tightened"])
    await sink.send_digest(store.pending("telegram", now=datetime.now(timezone.utc)))
    await sink.aclose()
    assert telegram.sent[-1]["disable_notification"] is None, "a digest with a story notifies"
    store.close()
