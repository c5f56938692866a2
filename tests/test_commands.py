"""Living with the bot, end to end: commands through the real python-telegram-bot Application
polling a fake Bot API on loopback, hot reload of config.yaml, personal subscriptions. The
commands themselves are tested as plain functions in ``tests/test_handlers.py``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from alerts.app import run_forever
from alerts.config import load_config
from alerts.deliver import telegram as telegram_delivery
from alerts.loopback import Route
from alerts.scheduler import FIRST_RUN_SPREAD_SECONDS
from alerts.status import format_status, read_status
from alerts.store import open_store
from alerts.types import utcnow
from tests.fakes.proxies import Balancer
from tests.fakes.telegram_api import FakeTelegram
from tests.support import CHANNEL, CHANNEL_ID, ago, rss

ADMIN, USER = 111, 222

CONFIG_TEMPLATE = """# chipwatch test config — this comment must survive /watch
database: cw.db
poll:
  interval_seconds: 10            # the shortest allowed: the tests wait for a second poll
  timeout_seconds: 5
feeds:
  - name: Wire
    url: "{url}"
watchlists:
  chips:
    - term: H200
      context: [Nvidia, chip, chips, AI]   # guard: the Hyundai van
    - H20
  companies:
    - Nvidia
    - Huawei
  export_terms:
    - export controls
    - term: import approval
      aliases: [imports]
rules:
  - name: chip-trade
    all_of: [export_terms]
    any_of: [chips, companies]
destinations:
  telegram:
    chat_id: "{channel}"
    api_base_url: {base_url}
    admins: [{admins}]
stories:
  edit_delay_seconds: 0
ops:
{ops}"""


@pytest.fixture
def telegram(monkeypatch):
    # Replies come quickly one after another here, from the bot and the fake alike (the bot
    # reads its pace per chat when it first writes to the chat); pacing is tested in
    # test_delivery.
    monkeypatch.setattr(telegram_delivery, "PER_CHAT", (1, 0.1))  # the fake: 0.05
    with FakeTelegram(
        chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "t"}}, per_chat_interval=0.05
    ) as fake:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
        yield fake


class Bot:
    """``python bot.py run`` in this process, driven through the fake Bot API."""

    def __init__(
        self,
        config_path,
        telegram,
        *,
        first_run_spread=FIRST_RUN_SPREAD_SECONDS,
        wait_for_commands=True,
        commands_retry=5.0,
        interval=None,
    ):
        self.config_path = config_path
        # Seconds between a feed's polls, below the config's floor of 10: for a test that waits
        # for several polls in turn (the loaded config is changed, not the file).
        self.interval = interval
        self.telegram = telegram
        self.wait_for_commands = wait_for_commands
        self.commands_retry = commands_retry
        self.stop = asyncio.Event()
        self.task = None
        # 0 for a test that waits for the first poll. The others keep the real spread (up to
        # 5 s): a test that changes something and waits for the next poll would otherwise
        # always wait the whole interval (10 s), as the first poll came before the change.
        self.first_run_spread = first_run_spread

    async def __aenter__(self):
        config = load_config(self.config_path)
        if self.interval is not None:
            feeds = tuple(
                replace(f, interval_seconds=self.interval, max_interval_seconds=self.interval)
                for f in config.feeds
            )
            config = replace(config, feeds=feeds)
        self.task = asyncio.create_task(
            run_forever(
                config,
                stop=self.stop,
                reload_every=0.2,
                first_run_spread=self.first_run_spread,
                deliver_every=0.2,  # a real bot delivers every 2 s: no test waits on that clock
                commands_retry=self.commands_retry,
            )
        )
        if self.wait_for_commands:
            await self.wait_for(lambda: self.telegram.calls_to("getUpdates"), "commands to start")
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        assert await asyncio.wait_for(self.task, 30) == 0

    async def wait_for(self, predicate, what, timeout=25.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task.done():
                self.task.result()
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def ask(self, user, text):
        """Send a command from a user in their private chat; return the bot's reply text."""
        before = len([m for m in self.telegram.sent if m["chat_id"] == user])
        self.telegram.push_message(user, user, text)
        replies = await self.wait_for(
            lambda: [m for m in self.telegram.sent if m["chat_id"] == user][before:],
            f"reply to {text!r}",
        )
        return replies[0]["shown_text"]

    def channel_posts(self):
        return [m["shown_text"] for m in self.telegram.sent if m["chat_id"] == CHANNEL_ID]


