"""Living with the bot: commands through the real python-telegram-bot Application polling a fake
Bot API on loopback, hot reload of config.yaml, and operator state that survives restarts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from alerts.app import run_forever
from alerts.config import load_config
from alerts.loopback import Route
from alerts.scheduler import FIRST_RUN_SPREAD_SECONDS
from alerts.store import open_store
from tests.fakes.telegram_api import FakeTelegram
from tests.support import CHANNEL, CHANNEL_ID, ago, alerting_item, record, rss

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
  listen: ""
"""


@pytest.fixture
def telegram(monkeypatch):
    # Replies come quickly one after another here; pacing is tested in test_delivery.
    with FakeTelegram(
        chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "t"}}, per_chat_interval=0.05
    ) as fake:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
        yield fake


class Bot:
    """``python bot.py run`` in this process, driven through the fake Bot API."""

    def __init__(self, config_path, telegram, *, first_run_spread=FIRST_RUN_SPREAD_SECONDS):
        self.config_path = config_path
        self.telegram = telegram
        self.stop = asyncio.Event()
        self.task = None
        # 0 for a test that waits for the first poll. The others keep the real spread (up to
        # 5 s): a test that changes something and waits for the next poll would otherwise
        # always wait the whole interval (10 s), as the first poll came before the change.
        self.first_run_spread = first_run_spread

    async def __aenter__(self):
        config = load_config(self.config_path)
        self.task = asyncio.create_task(
            run_forever(
                config,
                stop=self.stop,
                reload_every=0.2,
                first_run_spread=self.first_run_spread,
                deliver_every=0.2,  # a real bot delivers every 2 s: no test waits on that clock
            )
        )
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


def _setup(tmp_path, serve, telegram, items=(), admins=(ADMIN,)):
    url = serve(rss(list(items)))
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            url=url,
            channel=CHANNEL,
            base_url=telegram.base_url,
            admins=", ".join(str(a) for a in admins),
        ),
        encoding="utf-8",
    )
    return path, url


def _set_feed(feed_server, url, items):
    feed_server.routes[url.split(str(feed_server.port))[1]] = Route(body=rss(items).encode())


async def test_public_commands_answer_everyone(tmp_path, serve, telegram):
    items = [
        {
            "title": "China approves Nvidia H200 imports",
            "guid": "p1",
            "link": "https://n.example/p1",
            "date": ago(minutes=5),
        }
    ]
    path, _ = _setup(tmp_path, serve, telegram, items)
    # A different user for each command: everyone is answered (and no reply waits for the
    # one-a-second pace of a chat that was just written to).
    users = itertools.count(USER)
    async with Bot(path, telegram, first_run_spread=0) as bot:
        await bot.wait_for(bot.channel_posts, "the first alert")
        assert "/watchlist" in await bot.ask(next(users), "/start")
        assert "/why" in await bot.ask(next(users), "/help")
        watchlist = await bot.ask(next(users), "/watchlist")
        assert (
            "chips (2): H200, H20" in watchlist and "chip-trade: all of export_terms" in watchlist
        )
        status = await bot.ask(next(users), "/status")
        assert "Feeds: 1 OK, 0 failing" in status and "Alerts today: 1" in status
        assert "Pending deliveries: 0" in status and "Channel: delivering" in status
        recent = await bot.ask(next(users), "/recent 3")
        assert "China approves Nvidia H200 imports — Wire" in recent
        why = await bot.ask(next(users), "/why US bans Nvidia H20 export controls")
        assert "ALERT: rule(s) chip-trade held" in why and "H20" in why
        assert "don't know that command" in await bot.ask(next(users), "/frobnicate")


async def test_admin_commands_refuse_non_admins_politely(tmp_path, serve, telegram, caplog):
    path, _ = _setup(tmp_path, serve, telegram)
    before = path.read_text()
    users = itertools.count(USER)  # none of them an admin, and a chat each
    async with Bot(path, telegram) as bot:
        with caplog.at_level(logging.WARNING, logger="chipwatch"):
            for command in (
                "/watch chips B300",
                "/unwatch chips H20",
                "/mute Nvidia 1h",
                "/unmute Nvidia",
                "/pause",
                "/resume",
            ):
                assert "only the bot's admins" in await bot.ask(next(users), command)
    assert path.read_text() == before
    assert caplog.text.count("command_refused") == 6 and f"user={USER}" in caplog.text


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


