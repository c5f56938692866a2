"""The callback the hubs call, ``<callback_url>/<subscription id>``, on any instance:

- ``GET``: the hub verifies intent. The challenge is echoed only for a subscribe or an
  unsubscribe this bot asked for (pending, the same topic); anything else is 404. A denial is
  recorded.
- ``POST``: content. Only a body whose ``X-Hub-Signature`` is the HMAC of it with the
  subscription's secret goes through the pipeline (as a poll's body would); any other is
  ignored, counted and logged, and still answered 202, as the spec allows, so that a forger
  learns nothing. An unknown subscription (or one whose feed left the config) is 410 Gone: the
  hub may drop it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from urllib.parse import parse_qs

from ..config import FeedConfig, WebSubConfig
from ..fetch import FetchResult
from ..httpd import Handler, HttpServer, Request, Response, text
from ..logs import event
from ..pipeline import FeedOutcome
from ..runtime import Runtime
from ..types import utcnow
from .signature import check_signature
from .subscriber import DENIED_RETRY, renew_at

log = logging.getLogger("chipwatch.websub")

ELSEWHERE_WAIT_SECONDS = 10.0  # another instance polling the feed: wait this long, then 503


def callback_routes(runtime: Runtime, config: WebSubConfig) -> dict[str, Handler]:
    """The callback's paths, for an ``HttpServer`` (its own, or the ops endpoint's)."""
    prefix = config.path

    async def callback(request: Request) -> Response:
        sub_id = request.path[len(prefix) :]
        if not sub_id or "/" in sub_id:
            return text(404, "not found\n")
        if request.method == "GET":
            return _verify(runtime, config, sub_id, parse_qs(request.query))
        if request.method == "POST":
            return await _content(runtime, sub_id, request)
        return text(405, "only GET and POST\n", "Allow: GET, POST")

    return {prefix: callback}


def _verify(
    runtime: Runtime, config: WebSubConfig, sub_id: str, query: dict[str, list[str]]
) -> Response:
    def one(name: str) -> str:
        return (query.get(name) or [""])[0]

    store, now = runtime.store, utcnow()
    mode, topic, challenge = one("hub.mode"), one("hub.topic"), one("hub.challenge")
    sub = store.websub_subscription(sub_id)
    feed = sub.feed if sub is not None else None
    if mode == "denied" and sub is not None:
        if store.websub_denied(sub_id, topic, one("hub.reason"), due_at=now + DENIED_RETRY):
            event(log, "websub_denied", logging.WARNING, feed=feed, reason=one("hub.reason"))
            return text(200, "")
    elif mode in ("subscribe", "unsubscribe") and challenge and sub is not None:
        lease = one("hub.lease_seconds")
        seconds = int(lease) if lease.isdigit() and int(lease) > 0 else config.lease_seconds
        done = (
            store.websub_verified(
                sub_id,
                topic,
                lease_seconds=seconds,
                now=now,
                expires_at=now + timedelta(seconds=seconds),
                renew_at=renew_at(now, seconds),
            )
            if mode == "subscribe"
            else store.websub_unsubscribed(sub_id, topic)
        )
        if done:
            runtime.metrics.websub_requests.labels(mode, "verified").inc()
            event(
                log,
                "websub_verified",
                mode=mode,
                feed=feed,
                lease=f"{seconds}s" if mode == "subscribe" else None,
            )
            return Response(
                status=200,
                body=challenge.encode(),
                content_type="application/octet-stream",  # a safe type: no reflected markup
                headers=("X-Content-Type-Options: nosniff",),
            )
    runtime.metrics.websub_requests.labels(mode or "none", "refused").inc()
    event(
        log,
        "websub_verification_refused",
        logging.WARNING,
        mode=mode[:20] or None,
        feed=feed,
        reason="no such subscription" if sub is None else "not a request we made",
    )
    return text(404, "not found\n")


async def _content(runtime: Runtime, sub_id: str, request: Request) -> Response:
    sub = runtime.store.websub_subscription(sub_id)
    feed = next((f for f in runtime.config.feeds if sub and f.name == sub.feed), None)
    if sub is None or feed is None:
        runtime.metrics.websub_pushes.labels("gone").inc()
        event(log, "websub_push_gone", logging.WARNING, feed=sub.feed if sub else None)
        return text(410, "no such subscription\n")
    problem = check_signature(request.headers.get("x-hub-signature"), request.body, sub.secret)
    if problem is not None:
        runtime.metrics.websub_pushes.labels("rejected").inc()
        event(
            log,
            "websub_push_rejected",
            logging.WARNING,
            feed=sub.feed,
            signature=problem,
            bytes=len(request.body),
        )
        return text(202, "")
    now = utcnow()
    runtime.store.websub_pushed(sub_id, now=now)
    pushed = FetchResult(
        feed=feed.name,
        url=sub.topic,
        status="ok",
        body=request.body,
        http_status=200,
        final_url=sub.topic,
        content_type=request.headers.get("content-type", ""),
    )
    outcome = await _push(runtime, feed, pushed)
    if outcome.status == "skipped":
        runtime.metrics.websub_pushes.labels("failed").inc()
        return text(503, "busy: try again\n", "Retry-After: 10")
    runtime.metrics.websub_pushes.labels("accepted" if outcome.status == "ok" else "failed").inc()
    return text(204, "")


async def _push(runtime: Runtime, feed: FeedConfig, pushed: FetchResult) -> FeedOutcome:
    """Push, waiting a little while another instance holds the feed (it is polling it)."""
    deadline = asyncio.get_running_loop().time() + ELSEWHERE_WAIT_SECONDS
    while True:
        outcome = await runtime.push(feed, pushed)
        if outcome.status != "skipped" or asyncio.get_running_loop().time() > deadline:
            return outcome
        await asyncio.sleep(0.5)


async def start_callback(runtime: Runtime, routes: dict[str, Handler]) -> HttpServer | None:
    """Serve the callback on ``websub.listen``; None when the address cannot be used (logged
    as ``websub_listen_failed``: feeds are still polled)."""
    config = runtime.config.websub
    assert config is not None
    server = HttpServer(routes, max_body=runtime.config.poll.max_bytes)
    try:
        await server.start(*config.address)
    except OSError as exc:
        event(
            log,
            "websub_listen_failed",
            logging.WARNING,
            listen=config.listen,
            error=exc.strerror or str(exc),
            effect="running without WebSub pushes: feeds are polled",
        )
        return None
    event(log, "websub_listening", address=server.address, path=config.path)
    return server
