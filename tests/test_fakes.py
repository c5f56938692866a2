"""The loopback fakes behave like Telegram's Bot API and Slack's incoming webhooks.

Telegram is driven through the real python-telegram-bot client (``base_url`` = the fake), so
these tests also pin down how PTB 22 encodes requests and maps error answers to exceptions.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import re
import ssl
import time
import warnings

import httpx
import pytest
import pytest_asyncio
import telegram
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from telegram.constants import MessageEntityType
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from tests.fakes import (
    DEFAULT_BOT_TOKEN,
    FakeSlack,
    FakeSlackApi,
    FakeTelegram,
    unescaped_specials,
    utf16_len,
)
from tests.support import CHANNEL, CHANNEL_ID

# PTB 22.2+ warns inside RetryAfter.__init__ itself (int -> timedelta migration), not only when
# a caller reads .retry_after; it's PTB's own noise, not something these tests check.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning"
)

TOKEN = "7000000001:AAH-chipwatch-test-token_0123456789"
GROUP_ID = -1009876543210
USER_ID = 424242
CHATS = {
    CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "chipwatch test"},
    GROUP_ID: {"type": "supergroup", "title": "chipwatch admins"},
}


_SSL = ssl.create_default_context()


def make_bot(fake: FakeTelegram, token: str = TOKEN) -> telegram.Bot:
    """The real PTB client aimed at the fake. Sharing one SSL context (unused over http://) only
    saves the ~90 ms PTB's two default httpx clients spend loading CA certificates."""
    return telegram.Bot(
        token,
        base_url=fake.base_url,
        request=HTTPXRequest(httpx_kwargs={"verify": _SSL}),
        get_updates_request=HTTPXRequest(httpx_kwargs={"verify": _SSL}),
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` warns (PTB 22.2+ int->timedelta migration); read it quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@pytest.fixture
def tg():
    with FakeTelegram(tokens={TOKEN}, chats=CHATS) as fake:
        fake.push_message(USER_ID, USER_ID, "/start")  # the user has started the bot
        fake.calls.clear()
        yield fake


@pytest_asyncio.fixture
async def bot(tg):
    async with make_bot(tg) as b:
        tg.calls.clear()  # initialize() called getMe
        yield b


# ---------------------------------------------------------------- Telegram: accepted messages


@pytest.mark.asyncio
async def test_good_html_message_is_accepted_parsed_and_recorded(tg, bot):
    html = '<b>H200</b> export &amp; <a href="https://example.com/a?x=1&amp;y=2">news</a> AT&amp;T'
    msg = await bot.send_message(CHANNEL, html, parse_mode="HTML", disable_web_page_preview=True)

    assert isinstance(msg, telegram.Message)
    assert msg.chat.id == CHANNEL_ID and msg.chat.type == "channel"
    assert msg.text == "H200 export & news AT&T"
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [
        (MessageEntityType.BOLD, 0, 4),
        (MessageEntityType.TEXT_LINK, 14, 4),
    ]
    assert msg.entities[1].url == "https://example.com/a?x=1&y=2"

    [sent] = tg.sent
    assert sent["chat_id"] == CHANNEL_ID and sent["chat"] == CHANNEL
    assert sent["text"] == html and sent["parse_mode"] == "HTML"
    assert sent["message_id"] == msg.message_id
    assert sent["preview_disabled"] is True
    # PTB 22 turns disable_web_page_preview into link_preview_options
    assert sent["link_preview_options"] == {"is_disabled": True}
    assert sent["disable_web_page_preview"] is None
    assert tg.messages[(CHANNEL_ID, msg.message_id)] == "H200 export & news AT&T"

    [call] = tg.calls
    assert call["method"] == "sendMessage" and call["status"] == 200
    assert TOKEN not in call["path"] and call["path"] == "/bot<redacted>/sendMessage"


@pytest.mark.asyncio
async def test_ptb_sends_form_encoded_values_with_json_inside(tg, bot):
    await bot.send_message(
        CHANNEL_ID,
        "plain",
        link_preview_options=telegram.LinkPreviewOptions(is_disabled=True),
        disable_notification=True,
    )
    [call] = tg.calls
    assert call["content_type"] == "application/x-www-form-urlencoded"
    # every value arrives as a string; nested objects are JSON strings
    assert call["params"]["chat_id"] == str(CHANNEL_ID)
    assert call["params"]["disable_notification"] == "true"
    assert json.loads(call["params"]["link_preview_options"]) == {"is_disabled": True}
    assert tg.sent[0]["chat_id"] == CHANNEL_ID and tg.sent[0]["disable_notification"] is True


@pytest.mark.asyncio
async def test_json_and_multipart_bodies_are_understood_too(tg):
    async with httpx.AsyncClient() as client:
        r = await client.post(
            tg.method_url("sendMessage", TOKEN),
            json={"chat_id": CHANNEL_ID, "text": "<i>json</i>", "parse_mode": "HTML"},
        )
        assert r.status_code == 200 and r.json()["result"]["text"] == "json"
        await asyncio.sleep(0)
        r = await client.post(
            tg.method_url("sendMessage", TOKEN),
            data={"chat_id": str(USER_ID), "text": "multipart"},
            files={"dummy": ("a.txt", b"x")},
        )
        assert r.status_code == 200 and r.json()["result"]["chat"]["id"] == USER_ID
    assert [s["text"] for s in tg.sent] == ["<i>json</i>", "multipart"]


@pytest.mark.asyncio
async def test_get_me_and_delete_webhook(tg, bot):
    me = await bot.get_me()
    assert me.id == 7000000001 and me.is_bot
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert tg.pending_updates(TOKEN) == []


# ---------------------------------------------------------------- Telegram: HTML strictness


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "html, telegram_says",
    [
        ("Alert: <foo>x</foo>", 'Unsupported start tag "foo" at byte offset 7'),
        # byte offsets are UTF-8 bytes, not characters: "Чип: " is 8 bytes
        ("Чип: <foo>", 'Unsupported start tag "foo" at byte offset 8'),
        ("price < 5", 'Unsupported start tag "" at byte offset 6'),
        ("a<b", "Unclosed start tag at byte offset 1"),
        ("<b>never closed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>s</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<br/>line", 'Unsupported start tag "br/" at byte offset 0'),
    ],
)
async def test_bad_html_is_rejected_with_telegrams_description(tg, bot, html, telegram_says):
    with pytest.raises(BadRequest) as info:
        await bot.send_message(CHANNEL, html, parse_mode="HTML")
    raw = f"Bad Request: can't parse entities: {telegram_says}"
    assert tg.calls[-1]["status"] == 400 and tg.calls[-1]["description"] == raw
    # PTB strips "Bad Request: " and str.capitalize()s the rest: everything after the first
    # letter is lower-cased ("Unsupported" -> "unsupported", "</B>" stays lower...)
    assert info.value.message == ("Can't parse entities: " + telegram_says).capitalize()
    assert tg.sent == []


@pytest.mark.asyncio
async def test_bare_ampersand_is_kept_literally_like_real_telegram(tg, bot):
    msg = await bot.send_message(CHANNEL, "AT&T &copy; R&D &#38; &lt;ok&gt;", parse_mode="HTML")
    # tdlib decodes only &lt; &gt; &amp; &quot; and numeric references; the rest stays as typed
    assert msg.text == "AT&T &copy; R&D & <ok>"


@pytest.mark.asyncio
async def test_strict_ampersand_mode_rejects_unescaped_ampersand():
    with FakeTelegram(tokens=[TOKEN], chats=CHATS, strict_ampersand=True) as fake:
        async with make_bot(fake) as bot:
            with pytest.raises(BadRequest, match=r'(?i)unescaped "&" at byte offset 2'):
                await bot.send_message(CHANNEL, "AT&T", parse_mode="HTML")
            assert (await bot.send_message(CHANNEL, "AT&amp;T", parse_mode="HTML")).text == "AT&T"


# ---------------------------------------------------------------- Telegram: length and empty


@pytest.mark.asyncio
async def test_length_is_counted_in_utf16_units_after_parsing(tg):
    fake = FakeTelegram(tokens=[TOKEN], chats=CHATS, per_chat_interval=0)
    with fake:
        async with make_bot(fake) as bot:
            assert len((await bot.send_message(CHANNEL, "a" * 4096)).text) == 4096
            with pytest.raises(BadRequest) as info:
                await bot.send_message(CHANNEL, "a" * 4097)
            assert info.value.message == "Message is too long"
            assert fake.calls[-1]["description"] == "Bad Request: message is too long"

            emoji = "\U0001f600"  # outside the BMP: 2 UTF-16 units, 1 Python character
            assert utf16_len(emoji * 2048) == 4096
            await bot.send_message(CHANNEL, emoji * 2048)
            with pytest.raises(BadRequest, match="^Message is too long$"):
                await bot.send_message(CHANNEL, emoji * 2048 + "a")  # len() is only 2049

            # markup and entities don't count; what they decode to does
            await bot.send_message(CHANNEL, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
            await bot.send_message(CHANNEL, "&amp;" * 4096, parse_mode="HTML")
            with pytest.raises(BadRequest, match="^Message is too long$"):
                await bot.send_message(CHANNEL, "&amp;" * 4097, parse_mode="HTML")
            # trailing whitespace is trimmed before measuring, like tdlib does
            assert (await bot.send_message(CHANNEL, "a" * 4096 + "\n\n  ")).text == "a" * 4096
    assert len(fake.sent) == 5


@pytest.mark.asyncio
async def test_empty_text_is_rejected(tg, bot):
    with pytest.raises(BadRequest, match="^Message text is empty$"):
        await bot.send_message(CHANNEL, "")
    # non-empty input that parses/trims to nothing gets tdlib's other message
    with pytest.raises(BadRequest, match="^Text must be non-empty$"):
        await bot.send_message(CHANNEL, "<b> </b>\n", parse_mode="HTML")
    assert tg.sent == []


# ---------------------------------------------------------------- Telegram: flood control


@pytest.mark.asyncio
async def test_second_quick_message_to_one_chat_gets_retry_after(tg, bot):
    await bot.send_message(CHANNEL, "one")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHANNEL, "two")
    assert retry_after_seconds(info.value) == 1
    assert tg.calls[-1]["status"] == 429
    assert tg.calls[-1]["description"] == "Too Many Requests: retry after 1"
    assert [s["text"] for s in tg.sent] == ["one"]
    # another chat is not affected
    await bot.send_message(USER_ID, "elsewhere")


@pytest.mark.asyncio
async def test_waiting_retry_after_lets_the_message_through():
    with FakeTelegram(tokens=[TOKEN], chats=CHATS, time_scale=0.2) as fake:  # 1 s -> 200 ms
        async with make_bot(fake) as bot:
            await bot.send_message(CHANNEL, "one")
            with pytest.raises(RetryAfter) as info:
                await bot.send_message(CHANNEL, "two")
            await asyncio.sleep(retry_after_seconds(info.value) * fake.time_scale)
            await bot.send_message(CHANNEL, "two")
    assert [s["text"] for s in fake.sent] == ["one", "two"]


@pytest.mark.asyncio
async def test_groups_and_channels_get_20_per_minute_private_chats_do_not():
    scale = 0.05  # a Telegram minute lasts 3 s; only the per-minute cap is on
    with FakeTelegram(
        tokens=[TOKEN], chats=CHATS, time_scale=scale, per_chat_interval=0, global_per_second=None
    ) as fake:
        fake.push_message(USER_ID, USER_ID, "/start")
        async with make_bot(fake) as bot:
            start = time.monotonic()
            for i in range(20):
                await bot.send_message(GROUP_ID, f"g{i}")
                await bot.send_message(CHANNEL, f"c{i}")
            with pytest.raises(RetryAfter):
                await bot.send_message(CHANNEL, "c20")
            with pytest.raises(RetryAfter) as info:
                await bot.send_message(GROUP_ID, "g20")
            elapsed_tg = (time.monotonic() - start) / scale
            # the window frees when the first of the 20 is a minute old
            assert 60 - elapsed_tg - 1 <= retry_after_seconds(info.value) <= 60
            for i in range(25):  # the private chat has no per-minute cap
                await bot.send_message(USER_ID, f"p{i}")
    assert sum(s["chat_id"] == GROUP_ID for s in fake.sent) == 20
    assert sum(s["chat_id"] == CHANNEL_ID for s in fake.sent) == 20
    assert sum(s["chat_id"] == USER_ID for s in fake.sent) == 25


def test_defaults_match_telegrams_limits():
    fake = FakeTelegram()
    assert (
        fake.per_chat_interval,
        fake.per_minute_limit,
        fake.global_per_second,
        fake.time_scale,
    ) == (1.0, 20, 30, 1.0)
    fake._httpd.server_close()


def test_global_limit_is_30_per_second():
    now = [1000.0]
    chats = {-100_000_000_0000 - i: {"type": "channel", "title": f"c{i}"} for i in range(31)}
    with FakeTelegram(chats=chats, clock=lambda: now[0]) as fake:
        with httpx.Client() as client:
            codes = [
                client.post(
                    fake.method_url("sendMessage"), data={"chat_id": str(cid), "text": "x"}
                ).status_code
                for cid in chats
            ]
            assert codes == [200] * 30 + [429]
            now[0] += 1.0
            last = list(chats)[-1]
            assert (
                client.post(
                    fake.method_url("sendMessage"), data={"chat_id": str(last), "text": "x"}
                ).status_code
                == 200
            )


# ---------------------------------------------------------------- Telegram: faults and chats


@pytest.mark.asyncio
async def test_fail_next_maps_to_ptb_exceptions(tg, bot):
    tg.fail_next(1, 500)
    with pytest.raises(NetworkError) as info:
        await bot.send_message(CHANNEL, "x")
    assert type(info.value) is NetworkError and info.value.message == "Internal Server Error"
    assert tg.calls[-1]["injected"] and tg.sent == []

    tg.fail_next(1, 502)  # nginx HTML page, like the real front end
    with pytest.raises(NetworkError, match=r"Bad Gateway \(502\)"):
        await bot.send_message(CHANNEL, "x")

    tg.fail_next(1, 429, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHANNEL, "x")
    assert retry_after_seconds(info.value) == 7

    tg.fail_next(1, 401)
    with pytest.raises(InvalidToken):
        await bot.get_me()

    tg.fail_next(
        2,
        403,
        description="Forbidden: bot is not a member of the channel chat",
        method="sendMessage",
    )
    await bot.get_me()  # other methods are not affected
    for _ in range(2):
        with pytest.raises(Forbidden, match="not a member"):
            await bot.send_message(CHANNEL, "x")
    assert (await bot.send_message(CHANNEL, "finally")).text == "finally"
    assert [s["text"] for s in tg.sent] == ["finally"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "control, chat, error, says",
    [
        ("kick", CHANNEL, Forbidden, "Forbidden: bot was kicked from the channel chat"),
        ("kick", USER_ID, Forbidden, "Forbidden: bot was blocked by the user"),
        ("deactivate", USER_ID, Forbidden, "Forbidden: user is deactivated"),
        ("forget", CHANNEL, BadRequest, "Chat not found"),
        (None, "@nobody_here", BadRequest, "Chat not found"),
        (None, 99999, BadRequest, "Chat not found"),  # a user who never started the bot
    ],
    ids=["kicked", "blocked", "deactivated", "forgotten", "unknown_name", "unknown_id"],
)
async def test_chats_that_cannot_be_written_to(tg, bot, control, chat, error, says):
    if control is not None:
        getattr(tg, control)(chat)
    with pytest.raises(error) as info:
        await bot.send_message(chat, "x")
    assert info.value.message == says
    assert tg.sent == []


@pytest.mark.asyncio
async def test_forget_drops_the_chat_by_name_and_id_and_only_users_deactivate(tg, bot):
    tg.forget(CHANNEL)
    with pytest.raises(BadRequest, match="^Chat not found$"):
        await bot.send_message(CHANNEL_ID, "x")
    with pytest.raises(ValueError, match="not a user's private chat"):
        tg.deactivate(GROUP_ID)


@pytest.mark.asyncio
async def test_a_revoked_token_gets_401_for_every_call(tg, bot):
    tg.revoke()
    with pytest.raises(InvalidToken):
        await bot.send_message(GROUP_ID, "x")
    assert tg.calls[-1]["status"] == 401 and tg.sent == []


@pytest.mark.asyncio
async def test_unknown_token_is_rejected():
    with FakeTelegram(tokens=[TOKEN]) as fake:
        with pytest.raises(InvalidToken, match="rejected by the server"):
            async with telegram.Bot("7000000002:AAH-some-other-token", base_url=fake.base_url):
                pass
        assert fake.calls[-1]["status"] == 401
        async with httpx.AsyncClient() as client:
            r = await client.post(fake.base_url + "not-a-token/getMe")
        assert r.status_code == 404 and r.json()["description"] == "Not Found"


# ---------------------------------------------------------------- Telegram: edits


@pytest.mark.asyncio
async def test_edit_message_text(tg, bot):
    msg = await bot.send_message(CHANNEL, "<b>v1</b>", parse_mode="HTML")

    with pytest.raises(BadRequest) as info:  # same shown text and entities
        await bot.edit_message_text(
            "<strong>v1</strong>", CHANNEL, msg.message_id, parse_mode="HTML"
        )
    assert "not modified" in info.value.message
    assert info.value.message.startswith("Message is not modified: specified new message")

    edited = await bot.edit_message_text("v1", CHANNEL, msg.message_id)  # bold dropped: a change
    assert edited.text == "v1" and not edited.entities and edited.edit_date is not None
    edited = await bot.edit_message_text("<i>v2</i>", CHANNEL, msg.message_id, parse_mode="HTML")
    assert edited.text == "v2" and edited.entities[0].type == MessageEntityType.ITALIC
    assert tg.messages[(CHANNEL_ID, msg.message_id)] == "v2"
    assert [e["text"] for e in tg.edits] == ["v1", "<i>v2</i>"]
    assert tg.edits[-1]["previous_text"] == "v1"

    with pytest.raises(BadRequest, match="^Message to edit not found$"):
        await bot.edit_message_text("x", CHANNEL, 9999)
    with pytest.raises(BadRequest, match="^Can't parse entities"):
        await bot.edit_message_text("<x>", CHANNEL, msg.message_id, parse_mode="HTML")


@pytest.mark.asyncio
async def test_replies_quiet_messages_and_deleted_messages(tg, bot):
    story = await bot.send_message(CHANNEL, "US curbs Nvidia H20 exports")
    tg.per_chat_interval = 0
    reply = await bot.send_message(
        CHANNEL,
        "Nvidia halts H20 output",
        reply_parameters=telegram.ReplyParameters(message_id=story.message_id),
        disable_notification=True,
    )
    assert reply.reply_to_message.message_id == story.message_id
    assert reply.reply_to_message.text == "US curbs Nvidia H20 exports"
    sent = tg.sent[-1]
    assert sent["reply_to_message_id"] == story.message_id
    assert sent["reply_parameters"] == {"message_id": story.message_id}
    assert sent["disable_notification"] is True and tg.sent[0]["disable_notification"] is None

    assert await bot.delete_message(CHANNEL, story.message_id) is True
    with pytest.raises(BadRequest, match="^Message to delete not found$"):
        await bot.delete_message(CHANNEL, story.message_id)
    with pytest.raises(BadRequest, match="^Message to be replied not found$"):
        await bot.send_message(
            CHANNEL, "x", reply_parameters=telegram.ReplyParameters(message_id=story.message_id)
        )
    with pytest.raises(BadRequest, match="^Message to be replied not found$"):
        await bot.send_message(CHANNEL, "x", reply_to_message_id=9999)  # the older form
    with pytest.raises(BadRequest, match="^Message to edit not found$"):
        await bot.edit_message_text("y", CHANNEL, story.message_id)
    anyway = await bot.send_message(
        CHANNEL,
        "sent without the reply",
        reply_parameters=telegram.ReplyParameters(
            message_id=story.message_id, allow_sending_without_reply=True
        ),
    )
    assert anyway.reply_to_message is None and tg.sent[-1]["reply_to_message_id"] is None
    # a reply to a message of the chat, by id; the message of another chat is not in this one
    other = await bot.send_message(GROUP_ID, "in the group")
    with pytest.raises(BadRequest, match="^Message to be replied not found$"):
        await bot.send_message(
            CHANNEL, "x", reply_parameters=telegram.ReplyParameters(message_id=other.message_id + 5)
        )
    assert tg.delete_message(GROUP_ID, other.message_id) is True


# ---------------------------------------------------------------- Telegram: getUpdates


@pytest.mark.asyncio
async def test_get_updates_long_poll_returns_a_pushed_command(tg, bot):
    old = await bot.get_updates(timeout=0)  # the /start from the fixture
    tg.calls.clear()
    poll = asyncio.create_task(
        bot.get_updates(offset=old[-1].update_id + 1, timeout=60, read_timeout=90)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()  # it is really waiting
    pushed = tg.push_message(USER_ID, USER_ID, "/status@chipwatch_test_bot now")
    updates = await asyncio.wait_for(poll, 30)  # the push ended the wait, not the 60 s timeout

    [update] = updates
    assert update.update_id == pushed["update_id"]
    msg = update.message
    assert msg.text == "/status@chipwatch_test_bot now"
    assert msg.chat.type == "private" and msg.from_user.id == USER_ID
    [entity] = msg.entities
    assert (entity.type, entity.offset, entity.length) == (MessageEntityType.BOT_COMMAND, 0, 26)
    assert msg.parse_entities([MessageEntityType.BOT_COMMAND]) == {
        entity: "/status@chipwatch_test_bot"
    }
    assert tg.calls[-1]["params"]["timeout"] == "60"

    # offset confirms: the update is not delivered again
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()


@pytest.mark.asyncio
@pytest.mark.slow
async def test_get_updates_honours_timeout_when_nothing_arrives(tg, bot):
    await bot.get_updates(timeout=0)
    last = tg.pending_updates(TOKEN)[-1]["update_id"]
    start = time.monotonic()
    assert await asyncio.wait_for(bot.get_updates(offset=last + 1, timeout=1), 30) == ()
    assert time.monotonic() - start >= 0.9  # it waited out the timeout before answering


@pytest.mark.asyncio
async def test_second_get_updates_terminates_the_first_with_conflict(tg, bot):
    await bot.get_updates(timeout=0)
    offset = tg.pending_updates(TOKEN)[-1]["update_id"] + 1
    first = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient() as client:
        r = await client.post(tg.method_url("getUpdates", TOKEN), data={"timeout": "0"})
    assert r.status_code == 200
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 3)


# ---------------------------------------------------------------- Slack


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def http():
    """One client for all Slack tests: creating an httpx client costs ~50 ms (SSL context)."""
    with httpx.Client() as client:
        yield client


def test_slack_accepts_text_and_answers_ok(slack, http):
    r = http.post(slack.url, json={"text": "*H200* export &amp; more"})
    assert (r.status_code, r.text) == (200, "ok")
    assert r.headers["content-type"].startswith("text/plain")
    assert slack.received == [{"text": "*H200* export &amp; more"}]


def test_slack_accepts_blocks_and_form_encoded_payload(http):
    with FakeSlack(interval=0) as slack:
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
        assert http.post(slack.url, json={"blocks": blocks}).text == "ok"
        r = http.post(slack.url, data={"payload": json.dumps({"text": "form"})})
        assert (r.status_code, r.text) == (200, "ok")
        assert slack.texts() == ["", "form"]


def test_slack_second_quick_post_is_rate_limited_with_retry_after(slack, http):
    assert http.post(slack.url, json={"text": "one"}).status_code == 200
    r = http.post(slack.url, json={"text": "two"})
    assert r.status_code == 429 and r.text == "rate_limited"
    assert r.headers["Retry-After"] == "1"
    assert slack.texts() == ["one"]


def test_slack_retry_after_wait_is_enough(http):
    with FakeSlack(time_scale=0.2) as slack:  # 1 s -> 200 ms
        assert http.post(slack.url, json={"text": "one"}).status_code == 200
        r = http.post(slack.url, json={"text": "two"})
        assert r.status_code == 429
        time.sleep(int(r.headers["Retry-After"]) * slack.time_scale)
        assert http.post(slack.url, json={"text": "two"}).status_code == 200
        assert slack.texts() == ["one", "two"]


@pytest.mark.parametrize(
    "kwargs, status, body",
    [
        (
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_payload",
        ),
        ({"json": ["a", "list"]}, 400, "invalid_payload"),
        ({"json": {}}, 400, "no_text"),
        ({"json": {"text": ""}}, 400, "no_text"),
        ({"json": {"username": "bot"}}, 400, "no_text"),
        ({"json": {"blocks": [{"text": "no type"}]}}, 400, "invalid_blocks"),
        (
            {
                "json": {
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
                }
            },
            400,
            "invalid_blocks",
        ),
    ],
)
def test_slack_rejects_bad_payloads(slack, kwargs, status, body, http):
    r = http.post(slack.url, **kwargs)
    assert (r.status_code, r.text) == (status, body)
    assert slack.received == []


def test_slack_wrong_path_and_fail_next(slack, http):
    r = http.post(slack.url.replace("XXXX", "YYYY", 1), json={"text": "x"})
    assert (r.status_code, r.text) == (404, "no_service")
    slack.fail_next(1, 500)
    assert http.post(slack.url, json={"text": "x"}).status_code == 500
    slack.fail_next(1, 429, retry_after=30)
    r = http.post(slack.url, json={"text": "x"})
    assert (r.status_code, r.headers["Retry-After"]) == (429, "30")
    assert http.post(slack.url, json={"text": "x"}).status_code == 200
    assert slack.received == [{"text": "x"}]
    assert [q["status"] for q in slack.requests] == [404, 500, 429, 200]


def test_slack_does_not_reject_unescaped_text_but_the_helper_finds_it(slack, http):
    raw = "AT&T <b> 5 > 3"
    assert http.post(slack.url, json={"text": raw}).status_code == 200  # Slack accepts it
    assert unescaped_specials(raw) == [(2, "&"), (5, "<"), (7, ">"), (11, ">")]
    assert (
        slack.unescaped_specials(
            "AT&amp;T &lt;b&gt; <https://example.com/a?b=1|the &amp; link> <@U123> <!here>"
        )
        == []
    )
    assert unescaped_specials("<https://x.com|R&D>") == [(16, "&")]
    assert unescaped_specials("&quot;") == [(0, "&")]  # Slack only decodes &amp; &lt; &gt;


# ---------------------------------------------------------------- Slack Web API (an app)


@pytest.fixture
def slack_api():
    with FakeSlackApi() as fake:
        yield fake


def _web(fake, token=DEFAULT_BOT_TOKEN):
    """slack_sdk's own client, without its retry handlers (chipwatch's deliverer retries)."""
    return AsyncWebClient(token=token, base_url=fake.base_url, retry_handlers=[])


async def _slack_error(call):
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value.response.status_code, info.value.response.data["error"]


async def test_slack_api_posts_updates_and_needs_channel_ids_to_update(slack_api):
    web = _web(slack_api)
    posted = await web.chat_postMessage(channel="#chip-news", text="H20 & co")
    assert posted["channel"] == "C0CHIPNEWS1" and re.fullmatch(r"\d+\.\d{6}", posted["ts"])
    assert posted["message"]["text"] == "H20 & co" and "thread_ts" not in posted["message"]
    slack_api.post_interval = 0
    updated = await web.chat_update(channel="C0CHIPNEWS1", ts=posted["ts"], text="H20 & more")
    assert updated["text"] == "H20 & more"
    assert slack_api.updates[0]["previous_text"] == "H20 & co"
    assert await _slack_error(web.chat_update(channel="#chip-news", ts=posted["ts"], text="x")) == (
        200,
        "channel_not_found",
    ), "chat.update takes a channel id only, as on Slack"
    assert await _slack_error(web.chat_update(channel="C0CHIPNEWS1", ts="1.000001", text="x")) == (
        200,
        "message_not_found",
    )
    assert await _slack_error(web.chat_postMessage(channel="#elsewhere", text="x")) == (
        200,
        "channel_not_found",
    )
    no_text = web.api_call("chat.postMessage", json={"channel": "#chip-news"})
    assert await _slack_error(no_text) == (200, "no_text")
    assert await _slack_error(_web(slack_api, "xoxb-wrong").auth_test()) == (200, "invalid_auth")
    assert await _slack_error(
        _web(slack_api, "xoxb-wrong").chat_postMessage(channel="#chip-news", text="x")
    ) == (200, "invalid_auth")
    slack_api.archived.add("C0CHIPNEWS1")
    assert await _slack_error(web.chat_postMessage(channel="#chip-news", text="x")) == (
        200,
        "is_archived",
    )


async def test_slack_api_threads_replies_and_unthreads_a_reply_to_a_deleted_message(slack_api):
    web = _web(slack_api)
    slack_api.post_interval = 0
    story = await web.chat_postMessage(channel="#chip-news", text="story")
    reply = await web.chat_postMessage(channel="C0CHIPNEWS1", text="more", thread_ts=story["ts"])
    assert reply["message"]["thread_ts"] == story["ts"]
    assert [p["text"] for p in slack_api.thread("C0CHIPNEWS1", story["ts"])] == ["more"]
    assert slack_api.messages[("C0CHIPNEWS1", story["ts"])]["reply_count"] == 1
    assert await _slack_error(
        web.chat_postMessage(channel="#chip-news", text="x", thread_ts="yesterday")
    ) == (200, "invalid_thread_ts")
    assert slack_api.delete_message("#chip-news", story["ts"])
    orphan = await web.chat_postMessage(channel="C0CHIPNEWS1", text="late", thread_ts=story["ts"])
    assert "thread_ts" not in orphan["message"], "posted at the top level, no error"
    assert slack_api.posts[-1]["thread_ts"] is None
    assert slack_api.posts[-1]["requested_thread_ts"] == story["ts"]


async def test_slack_api_rate_limits_posts_per_channel_and_updates_per_minute(slack_api):
    web = _web(slack_api)
    posted = await web.chat_postMessage(channel="#chip-news", text="one")
    with pytest.raises(SlackApiError) as info:
        await web.chat_postMessage(channel="#chip-news", text="two")
    response = info.value.response
    assert (response.status_code, response.data["error"]) == (429, "ratelimited")
    assert int(response.headers["Retry-After"]) == 1
    slack_api.updates_per_minute = 2
    for text in ("a", "b"):
        await web.chat_update(channel="C0CHIPNEWS1", ts=posted["ts"], text=text)
    assert await _slack_error(
        web.chat_update(channel="C0CHIPNEWS1", ts=posted["ts"], text="c")
    ) == (429, "ratelimited")


def test_slack_api_takes_form_bodies_and_token_fields(slack_api, http):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    form = {"token": DEFAULT_BOT_TOKEN, "channel": "chip-news", "blocks": json.dumps(blocks)}
    answer = http.post(slack_api.base_url + "chat.postMessage", data=form).json()
    assert answer["ok"] is True and slack_api.posts[-1]["blocks"] == blocks
    answer = http.post(slack_api.base_url + "chat.postMessage", json={"channel": "x"}).json()
    assert answer == {"ok": False, "error": "not_authed"}
    slack_api.fail_next(1, "fatal_error", method="chat.postMessage")
    form["token"] = DEFAULT_BOT_TOKEN
    answer = http.post(slack_api.base_url + "chat.postMessage", data=form).json()
    assert answer == {"ok": False, "error": "fatal_error"}
