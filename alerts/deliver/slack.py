"""Slack delivery, two ways:

- **App** (``SlackAppSink``: a bot token and a channel) through slack_sdk's ``AsyncWebClient``:
  ``chat.postMessage`` (about one message a second per channel), ``chat.update`` when a story
  grows (Tier 3, about 50 a minute), and follow-ups as thread replies (``thread_ts``).
- **Incoming webhook** (``SlackSink``: 1 message a second; 429 carries Retry-After). Webhook
  messages cannot be edited or threaded: Slack gets each story once, and a follow-up is a plain
  message naming its story.

The token and the webhook URL are secrets: neither appears in an error or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError

from .. import USER_AGENT, tls
from ..config import SLACK_API_BASE
from ..errors import Rejected, RetryLater, Unavailable
from ..logs import event, redact
from ..types import Alert
from . import log_not_threaded
from .format import slack_digest, slack_payload
from .pacing import RateLimiter

log = logging.getLogger("chipwatch.slack")

PER_WEBHOOK = (1, 1.05)  # 1/s, with slack for network jitter
PER_CHANNEL = (1, 1.05)  # chat.postMessage: about one message a second per channel
UPDATES = (50, 61.0)  # chat.update is Tier 3: about 50 a minute

# Errors that say the token or the channel is unusable, not this message: pause the destination.
_UNAVAILABLE = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "ekm_access_denied",
    }
)
# Errors worth trying again later (besides 429 and 5xx).
_TRANSIENT = frozenset(
    {"ratelimited", "rate_limited", "fatal_error", "internal_error", "service_unavailable"}
)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def message_ref(channel: str, ts: str) -> str:
    """A Slack message's id as chipwatch stores it: ``C0123ABCD:1712345678.000100``.
    ``chat.update`` needs the channel's id, which only the post's answer gives."""
    return f"{channel}:{ts}"


def parse_ref(ref: str, channel: str) -> tuple[str, str]:
    """(channel id, ts) of a stored message id (a bare ts: in ``channel``)."""
    head, sep, ts = ref.rpartition(":")
    return (head, ts) if sep else (channel, ref)


class SlackAppSink:
    """Posts alerts to one channel as a Slack app (``chat:write``)."""

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        name: str = "slack",
        base_url: str = SLACK_API_BASE,
        per_channel: tuple[int, float] = PER_CHANNEL,
        updates: tuple[int, float] = UPDATES,
        timeout: float = 15.0,
    ):
        self.name = name
        self.channel = channel
        self._token = token
        self._timeout = timeout
        # Imported here: slack_sdk's async client brings aiohttp, a seventh of a second of every
        # start (each CLI command) that only a Slack app needs.
        from slack_sdk.web.async_client import AsyncWebClient

        # No retry handlers: the deliverer owns retries, so that a 429's wait holds the whole
        # destination and every failure is recorded in the outbox.
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=max(1, round(timeout)),
            retry_handlers=[],
            ssl=tls.context(),
            user_agent_prefix=USER_AGENT,
            logger=logging.getLogger("chipwatch.slack.sdk"),
        )
        self.limiter = RateLimiter([per_channel])
        self.edit_limiter = RateLimiter([updates])

    def allowance(self, within: float) -> int:
        return self.limiter.allowance(within)

    def _error(self, exc: SlackApiError) -> Exception:
        """Map a Slack API error onto RetryLater / Rejected / Unavailable."""
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "no error code")
        text = redact(f"slack {code} (HTTP {response.status_code})", [self._token])
        if response.status_code == 429 or code in ("ratelimited", "rate_limited"):
            return RetryLater(text, retry_after=_retry_after(response.headers.get("Retry-After")))
        if code in _UNAVAILABLE:
            return Unavailable(text)
        if response.status_code >= 500 or code in _TRANSIENT:
            return RetryLater(text)
        return Rejected(text)

    async def _call(self, method: str, limiter: RateLimiter, **args: object) -> dict:
        """One Web API call, paced; Slack's errors mapped onto the delivery error tree."""
        import aiohttp  # loaded with the client, in __init__

        await limiter.acquire()
        if self._client.session is None or self._client.session.closed:
            # One connection pool for the sink (slack_sdk would open one per call).
            self._client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            response = await self._client.api_call(method, json=args)
        except SlackApiError as exc:
            raise self._error(exc) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = f"network: {type(exc).__name__}: {exc}"
            raise RetryLater(redact(reason, [self._token])) from None
        return response.data if isinstance(response.data, dict) else {}

    async def _post(self, payload: dict, *, channel: str, thread_ts: str | None = None) -> dict:
        args = dict(payload, channel=channel)
        if thread_ts is not None:
            args.update(thread_ts=thread_ts, reply_broadcast=False)
        return await self._call("chat.postMessage", self.limiter, **args)

    async def send(self, alert: Alert, *, reply_to: str | None = None) -> str | None:
        if alert.thread_of is None or reply_to is None:
            data = await self._post(slack_payload(alert), channel=self.channel)
            return message_ref(data["channel"], data["ts"])
        # A follow-up: a reply in its story's thread, which notifies no one but the thread's
        # followers (no broadcast to the channel).
        channel, thread_ts = parse_ref(reply_to, self.channel)
        data = await self._post(
            slack_payload(alert, replying=True), channel=channel, thread_ts=thread_ts
        )
        ref = message_ref(data["channel"], data["ts"])
        if (data.get("message") or {}).get("thread_ts") != thread_ts:
            # The story's message was deleted: Slack posted the reply at the top level, where
            # it must name the story. The post stands whatever this edit does.
            log_not_threaded(self.name, alert, reply_to, "Slack posted it at the top level")
            try:
                await self.edit(ref, alert)
            except (RetryLater, Rejected, Unavailable) as exc:
                event(
                    log,
                    "followup_rename_failed",
                    logging.WARNING,
                    destination=self.name,
                    alert=alert.id,
                    error=str(exc),
                )
        return ref

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        payload, included = slack_digest(alerts)
        data = await self._post(payload, channel=self.channel)
        return message_ref(data["channel"], data["ts"]), included

    async def send_prepared(self, message: Any) -> str | None:
        data = await self._post(dict(message), channel=self.channel)
        return message_ref(data["channel"], data["ts"])

    async def edit(self, message_id: str, alert: Alert, *, reply_to: str | None = None) -> None:
        """Re-render a sent alert (``chat.update``; a follow-up in its thread keeps the short
        form)."""
        channel, ts = parse_ref(message_id, self.channel)
        payload = slack_payload(alert, replying=reply_to is not None)
        await self._call(
            "chat.update",
            self.edit_limiter,
            channel=channel,
            ts=ts,
            text=payload["text"],
            blocks=payload["blocks"],
        )

    async def aclose(self) -> None:
        session = self._client.session
        if session is not None and not session.closed:
            await session.close()


