"""A fake Telegram Bot API server on loopback, strict in the ways the real one is.

Point the real client at it::

    with FakeTelegram(chats={"@chipwatch_test": {"id": -1001234567890, "type": "channel",
                                                 "title": "chipwatch test"}}) as fake:
        async with telegram.Bot(fake.token, base_url=fake.base_url) as bot:
            await bot.send_message("@chipwatch_test", "<b>hi</b>", parse_mode="HTML")
        assert fake.sent[0]["text"] == "<b>hi</b>"

What it mirrors from the real service (tdlib / telegram-bot-api sources):

* URLs ``/bot<TOKEN>/<method>``; method names are case-insensitive; GET or POST; parameters from
  the query string, ``application/x-www-form-urlencoded`` (what python-telegram-bot sends: every
  non-string value JSON-encoded into a form field), ``application/json`` or
  ``multipart/form-data``.
* Malformed token -> 404 ``Not Found``; well-formed but unknown token -> 401 ``Unauthorized``.
* ``parse_mode=HTML`` is parsed by a port of tdlib's ``parse_html``: the same allowed tags, the same
  error texts and *UTF-8 byte* offsets, ``&lt; &gt; &amp; &quot;`` and numeric references decoded
  (the ``;`` is optional), any other ``&`` kept literally (real Telegram accepts ``AT&T``; pass
  ``strict_ampersand=True`` to reject it anyway, with a description that says it is this fake's
  rule).  The parsed text is trimmed like tdlib does and then measured in UTF-16 code units.
* Replies: ``reply_parameters`` (a JSON ReplyParameters object: ``message_id``, optional
  ``chat_id``, ``allow_sending_without_reply``…) or the older ``reply_to_message_id``; a reply to
  a message the chat does not have (never sent, or deleted with ``deleteMessage`` or
  ``delete_message()``) is a 400 ``message to be replied not found`` unless
  ``allow_sending_without_reply`` is true (then it is sent as no reply). The sent message carries
  ``reply_to_message`` like Telegram's answer, and ``sent`` records ``reply_to_message_id``,
  ``reply_parameters`` and ``disable_notification``.
* Chats and tokens that stop working: ``kick()`` (403 ``bot was kicked from the … chat``, or in a
  private chat ``bot was blocked by the user``), ``deactivate()`` (a user who deleted their
  account: 403 ``user is deactivated``), ``forget()`` (a chat that no longer exists: 400
  ``chat not found``), ``revoke()`` (a token revoked with @BotFather: every call 401
  ``Unauthorized``).
* Flood control: at most one message per ``per_chat_interval`` seconds to one chat,
  ``per_minute_limit`` per 60 s to a group/supergroup/channel, ``global_per_second`` per second
  overall; answers 429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``.
  ``time_scale`` shrinks every window (0.01 -> one "Telegram second" lasts 10 ms);
  ``retry_after`` is reported in Telegram seconds, so wait ``retry_after * time_scale``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from email import policy as email_policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from alerts.loopback import LoopbackServer

DEFAULT_TOKEN = "1234567890:AAFakeTokenForChipwatchTests_0123456"

MAX_MESSAGE_UTF16 = 4096
TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
REDACTED = "<redacted>"

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)

# descriptions used by fail_next() when none is given
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# what nginx in front of api.telegram.org answers on 502/504: HTML, not JSON
_NGINX_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """An error answer: HTTP status == error_code, plus the description and parameters."""

    def __init__(
        self,
        status: int,
        description: str,
        parameters: dict | None = None,
        raw_body: bytes | None = None,
    ):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.raw_body = raw_body  # sent instead of the JSON error object when set


class EntityParseError(Exception):
    """tdlib's parse_html error text (without the "can't parse entities: " prefix)."""


# --------------------------------------------------------------------------------------------
# text measuring and HTML parsing (a port of tdlib td/telegram/MessageEntity.cpp parse_html)
# --------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length the way Telegram counts it: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)


def _is_space(c: int) -> bool:  # td::is_space; 0 is the C string terminator
    return c in (0x20, 0x09, 0x0D, 0x0A, 0x00, 0x0B)


def _is_alpha(c: int) -> bool:
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _is_digit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def _is_hex(c: int) -> bool:
    return _is_digit(c) or 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66


def _decode_html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """(code point, position after the entity), or (0, pos) when ``&`` starts no entity."""
    n = len(data)

    def at(i: int) -> int:
        return data[i] if i < n else 0

    end = pos + 1
    res = 0
    if at(pos + 1) == 0x23:  # '#'
        end += 1
        if at(pos + 2) == 0x78:  # 'x'
            end += 1
            while _is_hex(at(end)):
                res = res * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while _is_digit(at(end)):
                res = res * 10 + at(end) - 0x30
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while _is_alpha(at(end)):
            end += 1
        res = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(data[pos + 1 : end], 0)
        if not res:
            return 0, pos
    if at(end) == 0x3B:  # ';' is optional
        end += 1
    return res, end


