"""Fetch feeds over HTTP: bounded concurrency, a hard time limit and a size cap per request.

``fetch_feed`` never raises for a feed's own failure: it returns a ``FetchResult`` whose
``status`` is ``"error"`` and whose ``error`` says why, so that one bad feed stays data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx

from . import USER_AGENT
from .config import FeedConfig, PollConfig

Status = Literal["ok", "not_modified", "error"]
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What the server told us last time, sent back for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    feed: str
    url: str  # the URL finally fetched, after redirects
    status: Status
    body: bytes = b""
    http_status: int | None = None
    validators: Validators = Validators()
    content_type: str = ""
    error: str | None = None  # "reason: detail" when status is "error"
    elapsed: float = 0.0


def make_client(poll: PollConfig) -> httpx.AsyncClient:
    """The shared HTTP client; each request still gets its own total deadline in ``fetch_feed``."""
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        follow_redirects=True,
        timeout=httpx.Timeout(poll.timeout_seconds),
        limits=httpx.Limits(max_connections=poll.concurrency,
                            max_keepalive_connections=poll.concurrency),
    )


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(f"body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch_feed(client: httpx.AsyncClient, feed: FeedConfig, *, poll: PollConfig,
                     validators: Validators = Validators()) -> FetchResult:
    """GET one feed within ``poll.timeout_seconds`` in total, however slowly the server drips."""
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    started = time.monotonic()

    def failed(reason: str, http_status: int | None = None) -> FetchResult:
        return FetchResult(feed=feed.name, url=feed.url, status="error", http_status=http_status,
                           error=reason, validators=validators,
                           elapsed=time.monotonic() - started)

    try:
        async with asyncio.timeout(poll.timeout_seconds):
            async with client.stream("GET", feed.url, headers=headers) as response:
                if response.status_code == 304:
                    return FetchResult(feed=feed.name, url=str(response.url), status="not_modified",
                                       http_status=304, validators=validators,
                                       elapsed=time.monotonic() - started)
                if response.status_code >= 400:
                    return failed(f"http_{response.status_code}", response.status_code)
                body = await _read_capped(response, poll.max_bytes)
                return FetchResult(
                    feed=feed.name, url=str(response.url), status="ok", body=body,
                    http_status=response.status_code,
                    content_type=response.headers.get("content-type", ""),
                    validators=Validators(etag=response.headers.get("etag"),
                                          last_modified=response.headers.get("last-modified")),
                    elapsed=time.monotonic() - started)
    except TimeoutError:
        return failed(f"timeout: no complete response within {poll.timeout_seconds:g}s")
    except httpx.TimeoutException:
        return failed(f"timeout: no complete response within {poll.timeout_seconds:g}s")
    except _TooLarge as exc:
        return failed(f"too_large: {exc}")
    except httpx.TooManyRedirects:
        return failed("redirects: too many redirects")
    except httpx.ConnectError as exc:
        return failed(f"connect: {exc or 'connection failed'}")
    except httpx.HTTPError as exc:
        return failed(f"http_error: {type(exc).__name__}: {exc}")
    except (OSError, ValueError) as exc:  # bad URL, DNS, socket errors outside httpx's wrappers
        return failed(f"network: {type(exc).__name__}: {exc}")


async def fetch_feeds(client: httpx.AsyncClient, feeds: Iterable[FeedConfig], *, poll: PollConfig,
                      validators: dict[str, Validators] | None = None) -> list[FetchResult]:
    """Fetch many feeds, at most ``poll.concurrency`` at a time; results in input order."""
    validators = validators or {}
    gate = asyncio.Semaphore(poll.concurrency)

    async def one(feed: FeedConfig) -> FetchResult:
        async with gate:
            return await fetch_feed(client, feed, poll=poll,
                                    validators=validators.get(feed.name, Validators()))

    return list(await asyncio.gather(*(one(f) for f in feeds)))