class SlackSink:
    """Posts alerts to one incoming webhook."""

    def __init__(
        self,
        *,
        webhook_url: str,
        name: str = "slack",
        per_webhook: tuple[int, float] = PER_WEBHOOK,
        timeout: float = 15.0,
    ):
        self.name = name
        self._url = webhook_url
        self._client = httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, verify=tls.context()
        )
        self.limiter = RateLimiter([per_webhook])

    def allowance(self, within: float) -> int:
        return self.limiter.allowance(within)

    async def _post(self, payload: dict) -> None:
        await self.limiter.acquire()
        try:
            response = await self._client.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise RetryLater(redact(f"network: {type(exc).__name__}: {exc}", [self._url])) from None
        body = response.text[:200]
        if response.status_code == 200:
            return
        reason = redact(f"HTTP {response.status_code}: {body}", [self._url])
        if response.status_code == 429:
            raise RetryLater(reason, retry_after=_retry_after(response.headers.get("retry-after")))
        if response.status_code >= 500:
            raise RetryLater(reason)
        if response.status_code in (401, 403, 404, 410):
            # invalid_token, action_prohibited, no_service, channel_is_archived: the hook is unusable
            raise Unavailable(reason)
        raise Rejected(reason)

    async def send(self, alert: Alert, *, reply_to: str | None = None) -> str | None:
        # A webhook cannot thread: a follow-up is a plain message naming its story.
        await self._post(slack_payload(alert))
        return None  # webhooks return no message id

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        payload, included = slack_digest(alerts)
        await self._post(payload)
        return None, included

    async def send_prepared(self, message: Any) -> str | None:
        await self._post(dict(message))
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