async def test_mutes_and_pause_survive_a_restart(tmp_path, serve, telegram, feed_server):
    path, url = _setup(tmp_path, serve, telegram)
    async with Bot(path, telegram) as bot:
        assert "Huawei muted until" in await bot.ask(ADMIN, "/mute huawei 2h")
        assert "paused" in await bot.ask(ADMIN, "/pause")
    async with Bot(path, telegram) as bot:
        assert "Muted: huawei until" in await bot.ask(USER, "/watchlist")
        assert "Channel: paused" in await bot.ask(USER, "/status")
        why = await bot.ask(USER, "/why Huawei hit by export controls")
        assert "muted terms drop out: no alert" in why
        _set_feed(
            feed_server,
            url,
            [
                {
                    "title": "Huawei hit by new export controls",
                    "guid": "m1",
                    "link": "https://n.example/m1",
                    "date": ago(minutes=1),
                },
                {
                    "title": "Nvidia H20 export controls tightened",
                    "guid": "m2",
                    "link": "https://n.example/m2",
                    "date": ago(minutes=1),
                },
            ],
        )
        await bot.wait_for(
            lambda: "Pending deliveries: 1" in _sync_status(bot), "the queued alert", timeout=25
        )
        assert bot.channel_posts() == [], "paused: the alert waits"
        assert "1 queued alerts go out now" in await bot.ask(ADMIN, "/resume")
        posts = await bot.wait_for(bot.channel_posts, "the released alert")
        assert posts[0].startswith("Nvidia H20 export controls tightened"), "Huawei stayed muted"
        assert "unmuted" in await bot.ask(ADMIN, "/unmute Huawei")


def _sync_status(bot):
    # The store is SQLite: reading it from the test is the same as /status, without a round trip.
    import sqlite3

    with sqlite3.connect(bot.config_path.parent / "cw.db") as db:
        n = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
    return f"Pending deliveries: {n}"


async def test_private_subscription_receives_its_alert(tmp_path, serve, telegram, feed_server):
    path, url = _setup(tmp_path, serve, telegram)
    async with Bot(path, telegram) as bot:
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


HOSTILE = [
    ("too_long", "/why " + "x" * 5000, "too long"),
    ("control_chars", "/why Nvidia\u0000H20", "control characters"),
    ("yaml_injection", "/watch chips x: {evil: 1}", "letters, digits"),
    ("yaml_newline_key", "/watch chips B300\ndatabase: /etc/passwd", "control characters"),
    ("unknown_category", "/watch gadgets B300", "no watchlist 'gadgets'"),
    ("category_shape", "/watch ../etc B300", "a category is lowercase"),
    ("bad_duration", "/mute Nvidia forever", "duration like 30m"),
    ("too_long_mute", "/mute Nvidia 90d", "between 1 minute and 30 days"),
    ("too_short_mute", "/mute Nvidia 0.5m", "between 1 minute and 30 days"),
    ("recent_not_number", "/recent lots", "a number from 1 to 20"),
]


async def test_hostile_arguments_are_refused_and_replies_escaped(tmp_path, serve, telegram):
    # An admin for each command: no reply waits for the pace of a chat just written to.
    admins = [ADMIN + i for i in range(len(HOSTILE))]
    path, _ = _setup(tmp_path, serve, telegram, admins=admins)
    before = path.read_text()
    async with Bot(path, telegram) as bot:
        for admin, (_, command, expected) in zip(admins, HOSTILE, strict=True):
            reply = await bot.ask(admin, command)
            assert expected in reply, (command[:40], reply)
        echoed = await bot.ask(USER, "/why <b>Nvidia</b> & <script>H20</script> export controls")
        assert "<script>H20</script>" in echoed, "shown literally: escaped, not parsed"
    assert path.read_text() == before, "no hostile input reached the config file"