def _setup(
    tmp_path, serve, telegram, items=(), admins=(ADMIN,), ops='  listen: ""\n', base_url=None
):
    url = serve(rss(list(items)))
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            url=url,
            channel=CHANNEL,
            base_url=base_url or telegram.base_url,
            admins=", ".join(str(a) for a in admins),
            ops=ops,
        ),
        encoding="utf-8",
    )
    return path, url


def _set_feed(feed_server, url, items):
    feed_server.routes[url.split(str(feed_server.port))[1]] = Route(body=rss(items).encode())


@pytest.mark.slow
async def test_watch_edits_the_file_keeps_comments_and_alerts_on_next_poll(
    tmp_path, serve, telegram, feed_server, caplog
):
    path, url = _setup(tmp_path, serve, telegram)
    # Listening before the edit: the reload may land before the reply is read.
    with caplog.at_level(logging.INFO, logger="chipwatch"):
        async with Bot(path, telegram) as bot:
            reply = await bot.ask(ADMIN, "/watch chips B300")
            assert "added B300 to chips" in reply
            text = path.read_text()
            assert "# chipwatch test config — this comment must survive /watch" in text
            assert "# guard: the Hyundai van" in text
            assert "    - H20\n    - B300\n  companies:" in text
            await bot.wait_for(lambda: "config_reloaded" in caplog.text, "the hot reload")
            assert "B300" in await bot.ask(USER, "/watchlist")
            _set_feed(
                feed_server,
                url,
                [
                    {
                        "title": "US widens export controls to Nvidia B300",
                        "guid": "b300",
                        "link": "https://n.example/b300",
                        "date": ago(minutes=1),
                    }
                ],
            )
            posts = await bot.wait_for(bot.channel_posts, "the B300 alert on the next poll")
            assert "US widens export controls to Nvidia B300" in posts[0]
            assert "🎯 B300 · export controls" in posts[0]
            assert "removed B300" in await bot.ask(ADMIN, "/unwatch chips B300")
        assert "B300" not in path.read_text()


async def test_invalid_hand_edit_keeps_old_config_and_tells_admins(
    tmp_path, serve, telegram, caplog
):
    path, _ = _setup(tmp_path, serve, telegram)
    async with Bot(path, telegram) as bot:
        await bot.ask(ADMIN, "/start")  # a bot can only write to users who started it
        good = path.read_text()
        with caplog.at_level(logging.INFO, logger="chipwatch"):
            # An atomic save (write a temp file, rename it over) of a broken edit.
            tmp = path.with_suffix(".tmp")
            tmp.write_text(good.replace("    - H20\n", "    - H20\n  bogus_key: [\n"))
            tmp.replace(path)
            note = await bot.wait_for(
                lambda: [
                    m["shown_text"]
                    for m in telegram.sent
                    if m["chat_id"] == ADMIN and "config not applied" in m["shown_text"]
                ],
                "the admin warning",
            )
            assert "config not applied" in note[0] and f"{path}:" in note[0]
            assert "config_invalid" in caplog.text
            # Still running on the last good config.
            assert "ALERT" in await bot.ask(USER, "/why Nvidia H20 export controls")
            tmp.write_text(good.replace("    - H20\n", "    - H20\n    - B30A\n"))
            tmp.replace(path)
            await bot.wait_for(lambda: "config_reloaded" in caplog.text, "the fixed config")
        assert "B30A" in await bot.ask(USER, "/watchlist")


