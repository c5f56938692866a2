"""A fake Slack incoming webhook on loopback.

Like ``https://hooks.slack.com/services/T…/B…/…`` it takes a POST of a JSON object (or a form
field ``payload=<json>``), answers ``200`` with the plain-text body ``ok``, and answers errors as
a status plus a short plain-text code: ``400 invalid_payload`` (not JSON / not an object),
``400 no_text`` (neither a non-empty ``text`` nor ``blocks``/``attachments``),
``400 invalid_blocks`` (blocks not a list of typed objects, more than 50, or a section/header
text over Slack's limits), ``404 no_service`` (any other path) and ``429 rate_limited`` with a
``Retry-After`` header in whole seconds when posts come faster than ``interval`` seconds apart.

Slack does *not* reject unescaped ``&``, ``<`` or ``>`` in mrkdwn (it just renders them
wrongly), so neither does this fake; use :func:`unescaped_specials` to assert escaping.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts.loopback import LoopbackServer

DEFAULT_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

# <https://x|label>, <mailto:a@b|label>, <@U123>, <#C123|name>, <!here>, <!subteam^S1>, <!date^…>
_CONTROL_RE = re.compile(r"<(?:(?:https?://|mailto:|tel:)[^\s<>|]+|[@#!][^\s<>|]+)(?:\|([^<>]*))?>")
_ESCAPE_RE = re.compile(r"&(?:amp|lt|gt);")


def unescaped_specials(text: str) -> list[tuple[int, str]]:
    """Raw ``&``, ``<``, ``>`` in Slack mrkdwn that are not an ``&amp;``/``&lt;``/``&gt;`` escape
    or part of a ``<url|label>`` / ``<@U…>`` / ``<#C…>`` / ``<!…>`` control sequence.

    Returns ``[(index, char), ...]``; an empty list means the text is escaped correctly.
    ``&`` inside a link label still has to be escaped and is reported.
    """
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _CONTROL_RE.match(text, i)
            if m:
                if m.group(1) is not None:  # the label may hold escapes but no raw '&'
                    label_start = m.start(1)
                    for j, lc in enumerate(m.group(1)):
                        if lc == "&" and not _ESCAPE_RE.match(text, label_start + j):
                            found.append((label_start + j, "&"))
                i = m.end()
                continue
            found.append((i, "<"))
        elif ch == ">":
            found.append((i, ">"))
        elif ch == "&":
            m = _ESCAPE_RE.match(text, i)
            if m:
                i = m.end()
                continue
            found.append((i, "&"))
        i += 1
    return found


def invalid_blocks(blocks: Any) -> bool:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return True
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return True
        text = block.get("text")
        if block["type"] in ("section", "header"):
            if text is not None and (
                not isinstance(text, dict)
                or not isinstance(text.get("text"), str)
                or not text["text"]
            ):
                return True
            limit = 3000 if block["type"] == "section" else 150
            if isinstance(text, dict) and len(text.get("text", "")) > limit:
                return True
            if block["type"] == "section" and text is None and not block.get("fields"):
                return True
    return False


class FakeSlack(LoopbackServer):
    """A loopback Slack incoming webhook. Constructor arguments (all optional):

    path: the webhook path (default ``/services/T00000000/B00000000/XXXX…``).
    interval: minimum seconds between accepted posts (Slack: about one per second).
    time_scale: real seconds per "Slack second" (0.01 -> a 1 s interval lasts 10 ms);
        ``Retry-After`` is reported in Slack seconds.
    clock: monotonic clock (default time.monotonic).
    """

    def __init__(
        self,
        *,
        path: str = DEFAULT_PATH,
        interval: float = 1.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self.time_scale = time_scale
        self.clock = clock
        self.received: list[dict] = []  # accepted payloads, in order
        self.requests: list[dict] = []  # every request: path, headers, body, status, response
        self._lock = threading.Lock()
        self._last_accepted: float | None = None
        self._faults: list[dict] = []
        self._serve_requests(self._handle, "FakeSlack", methods=("GET", "POST", "PUT"))

    # ---- lifecycle ----

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def destination(self) -> str:
        """``destinations.slack`` for a config that posts here (its host stands in for
        hooks.slack.com)."""
        return f'{{webhook_host: "127.0.0.1:{self.port}"}}'

    # ---- controls ----

    def fail_next(
        self, n: int = 1, status: int = 500, retry_after: int | None = None, body: str | None = None
    ) -> None:
        """The next ``n`` posts fail with ``status`` (429 gets ``Retry-After``, default 1)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        default = {
            429: "rate_limited",
            500: "internal_error",
            503: "service_unavailable",
            403: "action_prohibited",
            404: "channel_not_found",
            410: "channel_is_archived",
            400: "invalid_payload",
        }
        with self._lock:
            self._faults.append(
                {
                    "remaining": n,
                    "status": status,
                    "retry_after": retry_after,
                    "body": body if body is not None else default.get(status, "error"),
                }
            )

    unescaped_specials = staticmethod(unescaped_specials)

    def texts(self) -> list[str]:
        """The ``text`` of every accepted payload."""
        return [p.get("text", "") for p in self.received]

    # ---- HTTP ----

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        record: dict[str, Any] = {
            "path": urlsplit(req.path).path,
            "method": req.command,
            "headers": dict(req.headers),
            "body": body,
            "timestamp": time.time(),
        }
        status, text, headers, payload = self._decide(req, record["path"], body)
        record.update(status=status, response=text, payload=payload)
        self.requests.append(record)
        self._respond(req, status, text.encode(), "text/plain; charset=utf-8", headers)

    def _decide(
        self, req: BaseHTTPRequestHandler, path: str, body: bytes
    ) -> tuple[int, str, dict, Any]:
        if path != self.path:
            return 404, "no_service", {}, None
        if req.command != "POST":
            return 400, "invalid_payload", {}, None
        with self._lock:
            for fault in self._faults:
                if fault["remaining"] > 0:
                    fault["remaining"] -= 1
                    self._faults = [f for f in self._faults if f["remaining"] > 0]
                    headers = (
                        {"Retry-After": str(fault["retry_after"])}
                        if fault["retry_after"] is not None
                        else {}
                    )
                    return fault["status"], fault["body"], headers, None
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = body
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8", "replace"))
            if "payload" not in form:
                return 400, "invalid_payload", {}, None
            raw = form["payload"][0].encode()
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400, "invalid_payload", {}, None
        if not isinstance(payload, dict):
            return 400, "invalid_payload", {}, payload
        text = payload.get("text")
        blocks = payload.get("blocks")
        if text is not None and not isinstance(text, str):
            return 400, "invalid_payload", {}, payload
        if blocks is not None and invalid_blocks(blocks):
            return 400, "invalid_blocks", {}, payload
        if not (text and text.strip()) and not blocks and not payload.get("attachments"):
            return 400, "no_text", {}, payload
        with self._lock:
            now = self.clock()
            gap = self.interval * self.time_scale
            if (
                self.interval
                and self._last_accepted is not None
                and now - self._last_accepted < gap
            ):
                wait = (self._last_accepted + gap - now) / self.time_scale
                retry = max(1, math.ceil(wait - 1e-9))
                return 429, "rate_limited", {"Retry-After": str(retry)}, payload
            self._last_accepted = now
            self.received.append(payload)
        return 200, "ok", {}, payload
