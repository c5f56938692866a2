"""Bot commands as plain function calls: a ``Request`` in, the reply out, on a real SQLite
store and a real ``Runtime`` (no bot process, no Bot API). ``tests/test_commands.py`` keeps
the few that go end to end through python-telegram-bot and the fake Bot API."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from alerts.bot.handlers import NOT_A_COMMAND, Request, Services, handle
from alerts.config import load_config
from alerts.ops import HealthCheck
from alerts.runtime import Runtime
from alerts.scheduler import Scheduler
from alerts.store import open_store
from tests.fakes.telegram_api import parse_html
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    alerting_item,
    deliveries,
    read_only_directory,
    record,
)
from tests.test_commands import ADMIN, CONFIG_TEMPLATE, USER

NOW = datetime(2026, 12, 5, 14, 30, tzinfo=timezone.utc)
# The end-to-end tests' config; nothing is fetched, and nothing is sent (no Bot API listens at
# NO_SERVER) unless a test asks for ``sending_bot``.
NO_SERVER = "http://127.0.0.1:9/bot"
NO_SERVER_TOKEN = "123456789:AAwellFormedButNothingIsSentNoServer"
CONFIG = CONFIG_TEMPLATE.format(
    url="http://127.0.0.1:9/wire.xml",
    channel=CHANNEL,
    base_url=NO_SERVER,
    admins=ADMIN,
    ops='  listen: ""\n',
)


class Bot:
    """The handlers with a running bot's services, asked directly."""

    def __init__(self, path):
        self.path = path
        self.closed = False
        self.store = open_store(path.parent / "cw.db")
        self.runtime = Runtime(load_config(path), self.store)
        scheduler = Scheduler(poll=self.runtime.poll, deliver=self.runtime.deliver)
        scheduler.last_tick = time.monotonic()
        self.services = Services(runtime=self.runtime, health=HealthCheck(self.runtime, scheduler))

    def ask(self, user, text, **kw):
        """The reply as Telegram shows it (HTML parsed as the fake Bot API parses it)."""
        reply = self.ask_html(user, text, **kw)
        return None if reply is None else parse_html(reply)[0]

    def ask_html(self, user, text, *, now=NOW, private=True, chat=None):
        command, args = "", text
        if text.startswith("/"):
            head, _, args = text.partition(" ")
            command = head[1:].casefold()
        request = Request(
            user_id=user,
            chat_id=chat or user,
            private=private,
            is_admin=user == ADMIN,
            command=command,
            args=args,
            now=now,
        )
        return handle(request, self.services)

    async def aclose(self):
        if not self.closed:
            self.closed = True
            await self.runtime.aclose()
            self.store.close()