async def test_item8_a_deleted_config_tells_the_admins_once_and_the_bot_goes_on(
    tmp_path, serve, telegram, caplog
):
    path, _ = _setup(tmp_path, serve, telegram)

    def notices() -> list[str]:
        return [
            m["shown_text"]
            for m in telegram.sent
            if m["chat_id"] == ADMIN and "config file is gone" in m["shown_text"]
        ]

    async with Bot(path, telegram) as bot:
        await bot.ask(ADMIN, "/start")  # a bot can only write to users who started it
        good = path.read_text()
        with caplog.at_level(logging.INFO, logger="chipwatch"):
            path.unlink()
            note = await bot.wait_for(notices, "the admin notice")
            assert f"{path}: the config file is gone" in note[0]
            # Still running on the last good config, and said once, not at every look.
            assert "ALERT" in await bot.ask(USER, "/why Nvidia H20 export controls")
            path.write_text(good.replace("    - H20\n", "    - H20\n    - B30A\n"))
            await bot.wait_for(lambda: "config_reloaded" in caplog.text, "the file back")
        assert len(notices()) == 1
        assert caplog.text.count("config_missing") == 1
        assert "B30A" in await bot.ask(USER, "/watchlist")


@pytest.mark.slow
async def test_private_subscription_receives_its_alert(tmp_path, serve, telegram, feed_server):
    path, url = _setup(tmp_path, serve, telegram)
    async with Bot(path, telegram, interval=1, first_run_spread=0) as bot:
        assert "subscribed to term H20" in await bot.ask(USER, "/subscribe h20")
        assert "term H20" in await bot.ask(USER, "/subscriptions")
        # No rule holds for this one: the channel stays quiet, the subscriber hears of it.
        _set_feed(
            feed_server,
            url,
            [
                {
                    "title": "Nvidia H20 benchmarks leak",
                    "guid": "s1",
                    "link": "https://n.example/s1",
                    "date": ago(minutes=1),
                }
            ],
        )
        private = await bot.wait_for(
            lambda: [
                m["shown_text"]
                for m in telegram.sent
                if m["chat_id"] == USER and "benchmarks leak" in m["shown_text"]
            ],
            "the personal alert",
        )
        assert "🎯 H20" in private[0]
        assert bot.channel_posts() == []
        assert "Unsubscribed from H20" in await bot.ask(USER, "/unsubscribe H20")


@pytest.mark.slow
async def test_one_bot_and_one_budget_for_the_token(tmp_path, serve, telegram):
    """The channel sink, personal chats, command replies and admin notices share one Bot and
    one 30-a-second budget: every sendMessage the fake saw was counted in that budget."""
    from alerts.bot.handlers import Services
    from alerts.bot.telegram import TelegramCommands
    from alerts.runtime import Runtime
    from alerts.types import Alert, utcnow

    path, _ = _setup(tmp_path, serve, telegram)
    config = load_config(path)
    store = open_store(config.database)
    runtime = Runtime(config, store)
    try:
        client = runtime.telegram
        commands = TelegramCommands(
            Services(runtime=runtime, health=lambda now: None), client=client
        )
        channel = runtime.channel_sink()
        telegram.add_chat(ADMIN, "private", first_name="Admin")  # the admin has said /start
        runtime.ensure_private_sink(ADMIN)
        personal = next(s for s in runtime.deliverer.sinks if s.name == f"telegram:{ADMIN}")
        assert commands.app.bot is client.bot is channel.bot is personal.bot
        assert channel.overall is personal.overall is client.budget
        assert personal.limiter is client.chat_pace(ADMIN), "one pace per chat, whoever writes"
        counted = []
        record = client.budget.record
        client.budget.record = lambda: (counted.append(1), record())
        alert = Alert(
            id=1,
            feed="Wire",
            title="US widens export controls on Nvidia H20",
            link="https://n.example/1",
            summary="",
            published=None,
            created_at=utcnow(),
            matches=(),
            rules=("chip-trade",),
        )
        await channel.send(alert)
        await personal.send(alert)
        await runtime.notify_admins("config not applied")
        sent = telegram.calls_to("sendMessage")
        assert len(sent) == 3, [(c.get("chat_id"), c.get("status")) for c in sent]
        assert len(counted) == 3, "one budget counted every send"
        assert all(c["status"] == 200 for c in sent), "no 429: the admin's chat was paced once"
    finally:
        await runtime.aclose()
        store.close()


