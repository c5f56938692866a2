"""A fake Slack Web API on loopback: the app side of Slack (``chat.postMessage``,
``chat.update``, thread replies), for slack_sdk's ``AsyncWebClient`` pointed at ``base_url``.

What it mirrors from Slack (docs.slack.dev's method pages, and what Slack's SDK maintainers say
about the server's behaviour):

* ``POST /api/<method>`` with the token as ``Authorization: Bearer xoxb-…`` (or a ``token``
  field). No token: ``not_authed``; another token: ``invalid_auth``. Errors are HTTP 200 with
  ``{"ok": false, "error": "<code>"}``, except rate limits: HTTP 429 with ``Retry-After`` (whole
  seconds) and ``{"ok": false, "error": "ratelimited"}``. Unknown methods: ``unknown_method``.
* Bodies as ``application/json`` (what slack_sdk sends) or form-encoded (``blocks`` then a JSON
  string).
* ``chat.postMessage``: the channel by id (``C…``) or name (``#chip-news`` or ``chip-news``);
  unknown: ``channel_not_found``; archived: ``is_archived``; the app not a member:
  ``not_in_channel``. Needs ``text`` or ``blocks`` (``no_text``); blocks are checked like the
  webhook fake does (``invalid_blocks``); text over 40,000 characters is ``msg_too_long``.
  Answers ``{"ok": true, "channel": "<id>", "ts": "<ts>", "message": {...}}``.
* Threads: ``thread_ts`` that is not a timestamp is ``invalid_thread_ts``. The ts of a message of
  the channel makes a reply (the answer's ``message.thread_ts`` is set; ``reply_broadcast``
  true would also show it in the channel). The ts of a message the channel does not have
  (deleted, or never there) is no error: Slack posts the message at the top level, silently,
  and the answer's ``message`` has no ``thread_ts`` (reported for deleted parents; reports from
  2020 describe a reply to a never-existing ts vanishing instead, which this fake does not do).
* ``chat.update``: the channel must be an id (a name is ``channel_not_found``, as on Slack);
  an unknown ts is ``message_not_found``; answers ``{"ok": true, "channel", "ts", "text",
  "message"}``.
* Rate limits: ``chat.postMessage`` about one message a second per channel (a post sooner than
  ``post_interval`` after the last one to that channel gets a 429); ``chat.update`` is Tier 3,
  ``updates_per_minute`` (50) a minute. ``time_scale`` shrinks the windows (0.01: a Slack
  second lasts 10 ms); ``Retry-After`` is in Slack seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from alerts.loopback import LoopbackServer
from tests.fakes.slack_webhook import invalid_blocks

DEFAULT_BOT_TOKEN = "xoxb-1111111111-2222222222-FakeSlackBotTokenForTests"
DEFAULT_CHANNELS = {"#chip-news": "C0CHIPNEWS1"}
_TS_RE = re.compile(r"^\d{1,12}\.\d{1,6}$")
MAX_TEXT = 40_000


class _Error(Exception):
    def __init__(self, code: str, status: int = 200, retry_after: int | None = None):
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after = retry_after


class FakeSlackApi(LoopbackServer):
    """A loopback Slack Web API. Constructor arguments (all optional):

    token: the bot token it accepts (default ``DEFAULT_BOT_TOKEN``).
    channels: ``{"#name": "C…id"}`` of the channels the app is in.
    post_interval: seconds between posts to one channel (Slack: about 1).
    updates_per_minute: ``chat.update`` calls a minute (Tier 3: 50).
    time_scale: real seconds per "Slack second"; clock: monotonic clock.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_BOT_TOKEN,
        channels: Mapping[str, str] | None = None,
        post_interval: float = 1.0,
        updates_per_minute: int = 50,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.channel_ids = {
            name.lstrip("#").lower(): cid for name, cid in (channels or DEFAULT_CHANNELS).items()
        }
        self.post_interval = post_interval
        self.updates_per_minute = updates_per_minute
        self.time_scale = time_scale
        self.clock = clock
        self.posts: list[dict] = []  # accepted chat.postMessage calls, as posted
        self.updates: list[dict] = []  # accepted chat.update calls
        self.calls: list[dict] = []  # every request: method, status, error, params, auth
        self.messages: dict[tuple[str, str], dict] = {}  # (channel id, ts) -> message
        self.archived: set[str] = set()
        self.left: set[str] = set()  # channels the app was removed from
        self._lock = threading.Lock()
        self._faults: list[dict] = []
        self._last_post: dict[str, float] = {}
        self._updates_at: deque[float] = deque()
        self._seq = itertools.count(1)
        self._serve_requests(self._handle, "FakeSlackApi")

    @property
    def base_url(self) -> str:
        """For ``AsyncWebClient(base_url=...)`` and ``destinations.slack.api_base_url``."""
        return f"http://127.0.0.1:{self.port}/api/"

    # ---- controls ----

    def fail_next(
        self,
        n: int = 1,
        error: str = "fatal_error",
        *,
        status: int = 200,
        retry_after: int | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``n`` calls (of ``method``, or any) fail with ``error`` (a 429 carries
        ``Retry-After``, default 1)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                {
                    "remaining": n,
                    "error": error,
                    "status": status,
                    "retry_after": retry_after,
                    "method": method,
                }
            )

    def delete_message(self, channel: str, ts: str) -> bool:
        """Someone deleted the message: updates of it and replies to it find it gone."""
        with self._lock:
            return self.messages.pop((self._channel_id(channel) or channel, ts), None) is not None

    def thread(self, channel: str, ts: str) -> list[dict]:
        """The replies in a message's thread, oldest first."""
        cid = self._channel_id(channel) or channel
        return [p for p in self.posts if p["channel"] == cid and p["thread_ts"] == ts]

    # ---- HTTP ----

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        path = urlsplit(req.path).path
        method = path.rsplit("/", 1)[-1] if path.startswith("/api/") else ""
        record: dict[str, Any] = {"method": method, "timestamp": time.time(), "params": {}}
        headers: dict[str, str] = {}
        try:
            params = self._params(req, body)
            record["params"] = {k: v for k, v in params.items() if k != "token"}
            self._authorize(req, params)
            self._inject_fault(method)
            handler = {
                "chat.postMessage": self._post_message,
                "chat.update": self._update,
            }.get(method)
            if handler is None:
                raise _Error("unknown_method")
            status, answer = 200, {"ok": True, **handler(params)}
        except _Error as err:
            status, answer = err.status, {"ok": False, "error": err.code}
            if err.retry_after is not None:
                headers["Retry-After"] = str(err.retry_after)
        record.update(status=status, error=answer.get("error"), answer=answer)
        self.calls.append(record)
        data = json.dumps(answer).encode()
        self._respond(req, status, data, "application/json; charset=utf-8", headers)

    @staticmethod
    def _params(req: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(urlsplit(req.path).query))
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not body:
            return params
        if ctype == "application/json":
            try:
                obj = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise _Error("invalid_json") from None
            if not isinstance(obj, dict):
                raise _Error("json_not_object")
            params.update(obj)
        elif ctype == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if isinstance(params.get("blocks"), str):
                try:
                    params["blocks"] = json.loads(params["blocks"])
                except ValueError:
                    raise _Error("invalid_blocks_format") from None
        else:
            raise _Error("invalid_post_type")
        return params

    def _authorize(self, req: BaseHTTPRequestHandler, params: dict) -> None:
        auth = req.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else params.get("token")
        if not token:
            raise _Error("not_authed")
        if token != self.token:
            raise _Error("invalid_auth")

    def _inject_fault(self, method: str) -> None:
        with self._lock:
            for fault in self._faults:
                if fault["remaining"] > 0 and fault["method"] in (None, method):
                    fault["remaining"] -= 1
                    self._faults = [f for f in self._faults if f["remaining"] > 0]
                    raise _Error(fault["error"], fault["status"], fault["retry_after"])

    def _channel_id(self, value: str) -> str | None:
        if value in self.channel_ids.values():
            return value
        return self.channel_ids.get(value.lstrip("#").lower())

    def _channel(self, params: dict, *, by_id_only: bool = False) -> str:
        raw = str(params.get("channel") or "")
        cid = raw if raw in self.channel_ids.values() else None
        if cid is None and not by_id_only:
            cid = self._channel_id(raw)
        if cid is None:
            raise _Error("channel_not_found")
        if cid in self.archived:
            raise _Error("is_archived")
        if cid in self.left:
            raise _Error("not_in_channel")
        return cid

    @staticmethod
    def _content(params: dict) -> tuple[str, Any]:
        text, blocks = params.get("text"), params.get("blocks")
        if text is not None and not isinstance(text, str):
            raise _Error("invalid_arguments")
        if blocks is not None and invalid_blocks(blocks):
            raise _Error("invalid_blocks")
        if not (text and text.strip()) and not blocks:
            raise _Error("no_text")
        if text and len(text) > MAX_TEXT:
            raise _Error("msg_too_long")
        return text or "", blocks

    def _too_many(self, wait_real: float) -> _Error:
        retry = max(1, math.ceil(wait_real / self.time_scale - 1e-9))
        return _Error("ratelimited", 429, retry)

    def _post_message(self, params: dict) -> dict:
        cid = self._channel(params)
        text, blocks = self._content(params)
        requested = params.get("thread_ts")
        if requested is not None and not _TS_RE.match(str(requested)):
            raise _Error("invalid_thread_ts")
        with self._lock:
            now = self.clock()
            last = self._last_post.get(cid)
            gap = self.post_interval * self.time_scale
            if self.post_interval and last is not None and now - last < gap:
                raise self._too_many(last + gap - now)
            self._last_post[cid] = now
            ts = f"{int(time.time())}.{next(self._seq):06d}"
            parent = self.messages.get((cid, str(requested))) if requested else None
            thread_ts = str(requested) if parent is not None else None
            message: dict[str, Any] = {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "B0FAKEBOT01",
                "text": text,
                "ts": ts,
            }
            if blocks:
                message["blocks"] = blocks
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent.setdefault("thread_ts", thread_ts)
            self.messages[(cid, ts)] = message
            self.posts.append(
                {
                    "channel": cid,
                    "ts": ts,
                    "thread_ts": thread_ts,
                    "requested_thread_ts": requested,
                    "reply_broadcast": params.get("reply_broadcast"),
                    "unfurl_links": params.get("unfurl_links"),
                    "text": text,
                    "blocks": blocks,
                    "timestamp": time.time(),
                }
            )
        return {"channel": cid, "ts": ts, "message": dict(message)}

    def _update(self, params: dict) -> dict:
        cid = self._channel(params, by_id_only=True)
        ts = str(params.get("ts") or "")
        text, blocks = self._content(params)
        with self._lock:
            now = self.clock()
            window = 60.0 * self.time_scale
            while self._updates_at and self._updates_at[0] <= now - window:
                self._updates_at.popleft()
            if self.updates_per_minute and len(self._updates_at) >= self.updates_per_minute:
                raise self._too_many(self._updates_at[0] + window - now)
            message = self.messages.get((cid, ts))
            if message is None:
                raise _Error("message_not_found")
            self._updates_at.append(now)
            previous = message.get("text", "")
            message.update(text=text, edited={"user": "B0FAKEBOT01", "ts": ts})
            if blocks is not None:
                message["blocks"] = blocks
            self.updates.append(
                {
                    "channel": cid,
                    "ts": ts,
                    "text": text,
                    "blocks": blocks,
                    "previous_text": previous,
                    "timestamp": time.time(),
                }
            )
        return {"channel": cid, "ts": ts, "text": text, "message": dict(message)}