def _checked_link(url: str) -> str | None:
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    if re.match(r"^(https?|tg|ton)://", url, re.IGNORECASE):
        return url
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) and not re.match(r"^[^/]+\.[^/]+:\d", url):
        return None  # javascript:, mailto: ... are not kept as text links
    if "." in url.split("/")[0]:
        return "http://" + url
    return None


def parse_html(text: str, *, strict_ampersand: bool = False) -> tuple[str, list[dict]]:
    """Parse Bot API HTML like tdlib does: (plain text, entities with UTF-16 offsets).

    Raises EntityParseError with tdlib's message (byte offsets are into the UTF-8 text).
    """
    data = text.encode("utf-8", "surrogatepass")
    n = len(data)

    def at(i: int) -> int:
        return data[i] if i < n else 0

    out = bytearray()
    entities: list[dict] = []
    utf16 = 0
    nested: list[list[Any]] = []  # [tag, argument, utf16 offset, out position]
    i = 0
    while i < n:
        c = data[i]
        if c == 0x26:  # '&'
            code, new_i = _decode_html_entity(data, i)
            if code:
                utf16 += 2 if code > 0xFFFF else 1
                out += chr(code).encode("utf-8", "surrogatepass")
                i = new_i
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {i} (rejected by FakeTelegram(strict_ampersand'
                    f"=True); real Telegram keeps it literally)"
                )
        if c != 0x3C:  # not '<'
            if (c & 0xC0) != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            out.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != 0x2F:  # a start tag
            while not _is_space(at(i)) and at(i) != 0x3E:
                i += 1
            if at(i) == 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].lower().decode("utf-8", "replace")
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            while at(i) != 0x3E:
                while at(i) != 0 and _is_space(at(i)):
                    i += 1
                if at(i) == 0x3E:
                    break
                attr_begin = i
                while not _is_space(at(i)) and at(i) not in b"=>/\"'":
                    i += 1
                attr = data[attr_begin:i]
                if not attr:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while at(i) != 0 and _is_space(at(i)):
                    i += 1
                if at(i) != 0x3D:  # no '=': a valueless attribute
                    if at(i) == 0:
                        raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    if tag == "blockquote" and attr == b"expandable":
                        argument = "1"
                    continue
                i += 1
                while at(i) != 0 and _is_space(at(i)):
                    i += 1
                if at(i) == 0:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if at(i) not in (0x27, 0x22):  # a name token
                    token_begin = i
                    while _is_alpha(at(i)) or _is_digit(at(i)) or at(i) in (0x2E, 0x2D):
                        i += 1
                    value = data[token_begin:i].lower()
                    if not _is_space(at(i)) and at(i) != 0x3E:
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:  # a quoted string
                    quote = at(i)
                    i += 1
                    buf = bytearray()
                    while at(i) != quote and at(i) != 0:
                        if at(i) == 0x26:
                            code, new_i = _decode_html_entity(data, i)
                            if code:
                                buf += chr(code).encode("utf-8", "surrogatepass")
                                i = new_i
                                continue
                        buf.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = bytes(buf)
                if at(i) == 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
                sval = value.decode("utf-8", "replace")
                if tag == "a" and attr == b"href":
                    argument = sval
                elif tag == "code" and attr == b"class" and sval.startswith("language-"):
                    argument = sval[9:]
                elif tag == "span" and attr == b"class" and sval.startswith("tg-"):
                    argument = sval[3:]
                elif tag == "tg-emoji" and attr == b"emoji-id":
                    argument = sval
                elif tag == "blockquote" and attr == b"expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            nested.append([tag, argument, utf16, len(out)])
        else:  # an end tag
            if not nested:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            while not _is_space(at(i)) and at(i) != 0x3E:
                i += 1
            end_tag = data[begin + 2 : i].lower().decode("utf-8", "replace")
            while _is_space(at(i)) and at(i) != 0:
                i += 1
            if at(i) != 0x3E:
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            tag, argument, offset, out_pos = nested[-1]
            if end_tag and end_tag != tag:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {begin}, expected "
                    f'"</{tag}>", found "</{end_tag}>"'
                )
            if utf16 > offset:
                length = utf16 - offset
                simple = {
                    "i": "italic",
                    "em": "italic",
                    "b": "bold",
                    "strong": "bold",
                    "s": "strikethrough",
                    "strike": "strikethrough",
                    "del": "strikethrough",
                    "u": "underline",
                    "ins": "underline",
                    "tg-spoiler": "spoiler",
                    "span": "spoiler",
                }
                last = entities[-1] if entities else None
                if tag in simple:
                    entities.append({"type": simple[tag], "offset": offset, "length": length})
                elif tag == "tg-emoji":
                    if not argument.isdigit() or int(argument) == 0:
                        raise EntityParseError("Invalid custom emoji identifier specified")
                    entities.append(
                        {
                            "type": "custom_emoji",
                            "offset": offset,
                            "length": length,
                            "custom_emoji_id": argument,
                        }
                    )
                elif tag == "a":
                    url = argument or bytes(out[out_pos:]).decode("utf-8", "replace")
                    checked = _checked_link(url)
                    if checked is not None:
                        entities.append(
                            {
                                "type": "text_link",
                                "offset": offset,
                                "length": length,
                                "url": checked,
                            }
                        )
                elif tag == "pre":
                    if (
                        last
                        and last["type"] == "code"
                        and last["offset"] == offset
                        and last["length"] == length
                        and last.get("_language")
                    ):
                        last["type"] = "pre"
                        last["language"] = last.pop("_language")
                    else:
                        entities.append({"type": "pre", "offset": offset, "length": length})
                elif tag == "code":
                    if (
                        last
                        and last["type"] == "pre"
                        and last["offset"] == offset
                        and last["length"] == length
                        and argument
                    ):
                        last["language"] = argument
                    else:
                        entity = {"type": "code", "offset": offset, "length": length}
                        if argument:
                            entity["_language"] = argument
                        entities.append(entity)
                elif tag == "blockquote":
                    entities.append(
                        {
                            "type": "expandable_blockquote" if argument else "blockquote",
                            "offset": offset,
                            "length": length,
                        }
                    )
            nested.pop()
        i += 1  # past '>'
    if nested:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{nested[-1][0]}"')
    for entity in entities:
        entity.pop("_language", None)
    try:
        plain = bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML "
            "entities, check for unmatched surrogate code units"
        ) from None
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, entities