async def test_watch_previews_what_the_term_would_have_matched(tmp_path, serve, telegram, caplog):
    items = [
        {
            "title": "Nvidia B300 shipments to China face new export controls",
            "guid": "b1",
            "link": "https://n.example/b1",
            "date": ago(minutes=3),
        },
        {
            "title": "B300 racks arrive at Oracle",
            "guid": "b2",
            "link": "https://n.example/b2",
            "date": ago(minutes=2),
        },
        {
            "title": "Huawei phone sales rise",
            "guid": "h1",
            "link": "https://n.example/h1",
            "date": ago(minutes=1),
        },
    ]
    path, _ = _setup(tmp_path, serve, telegram, items)
    with caplog.at_level(logging.INFO, logger="chipwatch"):
        async with Bot(path, telegram, first_run_spread=0) as bot:
            await bot.wait_for(
                lambda: "feed_polled status=ok feed=Wire" in caplog.text, "the first poll"
            )
            reply = await bot.ask(ADMIN, "/watch chips B300")
    assert "added B300 to chips" in reply
    assert "In the last 7 days it would have matched 2 items:" in reply
    assert "• Nvidia B300 shipments to China face new export controls — Wire" in reply
    assert "• B300 racks arrive at Oracle — Wire" in reply
    assert "Huawei" not in reply.split("matched", 1)[1]


async def test_one_bot_and_one_budget_for_the_token(tmp_path, serve, telegram):
    """The channel sink, personal chats, command replies and admin notices share one Bot and
    one 30-a-second budget: every sendMessage the fake saw was counted in that budget."""
    from alerts.commands import Commands
    from alerts.runtime import Runtime
    from alerts.store import open_store
    from alerts.types import Alert, utcnow

    path, _ = _setup(tmp_path, serve, telegram)
    config = load_config(path)
    store = open_store(config.database)
    runtime = Runtime(config, store)
    try:
        client = runtime.telegram
        commands = Commands(runtime, client=client)
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
        await commands.notify_admins("config not applied")
        sent = telegram.calls_to("sendMessage")
        assert len(sent) == 3, [(c.get("chat_id"), c.get("status")) for c in sent]
        assert len(counted) == 3, "one budget counted every send"
        assert all(c["status"] == 200 for c in sent), "no 429: the admin's chat was paced once"
    finally:
        await runtime.aclose()
        store.close()


async def test_recent_counts_follow_ups_and_why_explains_where_one_went(tmp_path, serve, telegram):
    path, _ = _setup(tmp_path, serve, telegram)
    store = open_store(tmp_path / "cw.db")
    story = "US curbs Nvidia H20 exports"
    followup = "Nvidia halts H20 output after Beijing warning"
    record(
        store,
        "Wire",
        alerting_item("s", story, feed="Wire", destinations=("telegram",), story_id=1),
    )
    record(
        store,
        "Bloomberg",
        alerting_item(
            "f",
            followup,
            feed="Bloomberg",
            destinations=("telegram",),
            story_id=2,
            thread=1,
            decision="follow-up of story 1 (similarity 0.31 < 0.4; shared: nvidia, h20)",
        ),
    )
    store.close()
    async with Bot(path, telegram) as bot:
        posts = await bot.wait_for(lambda: len(telegram.sent) >= 2 and telegram.sent, "alerts")
        assert posts[1]["reply_to_message_id"] == posts[0]["message_id"], "a quiet reply"
        recent = (await bot.ask(USER, "/recent")).split("\n")
        assert recent[0].startswith(f"• {story} — Wire · ")
        assert recent[0].endswith(" · +1 follow-up")
        assert recent[1].startswith(f"   ↳ {followup} — Bloomberg · ")
        why = await bot.ask(USER + 1, f"/why {followup.lower()}")  # a chat each: no pacing
        assert why.startswith(f"“{followup.lower()}”\n"), "the match explanation first"
        assert f"a quiet follow-up to “{story}”" in why
        assert "decision: follow-up of story 1 (similarity 0.31 < 0.4; shared: nvidia, h20)" in why
        why = await bot.ask(USER + 2, f"/why {story}")
        assert "a new story (1 follow-up under it)\ndecision: not recorded" in why
