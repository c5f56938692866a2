"""Telegram and Slack delivery through the real clients against strict loopback fakes."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from alerts.deliver import Deliverer
from alerts.deliver.slack import SlackSink
from alerts.deliver.telegram import TelegramSink
from alerts.store import open_store
from alerts.types import FeedItem, Match, MatchResult, NewItem
from tests.fakes.slack_webhook import FakeSlack, unescaped_specials
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    HOSTILE,
    ROOT,
    ago,
    cli,
    deliveries,
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


class Clock:
    """A clock for the deliverer that moves only when it sleeps."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)
        self.slept = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def _429s(fake):
    return [c for c in fake.calls if c["status"] == 429 and not c.get("injected")]


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
    sink = _sink(telegram)
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
    sink = _sink(telegram)
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
        if k not in ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "CHIPWATCH_DATABASE")
    }
    env.update(extra)
    return env


def _telegram_config(tmp_path, feed_url, fake):
    return write_config(
        tmp_path,
        [("Wire", feed_url)],
        extra=(
            f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
            f"    api_base_url: {fake.base_url}\n"
        ),
    )


def test_once_sends_to_telegram_and_never_logs_the_token(tmp_path, serve, telegram):
    url = serve(
        rss(
            [
                {
                    "title": "Nvidia H20 export controls tightened",
                    "guid": "t1",
                    "link": "https://n.example/t1",
                    "date": ago(minutes=3),
                }
            ]
        )
    )
    config = _telegram_config(tmp_path, url, telegram)
    result = cli("-v", "once", "--config", str(config), env=_env(TELEGRAM_BOT_TOKEN=telegram.token))
    assert result.returncode == 0, result.stderr
    assert "sent=1 pending=0" in result.stdout
    assert len(telegram.sent) == 1
    assert "HTTP Request: POST" in result.stderr, "debug logging covered httpx's request lines"
    assert telegram.token not in result.stderr + result.stdout
    assert telegram.token.split(":")[1] not in result.stderr + result.stdout
    with sqlite3.connect(tmp_path / "cw.db") as db:
        assert db.execute("SELECT message_id FROM deliveries").fetchone()[0] == str(
            telegram.sent[0]["message_id"]
        )


def test_revoked_token_keeps_alert_pending_and_is_not_logged(tmp_path, serve, telegram):
    url = serve(
        rss(
            [
                {
                    "title": "Nvidia H20 export controls",
                    "guid": "r1",
                    "link": "https://n.example/r1",
                    "date": ago(minutes=3),
                }
            ]
        )
    )
    config = _telegram_config(tmp_path, url, telegram)
    revoked = "987654321:AArevokedrevokedrevokedrevokedrevoked"
    result = cli("-v", "once", "--config", str(config), env=_env(TELEGRAM_BOT_TOKEN=revoked))
    assert result.returncode == 0
    assert "pending=1" in result.stdout and "destination telegram is unavailable" in result.stdout
    assert "destination_paused destination=telegram" in result.stderr
    assert revoked not in result.stderr + result.stdout
    assert "revokedrevoked" not in result.stderr + result.stdout


def test_missing_token_is_a_config_error(tmp_path, serve, telegram):
    config = _telegram_config(tmp_path, serve(rss([])), telegram)
    result = cli("once", "--config", str(config), env=_env())
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr


def test_slack_webhook_url_never_logged(tmp_path, serve, slack):
    url = serve(
        rss(
            [
                {
                    "title": "Nvidia H20 export controls",
                    "guid": "s1",
                    "link": "https://n.example/s1",
                    "date": ago(minutes=3),
                }
            ]
        )
    )
    config = write_config(tmp_path, [("Wire", url)], extra="destinations:\n  slack: {}\n")
    result = cli("-v", "once", "--config", str(config), env=_env(SLACK_WEBHOOK_URL=slack.url))
    assert result.returncode == 0, result.stderr
    assert len(slack.received) == 1
    assert slack.path not in result.stderr and "XXXXXXXXXXXX" not in result.stderr


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