def _trim(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """tdlib's fix_formatted_text trimming: rtrim whitespace, ltrim ' '/'\\n' before entities."""
    stripped = text.rstrip(" \t\r\n\x0b\x0c")
    end = utf16_len(stripped)
    kept = []
    for e in entities:
        if e["offset"] >= end:
            continue
        e = dict(e)
        e["length"] = min(e["length"], end - e["offset"])
        if e["length"] > 0:
            kept.append(e)
    first_entity = min((e["offset"] for e in kept), default=end)
    lead = 0
    while lead < len(stripped) and lead < first_entity and stripped[lead] in " \n":
        lead += 1
    if lead:
        stripped = stripped[lead:]
        for e in kept:
            e["offset"] -= lead
    return stripped, kept


_BOT_COMMAND_RE = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


def bot_command_entities(text: str) -> list[dict]:
    """``bot_command`` entities as Telegram attaches them to incoming messages."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: m.start()]),
            "length": utf16_len(m.group(0)),
        }
        for m in _BOT_COMMAND_RE.finditer(text)
    ]


# --------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------


def _as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on")


class FakeTelegram(LoopbackServer):
    """A loopback Bot API. Constructor arguments (all optional):

    tokens: tokens accepted (iterable, or mapping token -> getMe overrides). Default
        ``{DEFAULT_TOKEN}``.
    chats: mapping ``"@username"`` or id -> ``{"id", "type", "title"/"first_name", "username"}``.
    per_chat_interval: minimum seconds between messages to one chat (Telegram: 1.0).
    per_minute_limit: messages per 60 s to one group/supergroup/channel (Telegram: 20).
    global_per_second: messages per second over all chats (Telegram: 30).
    time_scale: real seconds per "Telegram second" for all flood windows (1.0 = real time).
    rate_limited_methods: methods that count for flood control (default: sendMessage).
    strict_ampersand: also reject a bare ``&`` in HTML (real Telegram does not).
    clock: monotonic clock for flood control (default time.monotonic).
    port: the loopback port (default: any free one); a restart on the old port after close()
        is a Bot API that went away and came back.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] | Mapping[str, dict] | None = None,
        chats: Mapping[Any, dict] | None = None,
        per_chat_interval: float = 1.0,
        per_minute_limit: int | None = 20,
        global_per_second: int | None = 30,
        time_scale: float = 1.0,
        rate_limited_methods: Iterable[str] = ("sendMessage",),
        strict_ampersand: bool = False,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        if tokens is None:
            tokens = [DEFAULT_TOKEN]
        token_info = dict(tokens) if isinstance(tokens, Mapping) else {t: {} for t in tokens}
        if not token_info:
            raise ValueError("FakeTelegram needs at least one token")
        self.tokens: dict[str, dict] = {}
        for tok, overrides in token_info.items():
            bot_id = int(tok.split(":", 1)[0]) if tok.split(":", 1)[0].isdigit() else 1
            self.tokens[tok] = {
                "id": bot_id,
                "is_bot": True,
                "first_name": "chipwatch test bot",
                "username": "chipwatch_test_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
                **(overrides or {}),
            }
        self.token: str = next(iter(self.tokens))
        self.per_chat_interval = per_chat_interval
        self.per_minute_limit = per_minute_limit
        self.global_per_second = global_per_second
        self.time_scale = time_scale
        self.rate_limited_methods = {m.lower() for m in rate_limited_methods}
        self.strict_ampersand = strict_ampersand
        self.clock = clock

        # records (read them under no lock: list appends are atomic); ``calls`` in order of
        # arrival, each with ``status`` None until it is answered
        self.sent: list[dict] = []
        self.edits: list[dict] = []
        self.calls: list[dict] = []
        self.messages: dict[tuple[int, int], str] = {}
        self.message_json: dict[tuple[int, int], dict] = {}

        self.chats: dict[int, dict] = {}
        self._usernames: dict[str, int] = {}
        for key, spec in (chats or {}).items():
            spec = dict(spec)
            if isinstance(key, str) and key.startswith("@"):
                spec.setdefault("username", key[1:])
            elif "id" not in spec:
                spec["id"] = int(key)
            self.add_chat(**spec)
        self.kicked: set[int] = set()
        self.deactivated: set[int] = set()

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self._faults: list[dict] = []
        self._next_message_id: dict[int, int] = {}
        self._send_times: dict[int, deque] = {}
        self._global_times: deque = deque()
        self._updates: dict[str, list[dict]] = {t: [] for t in self.tokens}
        self._update_ids = itertools.count(700_000_001)
        self._poll_generation: dict[str, int] = {t: 0 for t in self.tokens}
        self._holds: list[dict] = []
        self._released = threading.Event()

        self._serve_requests(self._handle, "FakeTelegram", port=port)

    # ---- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self._released.set()
        with self._cond:  # end long polls first, so the server can shut down at once
            self._closed = True
            self._cond.notify_all()
        super().close()

    stop = close

    @property
    def base_url(self) -> str:
        """For ``telegram.Bot(token, base_url=...)``: PTB appends ``<token>/<method>``."""
        return f"http://127.0.0.1:{self.port}/bot"

    def method_url(self, method: str, token: str | None = None) -> str:
        return f"{self.base_url}{token or self.token}/{method}"

    # ---- test controls ----------------------------------------------------------------------

    def add_chat(
        self,
        id: int,  # noqa: A002 - Telegram's own field names
        type: str = "private",  # noqa: A002
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        **extra: Any,
    ) -> dict:
        chat = {"id": int(id), "type": type}
        if type == "private":
            chat["first_name"] = first_name or title or f"User {id}"
        else:
            chat["title"] = title or first_name or f"Chat {id}"
        if username:
            chat["username"] = username.lstrip("@")
        chat.update(extra)
        self.chats[chat["id"]] = chat
        if username:
            self._usernames[chat["username"].lower()] = chat["id"]
        return chat

    def kick(self, chat: int | str) -> None:
        """The bot was removed from this chat (or blocked by this user): sends get 403."""
        self.kicked.add(self._resolve_known(chat)["id"])

    def unkick(self, chat: int | str) -> None:
        self.kicked.discard(self._resolve_known(chat)["id"])

    def deactivate(self, user: int) -> None:
        """The user deleted their account: sends to their private chat get 403."""
        chat = self._resolve_known(user)
        if chat["type"] != "private":
            raise ValueError(f"{user!r} is not a user's private chat")
        self.deactivated.add(chat["id"])

    def forget(self, chat: int | str) -> None:
        """The chat no longer exists (or the bot never met it): sends get 400 chat not found."""
        with self._lock:
            found = self._resolve_known(chat)
            del self.chats[found["id"]]
            if "username" in found:
                self._usernames.pop(found["username"].lower(), None)

    def revoke(self, token: str | None = None) -> None:
        """The token was revoked (@BotFather /revoke): every call with it gets 401."""
        with self._lock:
            del self.tokens[token or self.token]

    def delete_message(self, chat: int | str, message_id: int) -> bool:
        """The message is deleted from the chat (as by an admin): replies to it and edits of
        it fail from now on. False when the chat had no such message."""
        chat_id = self._resolve_known(chat)["id"]
        with self._lock:
            self.messages.pop((chat_id, message_id), None)
            return self.message_json.pop((chat_id, message_id), None) is not None

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: int | None = None,
        description: str | None = None,
        method: str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        """Make the next ``n`` API calls (of ``method``, or any) fail with ``status``.

        429 answers carry ``parameters.retry_after`` (default 1 if not given); 502/504 answer an
        nginx HTML page like the real front end unless a description is given; ``body`` replaces
        the response body entirely.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                {
                    "remaining": n,
                    "status": status,
                    "retry_after": retry_after,
                    "description": description,
                    "method": method.lower() if method else None,
                    "body": body,
                }
            )

    def hold_next(self, method: str) -> threading.Event:
        """Carry out the next ``method`` call (a message is in the chat) but keep its answer
        until ``release_held()``: a send in flight, for crash tests. The returned event is
        set once a call is being held."""
        held = threading.Event()
        with self._lock:
            self._holds.append({"method": method.lower(), "held": held})
        return held

    def release_held(self) -> None:
        self._released.set()

    def push_update(self, update: dict, token: str | None = None) -> dict:
        """Queue an update for getUpdates (``update_id`` assigned when missing)."""
        update = dict(update)
        with self._cond:
            update.setdefault("update_id", next(self._update_ids))
            self._updates[token or self.token].append(update)
            self._cond.notify_all()
        return update

    def push_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        chat_type: str = "private",
        *,
        first_name: str | None = None,
        username: str | None = None,
        token: str | None = None,
    ) -> dict:
        """Queue a realistic ``message`` update from a user (bot_command entities included).

        Private chats are created for the user; other chat types are created when unknown.
        """
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
            "language_code": "en",
        }
        if username:
            user["username"] = username
        with self._lock:
            if chat_type == "private":
                chat_id = user_id
                if chat_id not in self.chats:
                    self.add_chat(
                        user_id, "private", first_name=user["first_name"], username=username
                    )
            elif int(chat_id) not in self.chats:
                self.add_chat(int(chat_id), chat_type, title=f"Test {chat_type}")
            chat = self.chats[int(chat_id)]
            message_id = self._new_message_id(chat["id"])
        message = {
            "message_id": message_id,
            "from": user,
            "chat": self._chat_short(chat),
            "date": int(time.time()),
            "text": text,
        }
        entities = bot_command_entities(text)
        if entities:
            message["entities"] = entities
        key = "channel_post" if chat_type == "channel" else "message"
        if key == "channel_post":
            message.pop("from")
            message["sender_chat"] = self._chat_short(chat)
        with self._lock:
            self.messages[(chat["id"], message_id)] = text
            self.message_json[(chat["id"], message_id)] = message
        return self.push_update({key: message}, token=token)

    def pending_updates(self, token: str | None = None) -> list[dict]:
        with self._lock:
            return list(self._updates[token or self.token])

    def calls_to(self, method: str) -> list[dict]:
        return [c for c in self.calls if c["method"].lower() == method.lower()]

    def clear_records(self) -> None:
        with self._lock:
            for rec in (self.sent, self.edits, self.calls):
                rec.clear()

    # ---- HTTP plumbing ----------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        if self._closed:
            # Gone, also for a client's kept-alive connection (http.server would go on serving
            # it after shutdown, at once and forever: a client would poll getUpdates in a loop).
            req.close_connection = True
            return
        split = urlsplit(req.path)
        parts = split.path.split("/")
        method = parts[2] if len(parts) >= 3 else ""
        token = parts[1][3:] if len(parts) >= 2 and parts[1].startswith("bot") else None
        record = {
            "method": method,
            "path": f"/bot{REDACTED}/{method}" if token is not None else split.path,
            "http_method": req.command,
            "content_type": req.headers.get("Content-Type", ""),
            "params": {},
            "timestamp": time.time(),
            "status": None,  # until answered: a long poll is seen while it waits
        }
        self.calls.append(record)  # on arrival, so a test can wait for a call in flight
        try:
            body = self._read_body(req)
            if token is None or len(parts) != 3 or not TOKEN_RE.match(token):
                raise ApiError(404, "Not Found")
            if token not in self.tokens:
                raise ApiError(401, "Unauthorized")
            params = self._parse_params(split.query, record["content_type"], body)
            record["params"] = params
            self._inject_fault(method, record)
            handler = self._methods().get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            result = handler(token, params)
            if self._closed:  # a long poll that close() ended: no answer, as from a dead server
                req.close_connection = True
                return
        except ApiError as err:
            payload: dict[str, Any] = {
                "ok": False,
                "error_code": err.status,
                "description": err.description,
            }
            if err.parameters:
                payload["parameters"] = err.parameters
            record.update(status=err.status, description=err.description)
            if err.raw_body is not None:
                self._respond(req, err.status, err.raw_body, "text/html")
            else:
                self._respond(req, err.status, json.dumps(payload).encode(), "application/json")
            return
        record.update(status=200, result=result)
        with self._lock:
            hold = next((h for h in self._holds if h["method"] == method.lower()), None)
            if hold is not None:
                self._holds.remove(hold)
        if hold is not None:
            hold["held"].set()
            self._released.wait(60)
        self._respond(
            req, 200, json.dumps({"ok": True, "result": result}).encode(), "application/json"
        )

    @staticmethod
    def _read_body(req: BaseHTTPRequestHandler) -> bytes:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    req.rfile.readline()
                    return b"".join(chunks)
                chunks.append(req.rfile.read(size))
                req.rfile.readline()
        length = int(req.headers.get("Content-Length") or 0)
        return req.rfile.read(length) if length else b""

    @staticmethod
    def _parse_params(query: str, ctype: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if not body:
            return params
        kind = ctype.split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                obj = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(
                    400, f"Bad Request: can't parse JSON encoded request: {exc}"
                ) from None
            if not isinstance(obj, dict):
                raise ApiError(400, "Bad Request: JSON encoded request must be an object")
            params.update(obj)
        elif kind == "multipart/form-data":
            msg = BytesParser(policy=email_policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
            )
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if not name:
                    continue
                payload = part.get_payload(decode=True) or b""
                if part.get_filename():
                    params[name] = {"filename": part.get_filename(), "content": payload}
                else:
                    params[name] = payload.decode("utf-8", "replace")
        else:  # x-www-form-urlencoded, and what clients send without a content type
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    def _inject_fault(self, method: str, record: dict) -> None:
        with self._lock:
            for fault in self._faults:
                if fault["remaining"] > 0 and fault["method"] in (None, method.lower()):
                    fault["remaining"] -= 1
                    break
            else:
                return
            self._faults = [f for f in self._faults if f["remaining"] > 0]
        status = fault["status"]
        record["injected"] = True
        description = fault["description"]
        parameters = None
        if status == 429:
            description = description or f"Too Many Requests: retry after {fault['retry_after']}"
            parameters = {"retry_after": fault["retry_after"]}
        elif fault["retry_after"] is not None:
            parameters = {"retry_after": fault["retry_after"]}
        err = ApiError(
            status, description or _DEFAULT_DESCRIPTIONS.get(status, "Error"), parameters
        )
        if fault["body"] is not None:
            body = fault["body"]
            err.raw_body = body.encode() if isinstance(body, str) else body
        elif status in (502, 504) and fault["description"] is None:
            phrase = "Bad Gateway" if status == 502 else "Gateway Time-out"
            err.raw_body = _NGINX_PAGE.format(code=status, phrase=phrase).encode()
        raise err

    # ---- helpers ----------------------------------------------------------------------------

    def _methods(self) -> dict[str, Callable[[str, dict], Any]]:
        # Only what chipwatch calls (through python-telegram-bot's Bot and Application), and
        # deleteMessage (what an admin does to a message); anything else is a 404, as for a
        # method Telegram does not have.
        return {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "deletemessage": self._delete_message,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
        }

    @staticmethod
    def _chat_short(chat: dict) -> dict:
        keys = ("id", "type", "title", "username", "first_name", "last_name", "is_forum")
        return {k: chat[k] for k in keys if k in chat}

    def _new_message_id(self, chat_id: int) -> int:
        with self._lock:
            mid = self._next_message_id.get(chat_id, 1)
            self._next_message_id[chat_id] = mid + 1
            return mid

    def _resolve_known(self, chat: int | str) -> dict:
        found = self._lookup_chat(chat)
        if found is None:
            raise KeyError(f"unknown chat {chat!r}")
        return found

    def _lookup_chat(self, chat: Any) -> dict | None:
        if isinstance(chat, bool):
            return None
        if isinstance(chat, int):
            return self.chats.get(chat)
        text = str(chat).strip()
        if re.fullmatch(r"-?\d+", text):
            return self.chats.get(int(text))
        if text.startswith("@"):
            cid = self._usernames.get(text[1:].lower())
            return self.chats.get(cid) if cid is not None else None
        return None

    def _chat_param(self, params: dict) -> dict:
        raw = params.get("chat_id")
        if raw is None or str(raw).strip() == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._lookup_chat(raw)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat["id"] in self.kicked:
            if chat["type"] == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat['type']} chat")
        if chat["id"] in self.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        return chat

    @staticmethod
    def _int_param(params: dict, name: str, default: int | None = None) -> int | None:
        value = params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError(400, f"Bad Request: invalid {name} specified") from None

    @staticmethod
    def _json_param(params: dict, name: str, what: str) -> Any:
        value = params.get(name)
        if value is None or not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None

    def _formatted_text(self, params: dict) -> tuple[str, list[dict]]:
        """Validate text/parse_mode like telegram-bot-api + tdlib; (shown text, entities)."""
        text = params.get("text")
        if text is None or text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        parse_mode = str(params.get("parse_mode") or "").strip().lower()
        entities: list[dict] = []
        if parse_mode == "html":
            try:
                plain, entities = parse_html(text, strict_ampersand=self.strict_ampersand)
            except EntityParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif parse_mode in ("", "none", "markdown", "markdownv2"):
            # Markdown is accepted but NOT validated or rendered by this fake.
            plain = text
            given = self._json_param(params, "entities", "message entities")
            if isinstance(given, list) and not parse_mode:
                entities = [dict(e) for e in given if isinstance(e, dict)]
        else:
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        plain, entities = _trim(plain, entities)
        if not plain.strip():
            raise ApiError(400, "Bad Request: text must be non-empty")
        if utf16_len(plain) > MAX_MESSAGE_UTF16:
            raise ApiError(400, "Bad Request: message is too long")
        return plain, entities

    def _link_preview(self, params: dict) -> tuple[dict | None, bool | None]:
        lpo = self._json_param(params, "link_preview_options", "link preview options")
        dwpp = _as_bool(params.get("disable_web_page_preview"))
        return (lpo if isinstance(lpo, dict) else None), dwpp

    def _check_flood(self, chat: dict) -> None:
        """Raise 429 if this message would exceed a limit; otherwise count it."""
        now = self.clock()
        scale = self.time_scale

        def too_many(wait_real: float) -> ApiError:
            retry = max(1, math.ceil(wait_real / scale - 1e-9))
            return ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

        with self._lock:
            times = self._send_times.setdefault(chat["id"], deque())
            if self.global_per_second:
                window = 1.0 * scale
                while self._global_times and self._global_times[0] <= now - window:
                    self._global_times.popleft()
                if len(self._global_times) >= self.global_per_second:
                    raise too_many(self._global_times[0] + window - now)
            if self.per_chat_interval and times:
                gap = self.per_chat_interval * scale
                if now - times[-1] < gap:
                    raise too_many(times[-1] + gap - now)
            if self.per_minute_limit and chat["type"] in ("group", "supergroup", "channel"):
                window = 60.0 * scale
                recent = [t for t in times if t > now - window]
                if len(recent) >= self.per_minute_limit:
                    raise too_many(recent[-self.per_minute_limit] + window - now)
            times.append(now)
            while len(times) > max(self.per_minute_limit or 1, 1) + 1:
                times.popleft()
            self._global_times.append(now)

    # ---- methods ----------------------------------------------------------------------------

    def _get_me(self, token: str, params: dict) -> dict:
        return dict(self.tokens[token])

    def _reply_parameters(self, chat: dict, params: dict) -> tuple[dict | None, dict | None]:
        """(the ReplyParameters given, the message replied to); Telegram's 400s for a bad
        object or a message the chat does not have."""
        given = self._json_param(params, "reply_parameters", "reply parameters")
        if given is None and params.get("reply_to_message_id") not in (None, ""):
            given = {  # the older form, as Telegram still accepts it
                "message_id": self._int_param(params, "reply_to_message_id"),
                "allow_sending_without_reply": _as_bool(params.get("allow_sending_without_reply")),
            }
        if given is None:
            return None, None
        if not isinstance(given, dict):
            raise ApiError(400, "Bad Request: object expected as reply parameters")
        message_id = given.get("message_id")
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        target = chat
        if given.get("chat_id") not in (None, ""):
            target = self._lookup_chat(given["chat_id"])
            if target is None:
                raise ApiError(400, "Bad Request: chat to be replied not found")
        with self._lock:
            replied = self.message_json.get((target["id"], message_id))
        if replied is None:
            # allow_sending_without_reply works only for replies in the same chat
            if not _as_bool(given.get("allow_sending_without_reply")) or target is not chat:
                raise ApiError(400, "Bad Request: message to be replied not found")
        return given, replied

    def _send_message(self, token: str, params: dict) -> dict:
        chat = self._chat_param(params)
        plain, entities = self._formatted_text(params)
        lpo, dwpp = self._link_preview(params)
        reply_markup = self._json_param(params, "reply_markup", "reply keyboard markup")
        reply_parameters, replied = self._reply_parameters(chat, params)
        if "sendmessage" in self.rate_limited_methods:
            self._check_flood(chat)
        message_id = self._new_message_id(chat["id"])
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat_short(chat),
            "text": plain,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = self._chat_short(chat)
        else:
            message["from"] = {
                k: v
                for k, v in self.tokens[token].items()
                if k in ("id", "is_bot", "first_name", "username")
            }
        if entities:
            message["entities"] = entities
        if lpo:
            message["link_preview_options"] = lpo
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup
        if replied is not None:
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        with self._lock:
            self.messages[(chat["id"], message_id)] = plain
            self.message_json[(chat["id"], message_id)] = message
            self.sent.append(
                {
                    "chat_id": chat["id"],
                    "chat": params.get("chat_id"),
                    "text": str(params["text"]),
                    "shown_text": plain,
                    "entities": entities,
                    "parse_mode": params.get("parse_mode"),
                    "message_id": message_id,
                    "link_preview_options": lpo,
                    "disable_web_page_preview": dwpp,
                    "preview_disabled": bool(dwpp or (lpo or {}).get("is_disabled")),
                    "disable_notification": _as_bool(params.get("disable_notification")),
                    "reply_parameters": reply_parameters,
                    "reply_to_message_id": replied["message_id"] if replied else None,
                    "reply_markup": reply_markup,
                    "timestamp": time.time(),
                    "token": token,
                }
            )
        return message

    def _edit_message_text(self, token: str, params: dict) -> dict | bool:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: message to edit not found")
        chat = self._chat_param(params)
        message_id = self._int_param(params, "message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        plain, entities = self._formatted_text(params)
        lpo, dwpp = self._link_preview(params)
        reply_markup = self._json_param(params, "reply_markup", "reply keyboard markup")
        with self._lock:
            current = self.message_json.get((chat["id"], message_id))
            if current is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            if "from" in current and not current["from"].get("is_bot"):
                raise ApiError(400, "Bad Request: message can't be edited")
            new_markup = (
                reply_markup
                if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup
                else None
            )
            if (
                current["text"] == plain
                and current.get("entities", []) == entities
                and current.get("reply_markup") == new_markup
            ):
                raise ApiError(400, NOT_MODIFIED)
            message = dict(current, text=plain, edit_date=int(time.time()))
            message.pop("entities", None)
            message.pop("reply_markup", None)
            if entities:
                message["entities"] = entities
            if new_markup:
                message["reply_markup"] = new_markup
            self.messages[(chat["id"], message_id)] = plain
            self.message_json[(chat["id"], message_id)] = message
            self.edits.append(
                {
                    "chat_id": chat["id"],
                    "message_id": message_id,
                    "text": str(params["text"]),
                    "shown_text": plain,
                    "entities": entities,
                    "parse_mode": params.get("parse_mode"),
                    "previous_text": current["text"],
                    "link_preview_options": lpo,
                    "disable_web_page_preview": dwpp,
                    "reply_markup": reply_markup,
                    "timestamp": time.time(),
                    "token": token,
                }
            )
        return message

    def _delete_message(self, token: str, params: dict) -> bool:
        chat = self._chat_param(params)
        message_id = self._int_param(params, "message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        if not self.delete_message(chat["id"], message_id):
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    def _get_updates(self, token: str, params: dict) -> list[dict]:
        offset = self._int_param(params, "offset", 0) or 0
        limit = self._int_param(params, "limit", 100) or 100
        limit = min(max(limit, 1), 100)
        timeout = self._int_param(params, "timeout", 0) or 0
        deadline = time.monotonic() + max(timeout, 0)
        with self._cond:
            self._poll_generation[token] += 1
            generation = self._poll_generation[token]
            self._cond.notify_all()  # an older long poll is now terminated (409)
            queue = self._updates[token]
            if offset > 0:
                queue[:] = [u for u in queue if u["update_id"] >= offset]
            elif offset < 0:
                queue[:] = queue[offset:]
            while True:
                if self._poll_generation[token] != generation:
                    raise ApiError(409, _DEFAULT_DESCRIPTIONS[409])
                if queue or self._closed:
                    return [dict(u) for u in queue[:limit]]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _delete_webhook(self, token: str, params: dict) -> bool:
        if _as_bool(params.get("drop_pending_updates")):
            with self._lock:
                self._updates[token].clear()
        return True
