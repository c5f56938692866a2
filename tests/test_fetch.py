"""Polling over real HTTP on loopback: politeness, hard limits, and per-feed scheduling state."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import tracemalloc
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import brotli
import pytest

from alerts import tls
from alerts.config import FeedConfig, PollConfig, load_config
from alerts.fetch import Fetcher
from alerts.loopback import FeedServer, Route
from alerts.pipeline import backoff_seconds, next_interval
from alerts.store import open_store
from tests.support import ROOT, ago, poll_cycle, rss, write_config

FEED = rss(
    [
        {
            "title": "Nvidia H20 export controls",
            "guid": "f1",
            "link": "https://n.example/f1",
            "date": ago(minutes=5),
        }
    ]
).encode()
POLL = PollConfig(timeout_seconds=2, max_bytes=1_000_000)


async def _fetch(url, poll=POLL, **kw):
    async with Fetcher(poll) as fetcher:
        return await fetcher.fetch("f", url, **kw)


async def test_conditional_request_gets_304_and_sends_validators(serve, feed_server):
    def respond(headers):
        if headers.get("If-None-Match") == '"v1"':
            return 304, {}, b""
        return 200, {"ETag": '"v1"', "Last-Modified": "Sat, 28 Nov 2026 10:00:00 GMT"}, FEED

    url = serve(Route(respond=respond))
    first = await _fetch(url)
    assert first.status == "ok" and first.validators.etag == '"v1"'
    second = await _fetch(url, validators=first.validators)
    assert second.status == "not_modified" and second.body == b""
    sent = feed_server.requests[-1][1]
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Sat, 28 Nov 2026 10:00:00 GMT"
    assert sent["User-Agent"].startswith("chipwatch/")
    assert "gzip" in sent["Accept-Encoding"] and "br" in sent["Accept-Encoding"]


TLS = ROOT / "tests" / "data" / "tls"  # a self-signed certificate for 127.0.0.1


async def test_https_is_verified_and_an_operators_ca_file_is_honoured(monkeypatch):
    """Every client verifies with one TLS context, made once: a server whose certificate no
    known CA signed is refused, and the failure is the feed's; ``SSL_CERT_FILE`` (as httpx
    reads it) trusting that certificate lets the same feed through."""
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(TLS / "loopback.pem", TLS / "loopback.key")
    server = FeedServer()
    server._httpd.socket = server_tls.wrap_socket(server._httpd.socket, server_side=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    tls.context.cache_clear()
    try:
        with server:
            url = server.route("/tls.xml", Route(body=FEED)).replace("http:", "https:")
            refused = await _fetch(url)
            assert refused.status == "error"
            assert (
                refused.error.startswith("connect:")
                and "CERTIFICATE_VERIFY_FAILED" in refused.error
            )
            assert server.hits("/tls.xml") == 0
            monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "loopback.pem"))
            tls.context.cache_clear()
            trusted = await _fetch(url)
            assert trusted.status == "ok" and trusted.body == FEED
    finally:
        tls.context.cache_clear()  # the next client builds the default context again


async def test_identical_body_is_reported_unchanged_without_parsing(serve):
    url = serve(Route(body=FEED))  # a server that ignores conditional requests
    first = await _fetch(url)
    again = await _fetch(url, previous_hash=first.body_hash)
    assert again.status == "unchanged" and again.body == b""


@pytest.mark.parametrize(
    "encoding,compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("br", brotli.compress),
    ],
    ids=["gzip", "deflate", "raw_deflate", "brotli"],
)
async def test_compressed_bodies_are_decoded(serve, encoding, compress):
    url = serve(
        Route(
            body=compress(FEED),
            headers={"Content-Encoding": encoding, "Content-Type": "application/rss+xml"},
        )
    )
    result = await _fetch(url)
    assert result.status == "ok" and result.body == FEED


@pytest.mark.parametrize(
    "encoding,compress",
    # brotli at quality 1: the same 200 MB in 36 KB, built in 0.05 s (quality 11 takes seconds)
    [("gzip", gzip.compress), ("br", lambda b: brotli.compress(b, quality=1))],
    ids=["gzip_bomb", "brotli_bomb"],
)
async def test_decompression_bomb_stops_at_the_limit_with_bounded_memory(serve, encoding, compress):
    bomb = compress(b"\0" * 200_000_000)  # 200 MB of zeros, a few hundred KB on the wire
    url = serve(Route(body=bomb, headers={"Content-Encoding": encoding}))
    tracemalloc.start()
    result = await _fetch(url)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.status == "error" and result.error.startswith("too_large")
    assert peak < 30_000_000


async def test_oversized_body_is_refused(serve):
    url = serve(Route(body=b"<rss>" + b"x" * 2_000_000 + b"</rss>"))
    result = await _fetch(url)
    assert result.status == "error" and result.error.startswith("too_large")


@pytest.mark.slow
async def test_slow_drip_is_cut_at_the_total_deadline(serve):
    # ~20 s to send the whole feed, each chunk well within a read timeout: only the total
    # deadline can stop it
    url = serve(Route(body=FEED, drip=0.05))
    result = await _fetch(url, replace(POLL, timeout_seconds=1))
    assert result.status == "error" and result.error.startswith("timeout")


@pytest.mark.parametrize(
    "status,headers,error,retry_after",
    [
        (404, {}, "http_404", None),
        (500, {}, "http_500", None),
        (429, {"Retry-After": "120"}, "http_429", 120),
        (503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}, "http_503", "future"),
    ],
    ids=["404", "500", "429_seconds", "503_http_date"],
)
async def test_http_errors_are_data_with_retry_after(serve, status, headers, error, retry_after):
    result = await _fetch(serve(Route(body=b"no", status=status, headers=headers)))
    assert result.status == "error" and result.error == error
    if retry_after == "future":
        assert result.retry_after > 86400
    else:
        assert result.retry_after == retry_after


async def test_permanent_redirect_reports_new_url_temporary_does_not(serve):
    target = serve(Route(body=FEED))
    permanent = serve(Route(status=301, headers={"Location": target}))
    temporary = serve(Route(status=302, headers={"Location": target}))
    moved = await _fetch(permanent)
    assert moved.status == "ok" and moved.moved_to == target
    assert (await _fetch(temporary)).moved_to is None


@pytest.mark.slow
async def test_per_host_limit_is_honoured():
    with FeedServer() as server:
        urls = [server.route(f"/h{i}", Route(body=FEED, delay=0.3)) for i in range(6)]
        poll = PollConfig(concurrency=10, per_host_concurrency=2)
        async with Fetcher(poll) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(f"f{i}", u) for i, u in enumerate(urls)))
        assert all(r.status == "ok" for r in results)
        assert server.peak_in_flight == 2


@pytest.mark.slow
async def test_a_fetch_that_waited_for_a_slot_says_how_long_in_whole_seconds(feed_server):
    # The first holds the one slot for 1.2 s; the second, waiting for it, answers at once.
    urls = [
        feed_server.route(f"/slot{i}", Route(body=FEED, delay=d)) for i, d in enumerate((1.2, 0))
    ]
    async with Fetcher(PollConfig(concurrency=1)) as fetcher:
        first, second = await asyncio.gather(
            fetcher.fetch("a", urls[0]), fetcher.fetch("b", urls[1])
        )
    assert first.status == second.status == "ok"
    waits = sorted([first.queued, second.queued])
    assert waits[0] == 0.0 and waits[1] >= 1.0 and waits[1].is_integer()


# --- scheduling state through the pipeline ------------------------------------------------


async def test_backoff_grows_then_resets_on_success(tmp_path, serve, feed_server):
    url = serve(Route(body=b"down", status=500))
    config = load_config(write_config(tmp_path, [("Flaky", url)]))
    store = open_store(config.database)
    now = datetime.now(timezone.utc)
    waits = []
    for _ in range(3):
        report = await poll_cycle(config, store, now=now, respect_schedule=True)
        state = store.feed_state("Flaky")
        waits.append((state.next_poll_at - now).total_seconds())
        skipped = await poll_cycle(
            config, store, now=now + timedelta(seconds=1), respect_schedule=True
        )
        assert skipped.outcomes[0].status == "skipped", "not polled again before its backoff"
        now = state.next_poll_at
    assert waits == pytest.approx([300, 600, 1200], abs=1)
    assert report.failed[0].consecutive_failures == 3

    feed_server.routes[url.split(str(feed_server.port))[1]] = Route(body=FEED)
    await poll_cycle(config, store, now=now, respect_schedule=True)
    state = store.feed_state("Flaky")
    assert (state.consecutive_failures, state.failing_since, state.last_error) == (0, None, None)
    assert (state.next_poll_at - now).total_seconds() == pytest.approx(300, abs=1)
    store.close()


async def test_long_failing_feed_is_flagged_in_the_outcome(tmp_path, serve):
    url = serve(Route(body=b"down", status=500))
    config = load_config(write_config(tmp_path, [("Dead", url)]))
    store = open_store(config.database)
    start = datetime.now(timezone.utc)
    first = await poll_cycle(config, store, now=start)
    assert not first.outcomes[0].flagged
    later = await poll_cycle(config, store, now=start + timedelta(hours=25))
    assert later.outcomes[0].flagged and later.flagged
    store.close()


async def test_429_retry_after_is_a_lower_bound_on_the_next_poll(tmp_path, serve):
    url = serve(Route(body=b"slow down", status=429, headers={"Retry-After": "5000"}))
    config = load_config(write_config(tmp_path, [("Busy", url)]))
    store = open_store(config.database)
    now = datetime.now(timezone.utc)
    await poll_cycle(config, store, now=now, respect_schedule=True)
    assert (store.feed_state("Busy").next_poll_at - now).total_seconds() == pytest.approx(
        5000, abs=1
    )
    store.close()


async def test_410_disables_the_feed_until_its_url_changes(tmp_path, serve, feed_server):
    gone = serve(Route(body=b"gone", status=410))
    config = load_config(write_config(tmp_path, [("Old", gone)]))
    store = open_store(config.database)
    now = datetime.now(timezone.utc)
    report = await poll_cycle(config, store, now=now)
    assert report.outcomes[0].status == "disabled" and "410 Gone" in report.outcomes[0].error
    hits = feed_server.hits(gone.split(str(feed_server.port))[1])
    await poll_cycle(config, store, now=now + timedelta(days=1))
    assert feed_server.hits(gone.split(str(feed_server.port))[1]) == hits, "never fetched again"

    fresh = serve(Route(body=FEED))
    config = replace(config, feeds=(replace(config.feeds[0], url=fresh),))
    report = await poll_cycle(config, store, now=now + timedelta(days=2))
    assert report.outcomes[0].status == "ok"
    store.close()


async def test_301_updates_the_stored_url(tmp_path, serve, feed_server):
    target = serve(Route(body=FEED))
    old = serve(Route(status=308, headers={"Location": target}))
    config = load_config(write_config(tmp_path, [("Moved", old)]))
    store = open_store(config.database)
    now = datetime.now(timezone.utc)
    await poll_cycle(config, store, now=now)
    assert store.feed_state("Moved").effective_url == target
    old_path = old.split(str(feed_server.port))[1]
    hits = feed_server.hits(old_path)
    await poll_cycle(config, store, now=now + timedelta(hours=1))
    assert feed_server.hits(old_path) == hits, "the next poll goes straight to the new URL"
    store.close()


async def test_unchanged_body_and_304_skip_parsing_in_the_pipeline(tmp_path, serve):
    url = serve(Route(body=FEED))
    config = load_config(write_config(tmp_path, [("Same", url)]))
    store = open_store(config.database)
    now = datetime.now(timezone.utc)
    await poll_cycle(config, store, now=now)
    report = await poll_cycle(config, store, now=now + timedelta(minutes=10))
    assert report.outcomes[0].status == "unchanged"
    store.close()


FEED_CFG = FeedConfig(
    name="f", url="http://127.0.0.1:9/", interval_seconds=120, max_interval_seconds=3600
)
INTERVALS = [
    ("busy_stays_at_minimum", dict(previous=600, had_new=True), 120),
    ("quiet_stretches_by_half", dict(previous=600, had_new=False), 900),
    ("quiet_capped_at_maximum", dict(previous=3000, had_new=False), 3600),
    ("first_poll_at_minimum", dict(previous=None, had_new=False), 120),
    ("cache_hint_is_lower_bound", dict(previous=None, had_new=True, hint=1800), 1800),
    ("cache_hint_capped_by_maximum", dict(previous=None, had_new=True, hint=86400), 3600),
]


@pytest.mark.parametrize("kw,expected", [c[1:] for c in INTERVALS], ids=[c[0] for c in INTERVALS])
def test_adaptive_interval(kw, expected):
    assert next_interval(FEED_CFG, PollConfig(), **kw) == expected


def test_adaptive_off_keeps_the_configured_interval():
    assert next_interval(FEED_CFG, PollConfig(adaptive=False), previous=600, had_new=False) == 120


@pytest.mark.parametrize(
    "failures,retry_after,expected",
    [
        (1, None, 120),
        (2, None, 240),
        (5, None, 1920),
        (20, None, 21600),
        (1, 7200, 7200),
        (1, 10**9, 21600),
    ],
    ids=["first", "second", "fifth", "capped", "retry_after", "retry_after_capped"],
)
def test_backoff(failures, retry_after, expected):
    assert (
        backoff_seconds(FEED_CFG, PollConfig(), failures=failures, retry_after=retry_after)
        == expected
    )