OPS = '  listen: "127.0.0.1:0"\n  paused_after_minutes: 0\n'  # any outage counts at once


def _ops_address(text):
    for line in text.splitlines():
        if "ops_listening address=" in line:
            return "http://" + line.split("ops_listening address=")[1].split()[0]
    return None


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _healthz(base):
    status, body = await asyncio.to_thread(_get, base + "/healthz")
    return status, json.loads(body)


def _news(guid, title, *, minutes):
    return {
        "title": title,
        "guid": guid,
        "link": f"https://n.example/{guid}",
        "date": ago(minutes=minutes),
    }


def _notices(telegram):
    return [
        m["shown_text"]
        for m in telegram.sent
        if m["chat_id"] == ADMIN and "can no longer be written to" in m["shown_text"]
    ]


@pytest.mark.slow
async def test_item2_a_blocked_subscriber_is_suspended_and_the_bot_stays_healthy(
    tmp_path, serve, telegram, feed_server, caplog
):
    """A subscriber who blocks the bot used to pause their chat as a destination: /healthz went
    503 (a HEALTHCHECK restarts a healthy container), and their user id was in /healthz and a
    /metrics label. Now their subscription is suspended, the admins are told once, and the
    channel and every health view carry on."""
    path, url = _setup(tmp_path, serve, telegram, ops=OPS)
    telegram.add_chat(ADMIN, "private", first_name="Admin")  # the admin has sent /start
    with caplog.at_level(logging.INFO, logger="chipwatch"):
        async with Bot(path, telegram, interval=1, first_run_spread=0) as bot:
            base = await bot.wait_for(lambda: _ops_address(caplog.text), "the ops endpoint")
            assert "subscribed to term H20" in await bot.ask(USER, "/subscribe H20")
            telegram.kick(USER)  # the subscriber blocks the bot
            items = [_news("b1", "US widens export controls on Nvidia H20", minutes=2)]
            _set_feed(feed_server, url, items)
            await bot.wait_for(lambda: _notices(telegram), "the admins' notice")
            await bot.wait_for(bot.channel_posts, "the channel's alert")
            items.append(_news("b2", "Huawei hit by new export controls on H20 parts", minutes=1))
            _set_feed(feed_server, url, items)
            await bot.wait_for(lambda: len(bot.channel_posts()) == 2, "the channel's next alert")

            status, health = await _healthz(base)
            assert status == 200 and health["reasons"] == [], health
            assert health["destinations"] == {
                "telegram": {"state": "ok"},
                "telegram:subscribers": {"state": "ok", "chats": 0, "suspended": 1},
            }
            _, metrics = await asyncio.to_thread(_get, base + "/metrics")
            for text in (json.dumps(health), metrics):
                assert f"telegram:{USER}" not in text and f":{USER}" not in text
            assert 'chipwatch_outbox_pending{destination="telegram:subscribers"} 0.0' in metrics
            assert (
                'chipwatch_deliveries_total{destination="telegram:subscribers",'
                'result="unreachable"} 1.0' in metrics
            )
            reply = await bot.ask(USER + 1, "/status")
            assert "Health: ok" in reply and "Channel: delivering" in reply
            assert "Subscribers: 0 (1 suspended)" in reply
            status = read_status(load_config(path), now=utcnow())
            assert status.healthy, status.problems
            assert "subscribers: 0 chat(s), 1 suspended (blocked the bot)" in format_status(status)
            [notice] = _notices(telegram)
            assert f"A subscriber ({USER}) can no longer be written to" in notice
            assert "bot was blocked by the user" in notice and "channel is not affected" in notice

            telegram.unkick(USER)  # they come back
            assert (await bot.ask(USER, "/subscriptions")).startswith("👋 Welcome back")
            items.append(_news("b3", "Nvidia H20 benchmarks leak", minutes=1))
            _set_feed(feed_server, url, items)
            await bot.wait_for(
                lambda: [m for m in telegram.sent if "benchmarks leak" in m["shown_text"]],
                "their next alert",
            )
    assert "subscription_suspended chat=222 subscriptions=1" in caplog.text
    assert "destination_paused" not in caplog.text