async def bot_on(config: str, tmp_path, monkeypatch, *, token: str = NO_SERVER_TOKEN):
    """A ``Bot`` on this config text (a fixture's body: yields it, closes it after)."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    bot = Bot(path)
    try:
        yield bot
    finally:
        await bot.aclose()


@pytest.fixture
async def bot(tmp_path, monkeypatch):
    async for b in bot_on(CONFIG, tmp_path, monkeypatch):
        yield b


@pytest.fixture
async def sending_bot(tmp_path, monkeypatch, telegram):
    """The same, with its channel on the fake Bot API: what it delivers is sent."""
    config = CONFIG.replace(NO_SERVER, telegram.base_url)
    async for b in bot_on(config, tmp_path, monkeypatch, token=telegram.token):
        yield b


def _alert(store, guid, title, **story):
    return record(
        store,
        "Wire",
        alerting_item(guid, title, feed="Wire", destinations=("telegram",), **story),
    )


async def test_public_commands_answer_everyone(bot):
    _alert(bot.store, "p1", "China approves Nvidia H200 imports", story_id=1)
    assert "/watchlist" in bot.ask(USER, "/start")
    assert "/why" in bot.ask(USER, "/help")
    watchlist = bot.ask(USER, "/watchlist")
    assert "chips (2): H200, H20" in watchlist and "chip-trade: all of export_terms" in watchlist
    status = bot.ask(USER, "/status")
    assert "Health: ok" in status
    assert "Feeds: 0 OK, 0 failing, 1 not polled yet" in status
    assert "Alerts today: 1" in status and "Pending deliveries: 1" in status
    assert "Channel: delivering" in status
    assert "China approves Nvidia H200 imports — Wire" in bot.ask(USER, "/recent 3")
    why = bot.ask(USER, "/why US bans Nvidia H20 export controls")
    assert "ALERT: rule(s) chip-trade held" in why and "H20" in why
    assert "don't know that command" in bot.ask(USER, "/frobnicate")


async def test_item8_list_is_an_alias_of_watchlist(bot):
    assert bot.ask(USER, "/list") == bot.ask(USER, "/watchlist")
    assert "/watchlist (or /list)" in bot.ask(USER, "/help")


async def test_item8_plain_text_points_to_help_in_a_private_chat(bot):
    assert bot.ask(USER, "hello, what can you do?") == NOT_A_COMMAND
    assert "/help" in NOT_A_COMMAND
    assert bot.ask(USER, "chatter in a group", private=False, chat=-100123) is None


async def test_admin_commands_refuse_non_admins_politely(bot, caplog):
    before = bot.path.read_text()
    with caplog.at_level(logging.WARNING, logger="chipwatch"):
        for command in (
            "/watch chips B300",
            "/unwatch chips H20",
            "/mute Nvidia 1h",
            "/unmute Nvidia",
            "/pause",
            "/resume",
        ):
            assert "only the bot's admins" in bot.ask(USER, command)
    assert bot.path.read_text() == before
    assert caplog.text.count("command_refused") == 6 and f"user={USER}" in caplog.text


async def test_watch_edits_the_file_and_keeps_its_comments(bot):
    reply = bot.ask(ADMIN, "/watch chips B300")
    assert "added B300 to chips" in reply
    text = bot.path.read_text()
    assert "# chipwatch test config — this comment must survive /watch" in text
    assert "# guard: the Hyundai van" in text
    assert "    - H20\n    - B300\n  companies:" in text
    assert "removed B300 from chips" in bot.ask(ADMIN, "/unwatch chips B300")
    assert "B300" not in bot.path.read_text()


async def test_item1_watch_replies_when_config_cannot_be_written(bot, caplog):
    """A config file the bot may not write (Docker: root-owned /app, a :ro mount) used to
    leave the admin without a reply; now the reply says why, and nothing changed."""
    before = bot.path.read_text()
    with caplog.at_level(logging.ERROR, logger="chipwatch"), read_only_directory(bot.path.parent):
        watch = bot.ask(ADMIN, "/watch chips B300")
        unwatch = bot.ask(ADMIN, "/unwatch chips H20")
    for reply in (watch, unwatch):
        assert reply.startswith(f"⚠️ {bot.path} could not be written (")
        assert "nothing changed" in reply and "README: Docker" in reply
    assert bot.path.read_text() == before
    assert "config_write_failed" in caplog.text


async def test_a_bug_in_a_command_is_answered_and_logged(bot, caplog):
    bot.store.close()  # every store call now fails, as a bug would
    with caplog.at_level(logging.ERROR, logger="chipwatch"):
        reply = bot.ask(ADMIN, "/mute Nvidia 1h")
    bot.store = open_store(bot.path.parent / "cw.db")  # for the fixture's aclose
    bot.runtime.store = bot.store
    assert reply.startswith("⚠️ that failed (") and "it is in the log" in reply
    assert "command_failed command=/mute" in caplog.text


async def test_mutes_and_pause_survive_a_restart(bot, tmp_path):
    assert "Huawei muted until 05 Dec 16:30 UTC" in bot.ask(ADMIN, "/mute huawei 2h")
    assert "paused" in bot.ask(ADMIN, "/pause")
    await bot.aclose()
    again = Bot(bot.path)  # a new start on the same database
    try:
        assert "Muted: huawei until 05 Dec 16:30 UTC" in again.ask(USER, "/watchlist")
        status = again.ask(USER, "/status")
        assert "Channel: paused (alerts are queued)" in status
        assert "destination telegram is paused (/resume to release it)" in status
        assert "muted terms drop out: no alert" in again.ask(
            USER, "/why Huawei hit by export controls"
        )
        # The mute ends on the clock it was given.
        later = NOW + timedelta(hours=3)
        assert "Muted" not in again.ask(USER, "/watchlist", now=later)
        assert "0 queued alerts go out now" in again.ask(ADMIN, "/resume")
        assert "unmuted" in again.ask(ADMIN, "/unmute Huawei")
    finally:
        await again.aclose()


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


@pytest.mark.parametrize("command, expected", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
async def test_hostile_arguments_are_refused(bot, command, expected):
    before = bot.path.read_text()
    assert expected in bot.ask(ADMIN, command)
    assert bot.path.read_text() == before, "no hostile input reached the config file"


async def test_replies_escape_what_they_echo(bot):
    echoed = bot.ask(USER, "/why <b>Nvidia</b> & <script>H20</script> export controls")
    assert "<script>H20</script>" in echoed, "shown literally: escaped, not parsed"


async def test_watch_previews_what_the_term_would_have_matched(bot):
    for guid, title in (
        ("b1", "Nvidia B300 shipments to China face new export controls"),
        ("b2", "B300 racks arrive at Oracle"),
        ("h1", "Huawei phone sales rise"),
    ):
        _alert(bot.store, guid, title, story_id=None)
    reply = bot.ask(ADMIN, "/watch chips B300", now=datetime.now(timezone.utc))
    assert "added B300 to chips" in reply
    assert "In the last 7 days it would have matched 2 items:" in reply
    assert "• Nvidia B300 shipments to China face new export controls — Wire" in reply
    assert "• B300 racks arrive at Oracle — Wire" in reply
    assert "Huawei" not in reply.split("matched", 1)[1]


async def test_subscriptions_are_per_private_chat(bot):
    assert "subscribe in a private chat" in bot.ask(USER, "/subscribe H20", private=False)
    assert "subscribed to term H20" in bot.ask(USER, "/subscribe h20")
    assert "already subscribed" in bot.ask(USER, "/subscribe H20")
    assert "term H20" in bot.ask(USER, "/subscriptions")
    assert "neither a watched term nor a rule" in bot.ask(USER, "/subscribe B999")
    assert "No subscriptions" in bot.ask(USER + 1, "/subscriptions")
    assert "Unsubscribed from H20" in bot.ask(USER, "/unsubscribe H20")


async def test_a_suspended_subscriber_who_writes_again_is_welcomed_back(bot):
    bot.ask(USER, "/subscribe H20")
    bot.store.suspend_subscriber(
        USER, f"telegram:{USER}", reason="Forbidden: bot was blocked by the user", now=NOW
    )
    assert bot.store.subscriptions(USER) == []
    reply = bot.ask(USER, "/subscriptions")
    assert reply.startswith("👋 Welcome back: your 1 subscription is active again.\n\n")
    assert reply.endswith("• term H20")
    assert any(s.name == f"telegram:{USER}" for s in bot.runtime.deliverer.sinks)
    assert "Welcome back" not in bot.ask(USER, "/subscriptions"), "said once"


async def test_recent_counts_follow_ups_and_why_explains_where_one_went(bot):
    story = "US curbs Nvidia H20 exports"
    followup = "Nvidia halts H20 output after Beijing warning"
    _alert(bot.store, "s", story, story_id=1)
    record(
        bot.store,
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
    recent = bot.ask(USER, "/recent").split("\n")
    assert recent[0].startswith(f"• {story} — Wire · ")
    assert recent[0].endswith(" · +1 follow-up")
    assert recent[1].startswith(f"   ↳ {followup} — Bloomberg · ")
    why = bot.ask(USER, f"/why {followup.lower()}")
    assert why.startswith(f"“{followup.lower()}”\n"), "the match explanation first"
    assert f"a quiet follow-up to “{story}”" in why
    assert "decision: follow-up of story 1 (similarity 0.31 < 0.4; shared: nvidia, h20)" in why
    why = bot.ask(USER, f"/why {story}")
    assert "a new story (1 follow-up under it)\ndecision: not recorded" in why


def _channel_posts(telegram):
    return [m["shown_text"] for m in telegram.sent if m["chat_id"] == CHANNEL_ID]


async def test_resume_releases_the_alerts_queued_while_paused(sending_bot, telegram):
    bot = sending_bot
    assert "paused" in bot.ask(ADMIN, "/pause")
    _alert(bot.store, "q1", "US widens export controls on Nvidia H20", story_id=1)
    await bot.runtime.deliver()
    assert _channel_posts(telegram) == [], "held while paused"
    assert "1 queued alerts go out now" in bot.ask(ADMIN, "/resume")
    await bot.runtime.deliver()
    [post] = _channel_posts(telegram)
    assert "US widens export controls on Nvidia H20" in post
    assert bot.store.count_pending("telegram") == 0


async def test_a_paused_channel_stays_paused_across_a_reload_that_changes_destinations(
    sending_bot, telegram
):
    bot = sending_bot
    assert "paused" in bot.ask(ADMIN, "/pause")
    _alert(bot.store, "r1", "US widens export controls on Nvidia H20", story_id=1)
    text = bot.path.read_text()
    assert f"admins: [{ADMIN}]" in text
    bot.path.write_text(text.replace(f"admins: [{ADMIN}]", f"admins: [{ADMIN}, 333]"))
    old = bot.runtime.deliverer
    assert (await bot.runtime.reload_if_changed()).status == "applied"
    assert bot.runtime.deliverer is not old, "new destinations: new sinks, a new deliverer"
    await bot.runtime.deliver()
    assert _channel_posts(telegram) == [], "still held"
    assert bot.store.count_pending("telegram") == 1
    assert "Channel: paused (alerts are queued)" in bot.ask(USER, "/status")


def _subscriber_and_alert(bot, telegram, guid):
    """USER subscribed to H20 and ADMIN able to get notices (both have started the bot), and
    an alert queued for the channel and for USER's chat."""
    telegram.add_chat(USER, "private")
    telegram.add_chat(ADMIN, "private")
    assert "subscribed to term H20" in bot.ask(USER, "/subscribe H20")
    item = alerting_item(
        guid,
        "US widens export controls on Nvidia H20",
        feed="Wire",
        destinations=("telegram", f"telegram:{USER}"),
        story_id=1,
    )
    [alert_id] = record(bot.store, "Wire", item)
    return alert_id


