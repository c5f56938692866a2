"""Fetch feeds over HTTP, politely and within hard limits.

- Conditional requests (``If-None-Match``/``If-Modified-Since``); a ``304`` costs no parsing, and
  a body byte-identical to the last one (servers that ignore validators) is reported as
  ``unchanged`` so it is not parsed either.
- gzip, deflate and brotli, decoded here with a bounded output buffer, so a decompression bomb
  stops at ``max_bytes`` of output instead of filling memory.
- A total deadline per request (``timeout_seconds``): a server that drips bytes slowly cannot
  hold a worker.
- A global and a per-host concurrency limit.
- What the server says about timing (``Retry-After``, ``Cache-Control: max-age``) and about the
  feed's address (301/308 moved, 410 gone) is returned for the pipeline to act on.

``Fetcher.fetch`` never raises for a feed's own failure: it returns a ``FetchResult`` whose
``status`` is ``"error"`` and whose ``error`` says why, so that one bad feed stays data.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from . import USER_AGENT, tls
from .config import PollConfig
from .logs import add_secret, redact_credentials

try:  # brotli is optional: offered only when it can be decoded
    import brotli
except ImportError:  # pragma: no cover - the pinned requirements include it
    brotli = None

Status = Literal["ok", "not_modified", "unchanged", "gone", "error"]
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate, br" if brotli else "gzip, deflate"
_MAX_AGE_RE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)
_PERMANENT = (301, 308)


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What the server told us last time, sent back for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    feed: str
    url: str  # the URL requested
    status: Status
    body: bytes = b""
    body_hash: str | None = None
    http_status: int | None = None
    final_url: str = ""  # after redirects; relative links resolve against it
    moved_to: str | None = None  # set when every redirect was permanent (301/308)
    validators: Validators = Validators()
    content_type: str = ""
    retry_after: float | None = None  # seconds, from Retry-After on 429/503
    max_age: float | None = None  # seconds, from Cache-Control
    error: str | None = None  # "reason: detail" when status is "error"
    elapsed: float = 0.0
    # Whole seconds the request waited for a free slot (``concurrency``, per host) before it
    # went out: the poll happened that much after its tick.
    queued: float = 0.0
    # WebSub discovery from ``Link:`` headers (absolute URLs): the hubs, and the topic (self)
    hubs: tuple[str, ...] = ()
    self_link: str | None = None


class _TooLarge(Exception):
    pass


class _Decoder:
    """Content-Encoding decoding with a bounded output: raises _TooLarge past ``limit`` bytes."""

    def __init__(self, encoding: str, limit: int):
        self.limit = limit
        self.size = 0
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise ValueError(f"stacked content encodings are not supported: {encoding}")
        self.coding = codings[0] if codings else ""
        if self.coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._z = zlib.decompressobj()
            self._raw_deflate_tried = False
        elif self.coding == "br" and brotli is not None:
            self._br = brotli.Decompressor()
        elif self.coding:
            raise ValueError(f"unsupported content encoding: {encoding}")

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise _TooLarge(f"body exceeds {self.limit} bytes (decoded)")
        return data

    def feed(self, chunk: bytes) -> list[bytes]:
        if not self.coding:
            return [self._count(chunk)]
        out = []
        if self.coding == "br":
            data = chunk
            while True:
                piece = self._br.process(data, output_buffer_limit=65536)
                out.append(self._count(piece))
                data = b""
                if self._br.can_accept_more_data() or not piece:
                    break
            return out
        data = chunk
        while True:
            try:
                piece = self._z.decompress(data, 65536)
            except zlib.error:
                if self.coding == "deflate" and not self._raw_deflate_tried and self.size == 0:
                    # Some servers send raw deflate without the zlib header.
                    self._raw_deflate_tried = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    piece = self._z.decompress(data, 65536)
                else:
                    raise
            out.append(self._count(piece))
            data = self._z.unconsumed_tail
            if not data:
                break
        return out

    def flush(self) -> bytes:
        if self.coding in ("gzip", "x-gzip", "deflate"):
            return self._count(self._z.flush())
        return b""


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control or "no-store" in cache_control.lower():
        return None
    m = _MAX_AGE_RE.search(cache_control)
    return float(m.group(1)) if m else None


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.IGNORECASE)


def links(values: list[str], base: str) -> list[tuple[str, str]]:
    """(absolute URL, rel) for each relation of each ``Link:`` header value (RFC 8288); a
    link with several relations (``rel="hub self"``) gives one pair per relation."""
    found = []
    for value in values:
        for m in _LINK.finditer(value):
            rel = _REL.search(m.group(2))
            if rel is None:
                continue
            url = urljoin(base, m.group(1).strip())
            found += [(url, r.lower()) for r in (rel.group(1) or rel.group(2)).split()]
    return found


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class Fetcher:
    """Fetches feeds with one shared client, a global and a per-host concurrency limit."""

    def __init__(self, poll: PollConfig, *, client: httpx.AsyncClient | None = None):
        self.poll = poll
        self._own_client = client is None
        self.client = client or self._client(None)
        self._proxied: dict[str, httpx.AsyncClient] = {}  # one client per proxy, made when asked
        self._global = asyncio.Semaphore(poll.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}

    def _client(self, proxy: str | None) -> httpx.AsyncClient:
        poll = self.poll
        return httpx.AsyncClient(
            headers={
                "User-Agent": USER_AGENT,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            follow_redirects=True,
            max_redirects=5,
            timeout=httpx.Timeout(poll.timeout_seconds),
            limits=httpx.Limits(
                max_connections=poll.concurrency, max_keepalive_connections=poll.concurrency
            ),
            proxy=proxy,
            verify=tls.context(),
        )

    def _client_for(self, proxy: str | None) -> httpx.AsyncClient:
        if not proxy:
            return self.client
        client = self._proxied.get(proxy)
        if client is None:
            password = urlsplit(proxy).password
            if password:
                add_secret(password)  # libraries' debug logs show it in their own shapes
            client = self._proxied[proxy] = self._client(proxy)
        return client

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()
        for client in self._proxied.values():
            await client.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _host_gate(self, url: str) -> asyncio.Semaphore:
        host = host_of(url)
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = asyncio.Semaphore(self.poll.per_host_concurrency)
        return gate

    async def fetch(
        self,
        feed: str,
        url: str,
        *,
        validators: Validators = Validators(),
        previous_hash: str | None = None,
        proxy: str | None = None,
    ) -> FetchResult:
        """GET one feed within ``timeout_seconds`` in total, however slowly the server drips;
        through ``proxy`` when given."""
        asked = time.monotonic()
        async with self._host_gate(url), self._global:
            # Under a second is noise against intervals of ten seconds and more.
            queued = float(int(time.monotonic() - asked))
            result = await self._fetch(
                feed,
                url,
                validators=validators,
                previous_hash=previous_hash,
                client=self._client_for(proxy),
            )
        return replace(result, queued=queued) if queued else result

    async def _fetch(
        self,
        feed: str,
        url: str,
        *,
        validators: Validators,
        previous_hash: str | None,
        client: httpx.AsyncClient,
    ) -> FetchResult:
        headers = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        started = time.monotonic()
        poll = self.poll

        def result(status: Status, **kw: Any) -> FetchResult:
            kw.setdefault("validators", validators)
            return FetchResult(
                feed=feed, url=url, status=status, elapsed=time.monotonic() - started, **kw
            )

        try:
            async with asyncio.timeout(poll.timeout_seconds):
                async with client.stream("GET", url, headers=headers) as response:
                    final_url = str(response.url)
                    moved_to = None
                    if response.history and all(
                        r.status_code in _PERMANENT for r in response.history
                    ):
                        moved_to = final_url
                    related = links(response.headers.get_list("link"), final_url)
                    common = dict(
                        http_status=response.status_code,
                        final_url=final_url,
                        moved_to=moved_to,
                        max_age=_max_age(response.headers.get("cache-control")),
                        hubs=tuple(u for u, rel in related if rel == "hub"),
                        self_link=next((u for u, rel in related if rel == "self"), None),
                    )
                    if response.status_code == 304:
                        await response.aread()  # empty: reading it lets the connection be reused
                        return result("not_modified", **common)
                    if response.status_code == 410:
                        return result("gone", error="http_410: the feed is gone", **common)
                    if response.status_code >= 400:
                        wait = None
                        if response.status_code in (429, 503):
                            wait = _retry_after(
                                response.headers.get("retry-after"), datetime.now(timezone.utc)
                            )
                        return result(
                            "error",
                            error=f"http_{response.status_code}",
                            retry_after=wait,
                            **common,
                        )
                    body = await self._read(response)
                    digest = hashlib.sha1(body).hexdigest()
                    new_validators = Validators(
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                    )
                    status: Status = "unchanged" if digest == previous_hash else "ok"
                    return result(
                        status,
                        body=b"" if status == "unchanged" else body,
                        body_hash=digest,
                        validators=new_validators,
                        content_type=response.headers.get("content-type", ""),
                        **common,
                    )
        except (TimeoutError, httpx.TimeoutException):
            return result(
                "error", error=f"timeout: no complete response within {poll.timeout_seconds:g}s"
            )
        except _TooLarge as exc:
            return result("error", error=f"too_large: {exc}")
        except httpx.TooManyRedirects:
            return result("error", error="redirects: too many redirects")
        except httpx.ConnectError as exc:
            return result("error", error=f"connect: {exc or 'connection failed'}")
        except httpx.ProxyError as exc:
            return result("error", error=f"proxy: {redact_credentials(str(exc)) or 'failed'}")
        except (zlib.error, ValueError) as exc:
            return result("error", error=f"decoding: {exc}")
        except httpx.HTTPError as exc:
            return result("error", error=f"http_error: {type(exc).__name__}: {exc}")
        except OSError as exc:  # DNS and socket errors outside httpx's wrappers
            return result("error", error=f"network: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. brotli.error; still this feed's problem
            return result("error", error=f"fetch: {type(exc).__name__}: {exc}")

    async def post_form(
        self, url: str, fields: dict[str, str], *, proxy: str | None = None
    ) -> tuple[int | None, str]:
        """POST a form (a WebSub hub request), through ``proxy`` when given, within
        ``timeout_seconds``: (HTTP status, the body's start), or (None, why it failed). 307 and
        308 redirects are followed with the POST, as a hub may move."""
        try:
            async with asyncio.timeout(self.poll.timeout_seconds):
                response = await self._client_for(proxy).post(
                    url, data=fields, headers={"Accept": "*/*"}
                )
                return response.status_code, response.text[:200]
        except TimeoutError:
            return None, f"timeout: no answer within {self.poll.timeout_seconds:g}s"
        except httpx.HTTPError as exc:
            return None, redact_credentials(f"{type(exc).__name__}: {exc}")

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self.poll.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge(f"body of {declared} bytes exceeds {limit} bytes")
        decoder = _Decoder(response.headers.get("content-encoding", ""), limit)
        chunks, raw = [], 0
        async for chunk in response.aiter_raw():
            raw += len(chunk)
            if raw > limit:
                raise _TooLarge(f"body exceeds {limit} bytes")
            chunks.extend(decoder.feed(chunk))
        chunks.append(decoder.flush())
        return b"".join(chunks)
