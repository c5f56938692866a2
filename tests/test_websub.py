"""WebSub push: discovery on polls, subscription at a spec-following hub on loopback
(tests/fakes/websub_hub.py), verification of intent, signed content through the pipeline to
the fake Bot API, forged pushes, lease renewal across a restart, unsubscribing removed feeds,
and the subscription state on both engines."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.app import run_forever
from alerts.config import FeedConfig, PollConfig, load_config, parse_config
from alerts.errors import ConfigError
from alerts.fetch import links
from alerts.loopback import Route
from alerts.parse import parse_feed
from alerts.pipeline import next_interval
from alerts.store import open_store
from alerts.types import HubLink, WebSubscription, utcnow
from alerts.websub import ALGORITHMS, check_signature, sign
from tests.fakes.proxies import Balancer
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.websub_hub import FakeHub
from tests.support import CHANNEL, CHANNEL_ID, MINIMAL_WATCHLISTS, ago, poll_cycle, rss

NEWS = "US adds Nvidia H20 buyers to entity list"
LATER = "Huawei hit by new export controls on Blackwell parts"
FORGED = "Forged: Nvidia H20 export controls lifted"


# --- helpers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Feed:
    """A feed on the loopback server whose items a test adds; it names ``hub`` in a ``Link:``
    header (or in its body, ``in_body``) with itself as the topic."""

    def __init__(self, hub: str | None, *, in_body: bool = False):
        self.hub, self.in_body = hub, in_body
        self.items: list[dict] = []
        self.url = ""
        self.gets: list[str] = []  # the User-Agent of each GET
        self._lock = threading.Lock()

    def add(self, title: str, n: int) -> None:
        with self._lock:
            self.items.insert(
                0, {"title": title, "guid": f"g{n}", "link": f"https://w.example/{n}",
                    "date": ago(minutes=1)},
            )  # fmt: skip

    def clear(self) -> None:
        with self._lock:
            self.items.clear()

    def respond(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.gets.append(headers.get("User-Agent", ""))
            body = rss(self.items)
        out = {"Content-Type": "application/rss+xml; charset=utf-8"}
        if self.hub and not self.in_body:
            out["Link"] = f'<{self.hub}>; rel="hub", <{self.url}>; rel="self"'
        elif self.hub:
            body = body.replace(
                "<channel>",
                '<channel><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" '
                f'href="{self.hub}"/><atom:link xmlns:atom="http://www.w3.org/2005/Atom" '
                f'rel="self" href="{self.url}"/>',
            )
        return 200, out, body.encode()

    def polls(self) -> int:
        """GETs by the bot (the hub fetches the topic too, with its own User-Agent)."""
        with self._lock:
            return sum(ua.startswith("chipwatch") for ua in self.gets)


def _write(tmp_path: Path, feeds: list[tuple[str, str]], telegram: FakeTelegram, port: int,
           *, ops: str = "", database: str = "cw.db", callback: int | None = None) -> Path:  # fmt: skip
    """A config polling ``feeds`` hourly, alerting to the fake Bot API, its WebSub callback
    on ``port`` (or, behind a proxy, called on ``callback``)."""
    lines = [
        f"database: {database}",
        f'ops:\n  listen: "{ops}"',
        "poll:\n  timeout_seconds: 5\n  interval_seconds: 3600\n  max_interval_seconds: 7200",
        "feeds:" if feeds else "feeds: []",
        *(f'  - name: "{n}"\n    url: "{u}"' for n, u in feeds),
        f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
        f"    api_base_url: {telegram.base_url}",
        "stories:\n  edit_delay_seconds: 0",
        f"websub:\n  callback_url: http://127.0.0.1:{callback or port}/websub\n"
        f"  listen: 127.0.0.1:{port}",
    ]
    path = tmp_path / f"config-{port}.yaml"
    path.write_text("\n".join(lines) + "\n" + MINIMAL_WATCHLISTS, encoding="utf-8")
    return path


class _Bot:
    """``run`` in this process (the hub's calls reach its callback in this event loop)."""

    def __init__(self, path: Path, *, lease_seconds: int | None = None):
        self.path, self.lease_seconds = path, lease_seconds
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> _Bot:
        config = load_config(self.path)
        if self.lease_seconds is not None:  # below the file's floor: a lease that ends soon
            assert config.websub is not None
            config = replace(
                config, websub=replace(config.websub, lease_seconds=self.lease_seconds)
            )
        self.task = asyncio.create_task(
            run_forever(
                config,
                stop=self.stop,
                reload_every=0.2,
                first_run_spread=0,
                commands_retry=5.0,
                websub_every=0.2,
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.task is not None:  # None: never started (a test failed before)
            assert await asyncio.wait_for(self.task, 30) == 0

    async def wait_for(self, predicate, what: str, timeout: float = 25.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.task is not None
            if self.task.done():
                self.task.result()
                raise AssertionError(f"run ended while waiting for {what}")
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


def _posts(telegram: FakeTelegram, title: str) -> list[dict]:
    return [m for m in telegram.sent if m["chat_id"] == CHANNEL_ID and title in m["shown_text"]]


@pytest.fixture(autouse=True)
def _token(request, monkeypatch):
    """The bot's token, for the tests that run it against the fake Bot API."""
    if "telegram" in request.fixturenames:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", request.getfixturevalue("telegram").token)


@pytest.fixture
def hub():
    with FakeHub() as fake:
        yield fake
        fake.wait_idle()


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(ALGORITHMS))
def test_each_signature_method_is_checked(method):
    body, secret = b"<rss>...</rss>", "s3cret"
    good = f"{method}={hmac.new(b's3cret', body, getattr(hashlib, method)).hexdigest()}"
    assert sign(body, secret, method) == good
    assert check_signature(good, body, secret) is None
    assert check_signature(good.upper().replace(method.upper(), method), body, secret) is None
    assert check_signature(good, body + b" ", secret) == "mismatch", "a tampered body"
    assert check_signature(good, body, "other") == "mismatch", "another secret"


@pytest.mark.parametrize(
    "header, why",
    [(None, "missing"), ("", "missing"), ("md5=abc", "unknown method"), ("sha256", "unknown method"),
     ("sha256=zz", "mismatch"), ("sha256=é", "mismatch")],
)  # fmt: skip
def test_a_missing_or_malformed_signature_is_refused(header, why):
    assert check_signature(header, b"body", "secret") == why


# --- discovery ----------------------------------------------------------------------------------


def test_link_headers_give_each_relation_resolved():
    found = links(
        ['<https://hub.example/>; rel="hub", </feed.xml>; rel=self', '<h2>; rel="hub alternate"'],
        "https://news.example/x/feed",
    )
    assert found == [
        ("https://hub.example/", "hub"),
        ("https://news.example/feed.xml", "self"),
        ("https://news.example/x/h2", "hub"),
        ("https://news.example/x/h2", "alternate"),
    ]


def test_the_feed_names_its_hub_in_atom_and_in_rss():
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<link rel="hub" href="https://pubsubhubbub.appspot.com/"/>'
        b'<link rel="self" href="/atom.xml"/><link rel="alternate" href="/"/>'
        b'<entry><title>x</title><id>1</id><link rel="hub" href="https://not.the.feed/"/>'
        b"</entry></feed>"
    )
    parsed = parse_feed(atom, feed="a", url="https://blog.example/feed")
    assert parsed.hubs == ("https://pubsubhubbub.appspot.com/",), (
        "an entry's link is not the feed's"
    )
    assert parsed.self_link == "https://blog.example/atom.xml"
    rss_doc = rss([{"title": "x", "link": "https://w.example/1"}]).replace(
        "<channel>",
        '<channel><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" '
        'href="https://hub.example/"/>',
    )
    parsed = parse_feed(rss_doc.encode(), feed="r", url="https://blog.example/rss")
    assert parsed.hubs == ("https://hub.example/",) and parsed.self_link is None
    assert parse_feed(rss([]).encode(), feed="r").hubs == ()


async def test_a_poll_records_the_hub_headers_first_then_the_body(tmp_path, serve):
    """Link headers win over the body's links (the spec's order); without rel=self the topic
    is the feed's URL; a feed that names no hub is recorded as such."""
    headers_only = _Feed("https://hub-a.example/")
    headers_only.url = serve(Route(respond=headers_only.respond))
    body_only = _Feed("https://hub-b.example/", in_body=True)
    body_only.url = serve(Route(respond=body_only.respond))
    plain = _Feed(None)
    plain.url = serve(Route(respond=plain.respond))
    config = parse_config(
        "feeds:\n"
        + "".join(
            f"  - name: {n}\n    url: {f.url}\n"
            for n, f in (("A", headers_only), ("B", body_only), ("C", plain))
        )
        + "websub: {callback_url: 'https://bot.example/websub'}\n"
        + MINIMAL_WATCHLISTS,
        path=tmp_path / "config.yaml",
    )
    store = open_store(tmp_path / "cw.db")
    try:
        await poll_cycle(config, store)
        assert store.hubs() == {
            "A": HubLink(hub="https://hub-a.example/", topic=headers_only.url),
            "B": HubLink(hub="https://hub-b.example/", topic=body_only.url),
            "C": HubLink(hub=None, topic=plain.url),
        }
        off = replace(config, websub=None)
        plain.hub = "https://hub-c.example/"
        await poll_cycle(off, store)
        assert store.hubs()["C"].hub is None, "with websub off, polls record nothing"
    finally:
        store.close()


def test_a_pushed_feed_is_polled_at_its_slowest():
    feed = FeedConfig(name="f", url="http://x/", interval_seconds=60, max_interval_seconds=3600)
    poll = PollConfig()
    assert next_interval(feed, poll, previous=None, had_new=True) == 60
    assert next_interval(feed, poll, previous=None, had_new=True, pushed=True) == 3600


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, line, key, message",
    [
        ("websub:\n  listen: 127.0.0.1:8080\n", 1, "websub", "missing required key 'callback_url'"),
        ("websub:\n  callback_url: bot.example/websub\n", 2, "websub.callback_url", "http"),
        ("websub:\n  callback_url: https://b.example/w?x=1\n", 2, "websub.callback_url", "query"),
        ("websub:\n  callback_url: https://b.example/w\n  listen: 8080\n", 3, "websub.listen",
         "host:port"),
        ("websub:\n  callback_url: https://b.example/w\n  lease_seconds: 60\n", 3,
         "websub.lease_seconds", "between 3600"),
        ("websub:\n  callback_url: https://b.example/w\n  secret: x\n", 3, "websub.secret",
         "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_websub_section_names_file_line_and_key(tmp_path, section, line, key, message):
    path = tmp_path / "config.yaml"
    with pytest.raises(ConfigError) as caught:
        parse_config(section + MINIMAL_WATCHLISTS, path=path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: {key}: ") and message in text


def test_websub_is_off_by_default_and_on_with_a_callback(tmp_path):
    path = tmp_path / "config.yaml"
    assert parse_config(MINIMAL_WATCHLISTS, path=path).websub is None
    on = parse_config(
        "websub: {callback_url: https://bot.example.com/websub/, listen: 0.0.0.0:8080}\n"
        + MINIMAL_WATCHLISTS,
        path=path,
    )
    assert on.websub is not None and on.websub.address == ("0.0.0.0", 8080)
    assert on.websub.callback_url == "https://bot.example.com/websub"
    assert on.websub.path == "/websub/" and on.websub.lease_seconds == 10 * 86400
    assert "websub: on, callback https://bot.example.com/websub" in on.summary()


# --- the subscription state, on both engines ----------------------------------------------------


def test_a_verification_counts_only_for_what_was_asked(database):
    """The check-and-set a hub's GET depends on: only a pending request of that mode for that
    topic; the secret never shows in a repr."""
    store = open_store(database)
    try:
        now = utcnow().replace(microsecond=0)  # stored to the millisecond
        sub = WebSubscription(
            id="abc", feed="Wire", hub="https://hub.example/", topic="https://w.example/feed",
            secret="s" * 64, state="requested", pending=None, created_at=now,
        )  # fmt: skip
        store.add_websub(sub)
        assert "s" * 64 not in repr(store.websub_subscription("abc"))
        later = now + timedelta(days=10)
        verify = dict(lease_seconds=864000, now=now, expires_at=later, renew_at=now)
        assert not store.websub_verified("abc", sub.topic, **verify), "nothing asked yet"
        store.websub_requested("abc", "subscribe", now=now, due_at=now)
        assert not store.websub_verified("abc", "https://other.example/", **verify)
        assert not store.websub_unsubscribed("abc", sub.topic), "a subscribe was asked"
        assert not store.websub_active("Wire", now=now)
        assert store.websub_verified("abc", sub.topic, **verify)
        assert not store.websub_verified("abc", sub.topic, **verify), "once only"
        active = store.websub_subscription("abc")
        assert active is not None and active.state == "active" and active.attempts == 0
        assert active.expires_at == later and active.secret == "s" * 64
        assert store.websub_active("Wire", now=now)
        assert not store.websub_active("Wire", now=later), "the lease ran out"
        store.websub_requested("abc", "unsubscribe", now=now, due_at=now)
        assert store.websub_subscription("abc").state == "unsubscribing"
        assert store.websub_unsubscribed("abc", sub.topic)
        assert store.websub_subscriptions() == []
    finally:
        store.close()


# --- end to end, on loopback --------------------------------------------------------------------


async def test_a_published_entry_is_pushed_to_telegram_with_no_poll_in_between(
    tmp_path, serve, telegram, hub, caplog
):
    """The done-when of issue #22: the feed polls hourly; after the first poll found the hub,
    an entry published there reaches sendMessage through the push alone."""
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    path = _write(tmp_path, [("Wire", feed.url)], telegram, _free_port())
    with caplog.at_level(logging.INFO):
        async with _Bot(path) as bot:
            live = await bot.wait_for(lambda: hub.live(feed.url), "a verified subscription")
            assert hub.requests[0]["hub.lease_seconds"] == str(10 * 86400)
            assert len(hub.requests[0]["hub.secret"]) == 64
            assert hub.verifications[0]["content_type"] == "application/octet-stream"
            polls = feed.polls()
            feed.add(NEWS, 1)
            assert await asyncio.to_thread(hub.publish, feed.url) == [204]
            await bot.wait_for(lambda: _posts(telegram, NEWS), "the pushed alert")
            assert feed.polls() == polls == 1, "delivered by the push, not by a poll"
            # The same body pushed again (a hub retrying) alerts nothing new.
            assert await asyncio.to_thread(hub.publish, feed.url) == [204]
    assert len(_posts(telegram, NEWS)) == 1
    assert live[0].secret not in caplog.text, "the secret never reaches a log line"
    assert "feed_pushed feed=Wire items=1 new=1 alerts=1" in caplog.text


async def test_a_forged_push_is_rejected_and_alerts_nothing(tmp_path, serve, telegram, hub, caplog):
    """A body without a signature, or signed with another secret, is ignored (answered 202 as
    the spec allows), counted in /metrics and logged; a genuine push still alerts. The
    callback shares the ops endpoint's address, so /metrics is on the same server."""
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    port = _free_port()
    path = _write(tmp_path, [("Wire", feed.url)], telegram, port, ops=f"127.0.0.1:{port}")
    with caplog.at_level(logging.INFO):
        async with _Bot(path) as bot:
            (sub,) = await bot.wait_for(lambda: hub.live(feed.url), "a verified subscription")
            feed.add(FORGED, 9)
            body = feed.respond({})[2]
            wrong = hmac.new(b"guessed", body, hashlib.sha256).hexdigest()
            async with httpx.AsyncClient() as client:
                answers = [
                    await client.post(sub.callback, content=body, headers=h)
                    for h in ({}, {"X-Hub-Signature": f"sha256={wrong}"},
                              {"X-Hub-Signature": "sha1=" + "0" * 40})
                ]  # fmt: skip
                gone = await client.post(sub.callback + "x", content=body)
                # Verification: only what the bot asked for is confirmed.
                asks = [
                    {"hub.mode": "subscribe", "hub.topic": "https://evil.example/", "hub.challenge": "c"},
                    {"hub.mode": "unsubscribe", "hub.topic": feed.url, "hub.challenge": "c"},
                ]  # fmt: skip
                refused = [(await client.get(sub.callback, params=q)).status_code for q in asks]
                unknown = await client.get(
                    sub.callback + "x", params={**asks[1], "hub.mode": "subscribe"}
                )
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            assert [a.status_code for a in answers] == [202, 202, 202]
            assert gone.status_code == 410 and refused == [404, 404] and unknown.status_code == 404
            pushes = {
                s.labels["result"]: s.value
                for family in text_string_to_metric_families(metrics)
                for s in family.samples
                if s.name == "chipwatch_websub_pushes_total"
            }
            assert pushes["rejected"] == 3 and pushes["accepted"] == 0 and pushes["gone"] == 1
            gauges = {
                (s.name, s.labels.get("state")): s.value
                for family in text_string_to_metric_families(metrics)
                for s in family.samples
                if s.name.startswith("chipwatch_websub_")
            }
            assert gauges[("chipwatch_websub_subscriptions", "active")] == 1
            assert gauges[("chipwatch_websub_subscriptions", "requested")] == 0
            lease = gauges[("chipwatch_websub_lease_remaining_seconds", None)]
            assert 0 < lease <= 10 * 86400
            feed.clear()
            feed.add(NEWS, 1)
            assert await asyncio.to_thread(hub.publish, feed.url) == [204]
            await bot.wait_for(lambda: _posts(telegram, NEWS), "the genuine push's alert")
    assert not [m for m in telegram.sent if FORGED in m["shown_text"]]
    rejected = [r.getMessage() for r in caplog.records if "websub_push_rejected" in r.getMessage()]
    assert [m.split("signature=")[1].split()[0] for m in rejected] == [
        "missing",
        "mismatch",
        "mismatch",
    ]
    assert sub.secret not in caplog.text
    store = open_store(tmp_path / "cw.db")
    try:
        assert store.websub_subscriptions()[0].pushes == 1, "only the genuine push counts"
        assert store.feed_state("Wire").last_new_at is not None
    finally:
        store.close()


@pytest.mark.slow
async def test_a_lease_is_renewed_before_it_ends_across_a_restart(tmp_path, serve, telegram, hub):
    """A 5-second lease (the config's floor is an hour: a seam on the loaded config): the bot
    stops after the hub verified it, a new process on the same database renews it at 80%,
    while it is still live, with the same secret: a push after the renewal alerts."""
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    path = _write(tmp_path, [("Wire", feed.url)], telegram, _free_port())
    async with _Bot(path, lease_seconds=5) as bot:
        (first,) = await bot.wait_for(lambda: hub.live(feed.url), "a verified subscription")
    assert first.lease_seconds == 5
    async with _Bot(path, lease_seconds=5) as bot:
        renewal = await bot.wait_for(
            lambda: [v for v in hub.verifications[1:] if v["mode"] == "subscribe"], "a renewal"
        )
        assert renewal[0]["verified"] and renewal[0]["callback"] == first.callback
        assert renewal[0]["renewed_live"], "renewed before the lease ran out"
        assert renewal[0]["same_secret"]
        assert hub.verifications[0]["at"] < renewal[0]["at"] < first.expires_at
        feed.add(NEWS, 1)
        assert await asyncio.to_thread(hub.publish, feed.url) == [204]
        await bot.wait_for(lambda: _posts(telegram, NEWS), "the alert pushed after the renewal")
    assert feed.polls() == 1, "the restart polled nothing: the subscription is in the store"


async def test_a_feed_removed_from_the_config_is_unsubscribed(tmp_path, serve, telegram, hub):
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    port = _free_port()
    path = _write(tmp_path, [("Wire", feed.url)], telegram, port)
    async with _Bot(path) as bot:
        (sub,) = await bot.wait_for(lambda: hub.live(feed.url), "a verified subscription")
        _write(tmp_path, [], telegram, port)  # hot reload: the feed is gone
        await bot.wait_for(
            lambda: [v for v in hub.verifications if v["mode"] == "unsubscribe" and v["verified"]],
            "the verified unsubscribe",
        )
        assert hub.live(feed.url) == []
        assert hub.requests[-1]["hub.mode"] == "unsubscribe"
        assert "hub.secret" not in hub.requests[-1]
        async with httpx.AsyncClient() as client:
            assert (await client.post(sub.callback, content=b"x")).status_code == 410
    store = open_store(tmp_path / "cw.db")
    try:
        assert store.websub_subscriptions() == []
    finally:
        store.close()


async def test_one_instance_subscribes_any_takes_a_push_and_another_renews(
    pg_database, tmp_path, serve, telegram, hub
):
    """Two instances on one PostgreSQL database, their callbacks behind one reverse proxy:
    the first subscribes, the second does not ask again; the hub's push reaches the second
    just as well; when the first stops, the second takes the role and renews the lease (10 s,
    a seam below the config's floor) before it ends, with the same secret."""
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    first, second = _free_port(), _free_port()
    with Balancer([first, second]) as proxy:
        paths = [
            _write(tmp_path, [("Wire", feed.url)], telegram, port, database=pg_database,
                   callback=proxy.port)
            for port in (first, second)
        ]  # fmt: skip
        two = _Bot(paths[1], lease_seconds=10)
        try:
            async with _Bot(paths[0], lease_seconds=10) as one:
                (sub,) = await one.wait_for(lambda: hub.live(feed.url), "a verified subscription")
                await two.__aenter__()
                await asyncio.sleep(1.0)  # five rounds of both subscribers
                assert [r["hub.mode"] for r in hub.requests] == ["subscribe"], "one asks"
                feed.add(NEWS, 1)
                body = feed.respond({})[2]
                proxy.upstreams.reverse()  # the proxy now sends every call to the second
                status = await asyncio.to_thread(hub.deliver, sub, body, "application/rss+xml")
                assert status == 204 and proxy.requests[-1] == {"upstream": second}
                await one.wait_for(lambda: _posts(telegram, NEWS), "the alert of the push")
            renewal = await two.wait_for(
                lambda: [v for v in hub.verifications[1:] if v["mode"] == "subscribe"],
                "a renewal",
            )
            assert renewal[0]["renewed_live"] and renewal[0]["same_secret"]
            assert [r["hub.mode"] for r in hub.requests] == ["subscribe", "subscribe"]
        finally:
            await two.__aexit__()
    assert len(_posts(telegram, NEWS)) == 1


async def test_a_denied_subscription_is_recorded_and_the_feed_is_polled_again(
    tmp_path, serve, telegram, hub
):
    """The hub may deny a subscription at any time (``hub.mode=denied``): the bot records it,
    stops counting the feed as pushed, and asks again only a day later."""
    feed = _Feed(hub.url)
    feed.url = serve(Route(respond=feed.respond))
    path = _write(tmp_path, [("Wire", feed.url)], telegram, _free_port())
    async with _Bot(path) as bot:
        (sub,) = await bot.wait_for(lambda: hub.live(feed.url), "a verified subscription")
        assert await asyncio.to_thread(hub.deny, feed.url, sub.callback, "quota") == 200
        await asyncio.sleep(0.5)  # two subscriber rounds: nothing is asked again
        assert [r["hub.mode"] for r in hub.requests] == ["subscribe"]
    store = open_store(tmp_path / "cw.db")
    try:
        (denied,) = store.websub_subscriptions()
        assert denied.state == "denied" and denied.last_error == "denied: quota"
        assert denied.due_at is not None and denied.due_at > utcnow() + timedelta(hours=23)
        assert not store.websub_active("Wire", now=utcnow())
    finally:
        store.close()