@pytest.mark.parametrize(
    "gone, reason",
    [("forget", "Chat not found"), ("deactivate", "Forbidden: user is deactivated")],
    ids=["chat_not_found", "user_deactivated"],
)
async def test_a_subscriber_whose_chat_is_gone_is_suspended(
    sending_bot, telegram, caplog, gone, reason
):
    bot = sending_bot
    _subscriber_and_alert(bot, telegram, "g1")
    getattr(telegram, gone)(USER)
    with caplog.at_level(logging.INFO, logger="chipwatch"):
        await bot.runtime.deliver()
    assert bot.store.subscriptions(USER) == []
    assert f"subscription_suspended chat={USER} subscriptions=1" in caplog.text
    assert "destination_paused" not in caplog.text
    [notice] = [m["shown_text"] for m in telegram.sent if m["chat_id"] == ADMIN]
    assert f"A subscriber ({USER}) can no longer be written to ({reason})" in notice
    assert len(_channel_posts(telegram)) == 1, "the channel is not affected"
    status = bot.ask(USER + 1, "/status")
    assert "Channel: delivering" in status and "Subscribers: 0 (1 suspended)" in status


async def test_a_revoked_token_pauses_delivery_and_suspends_no_subscriber(
    sending_bot, telegram, caplog
):
    """A 401 is the bot's own problem, not the subscriber's: their subscription stays, and
    everything waits for a new token."""
    bot = sending_bot
    alert_id = _subscriber_and_alert(bot, telegram, "t1")
    telegram.revoke()
    with caplog.at_level(logging.INFO, logger="chipwatch"):
        await bot.runtime.deliver()
    assert [kind for _, kind, _ in bot.store.subscriptions(USER)] == ["term"]
    assert "subscription_suspended" not in caplog.text
    assert bot.runtime.deliverer.is_paused("telegram")
    assert "destination_paused destination=telegram " in caplog.text
    assert {r["status"] for r in deliveries(bot.store, alert_id)} == {"pending"}
    assert telegram.sent == []
    assert "Subscribers: 1" in bot.ask(USER + 1, "/status")
