"""Slack delivery through an incoming webhook (1 message a second; 429 carries Retry-After).

Webhook messages cannot be edited afterwards, so Slack gets each story once; see the README.
The webhook URL is a secret: it never appears in an error or a log line.
"""

from __future__ import annotations

import httpx

from .. import USER_AGENT
from ..errors import Rejected, RetryLater, Unavailable
from ..logs import redact
from ..types import Alert
from .format import slack_digest, slack_payload
from .pacing import RateLimiter

PER_WEBHOOK = (1, 1.05)  # 1/s, with slack for network jitter


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
        self._client = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})
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
            try:
                wait = float(response.headers.get("retry-after", ""))
            except ValueError:
                wait = None
            raise RetryLater(reason, retry_after=wait)
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

    async def aclose(self) -> None:
        await self._client.aclose()