async def test_item3_commands_start_once_telegram_can_be_reached(
    tmp_path, serve, feed_server, caplog, monkeypatch
):
    """Telegram unreachable at start used to leave commands off for the life of the process
    (one log line, /healthz 200, no metric). Now the poller retries until it starts, and
    /healthz and /metrics say so meanwhile."""
    chats = {CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "t"}}
    away = FakeTelegram(chats=chats).start()
    away.close()  # only its token and its address's shape are used
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", away.token)
    # The bot reaches the Bot API through a front that, while Telegram is away, drops every
    # connection (closing a server and binding its port again later could race another
    # worker's port).
    front = Balancer([]).start()
    base_url = f"http://127.0.0.1:{front.port}/bot"
    path, _ = _setup(tmp_path, serve, away, ops=OPS, base_url=base_url)
    back = None
    try:
        with caplog.at_level(logging.INFO, logger="chipwatch"):
            async with Bot(path, away, wait_for_commands=False, commands_retry=0.1) as bot:
                base = await bot.wait_for(lambda: _ops_address(caplog.text), "the ops endpoint")
                await bot.wait_for(
                    lambda: caplog.text.count("commands_unavailable") >= 2, "a retry, and another"
                )
                status, health = await _healthz(base)
                assert status == 200 and health["commands"] == "starting"
                assert health["warnings"] == [
                    "commands are not answered yet: Telegram could not be reached (retrying)"
                ]
                _, metrics = await asyncio.to_thread(_get, base + "/metrics")
                assert "chipwatch_commands_up 0.0" in metrics

                # Telegram comes back, behind the same address.
                back = FakeTelegram(chats=chats, per_chat_interval=0.05).start()
                front.upstreams.append(back.port)
                bot.telegram = back
                await bot.wait_for(lambda: back.calls_to("getUpdates"), "the poller", timeout=40)
                assert "Health: ok" in await bot.ask(USER, "/status")
                _, health = await _healthz(base)
                assert health["commands"] == "up" and health["warnings"] == []
                _, metrics = await asyncio.to_thread(_get, base + "/metrics")
                assert "chipwatch_commands_up 1.0" in metrics
    finally:
        if back is not None:
            back.close()
        front.close()
    assert "commands_started" in caplog.text


GROUP = -1009876543210  # a group the bot is in, where admins and others talk


async def test_who_may_do_what_and_where_comes_from_the_telegram_update(tmp_path, serve, telegram):
    """The adapter turns each update into a request: admin or not from the sender's id, private
    or not from the chat's type, and a command addressed to another bot is not ours."""
    path, _ = _setup(tmp_path, serve, telegram)
    before = path.read_text()

    def in_group():
        return [m["shown_text"] for m in telegram.sent if m["chat_id"] == GROUP]

    async def ask_in_group(user, text, *, replies):
        """Send ``text`` to the group; wait for the group to have ``replies`` messages."""
        telegram.push_message(GROUP, user, text, "supergroup")
        return await bot.wait_for(lambda: len(in_group()) >= replies, f"a reply to {text!r}")

    async with Bot(path, telegram) as bot:
        assert "only the bot's admins" in await bot.ask(USER, "/pause")
        assert "only the bot's admins" in await bot.ask(USER, "/watch chips B300")
        # Updates are handled in turn: once a later message is answered, every earlier one was.
        telegram.push_message(GROUP, USER, "hello everyone", "supergroup")
        await ask_in_group(USER, "/subscribe H20", replies=1)
        assert in_group() == ["⚠️ subscribe in a private chat with me"], "no reply to chatter"
        assert "No subscriptions" in await bot.ask(USER, "/subscriptions")

        telegram.push_message(GROUP, ADMIN, "/pause@someotherbot", "supergroup")
        await ask_in_group(ADMIN, "/status@chipwatch_test_bot", replies=2)
        assert len(in_group()) == 2, "the other bot's /pause got no reply"
        assert "Channel: delivering" in in_group()[1], "and paused nothing"
        assert "paused" in await bot.ask(ADMIN, "/pause"), "the admin may, in private"
    assert path.read_text() == before, "no refused command changed the config"
