"""Benchmark full poll cycles over 1,000 feeds of 50 items served on loopback.

A minimal asyncio HTTP/1.1 server runs in a separate process (so its CPU does not count against
chipwatch) and serves ``/feed/N.xml`` with an ETag. chipwatch's real pipeline (``run_cycle``:
fetch, parse, dedupe, match, SQLite outbox, clustering) then runs three cycles:

1. first cycle: every item is new;
2. second cycle: the server answers the conditional request with ``304``;
3. third cycle: the server ignores conditional requests and sends the unchanged bodies, which
   chipwatch recognises as identical and does not parse.

Cycles 2 and 3 repeat three times and the median is shown (with the range), since these shared
machines are noisy.

In the same run, a naive baseline: sequential requests (httpx, no validators) and
``feedparser.parse`` of every body, timed on a subset and scaled to the same feed count.

    python benchmarks/bench_poll.py [--feeds 1000] [--items 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402

from alerts.config import FeedConfig, PollConfig, load_config  # noqa: E402
from alerts.fetch import Fetcher  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.pipeline import PollContext, run_cycle  # noqa: E402
from alerts.store import open_store  # noqa: E402
from alerts.stories import Clusterer  # noqa: E402

TOPICS = [
    "Nvidia H20 export controls tightened for {p}",
    "China approves {p} imports of H200 chips",
    "Huawei Ascend 910C shipments to {p} face new curbs",
    "SMIC added to entity list over {p} deals",
]
FILLER = [
    "Local council approves {p} budget",
    "Storm warning issued for {p} coast",
    "Football club {p} signs new striker",
    "Markets open higher in {p}",
    "New museum opens in {p}",
    "Rail strike called off in {p}",
]


def feed_body(n: int, items: int, now: datetime) -> bytes:
    """Feed ``n``: mostly ordinary news, a few items on the watchlist, dates within the day."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>http://127.0.0.1/{n}</link><description>bench"
        f"</description>"
    ]
    for i in range(items):
        pool = TOPICS if i % 17 == 0 else FILLER
        title = pool[(n + i) % len(pool)].format(p=f"region {n}-{i}")
        when = format_datetime(now - timedelta(minutes=5 + (n * 7 + i * 13) % 600))
        parts.append(
            f"<item><title>{title}</title><link>https://news{n}.example/{i}</link>"
            f"<guid>f{n}-i{i}</guid><pubDate>{when}</pubDate>"
            f"<description>Item {i} of feed {n}: {title}. More text follows here."
            f"</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def serve(port_out, mode, feeds: int, items: int) -> None:
    """The server process: bodies built once, answers until killed."""
    now = datetime.now(timezone.utc)
    bodies = [feed_body(n, items, now) for n in range(feeds)]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                n = int(path.rsplit("/", 1)[1].split(".")[0])
                etag = f'"v{n}"'
                if mode.value == 0 and headers.get("if-none-match") == etag:
                    writer.write(
                        f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n"
                        f"Content-Length: 0\r\n\r\n".encode()
                    )
                else:
                    body = bodies[n]
                    writer.write(
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                        f"ETag: {etag}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.value = server.sockets[0].getsockname()[1]
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def chipwatch_cycles(urls: list[str], mode, poll: PollConfig) -> list[dict]:
    config = load_config(ROOT / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        feeds = tuple(
            FeedConfig(name=f"feed {i}", url=u, interval_seconds=300) for i, u in enumerate(urls)
        )
        config = replace(config, feeds=feeds, poll=poll, database=Path(tmp) / "bench.db")
        store = open_store(config.database)
        matcher = compile_matcher(config.watchlists, config.rules)
        rows = []
        async with Fetcher(poll) as fetcher:
            # The repeatable cycles run three times; the table shows the median run.
            for label, server_mode, runs in (
                ("1 first (all new)", 0, 1),
                ("2 conditional (304)", 0, 3),
                ("3 unchanged bodies", 1, 3),
            ):
                mode.value = server_mode
                measured = []
                for _ in range(runs):
                    clusterer = Clusterer(
                        store,
                        config.stories,
                        now=datetime.now(timezone.utc),
                        watchlists=config.watchlists,
                    )
                    wall, cpu = time.perf_counter(), time.process_time()
                    report = await run_cycle(
                        feeds,
                        PollContext(
                            config=config,
                            store=store,
                            matcher=matcher,
                            fetcher=fetcher,
                            now=datetime.now(timezone.utc),
                            clusterer=clusterer,
                        ),
                    )
                    statuses = {}
                    for o in report.outcomes:
                        statuses[o.status] = statuses.get(o.status, 0) + 1
                    measured.append(
                        {
                            "cycle": label,
                            "wall": time.perf_counter() - wall,
                            "cpu": time.process_time() - cpu,
                            "rss": rss_mb(),
                            "statuses": statuses,
                            "new": report.new_items,
                            "alerts": report.alerts,
                        }
                    )
                measured.sort(key=lambda r: r["wall"])
                rows.append(
                    measured[len(measured) // 2]
                    | {"range": (measured[0]["wall"], measured[-1]["wall"])}
                )
        store.close()
    return rows


def baseline_cycle(urls: list[str]) -> tuple[float, float, int]:
    """Sequential GETs without validators, feedparser on every body: (wall, cpu, entries)."""
    entries = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with httpx.Client() as client:
        for url in urls:
            entries += len(feedparser.parse(client.get(url).content).entries)
    return time.perf_counter() - wall, time.process_time() - cpu, entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument(
        "--baseline-feeds",
        type=int,
        default=100,
        help="feeds the baseline is timed on (scaled to --feeds)",
    )
    ap.add_argument("--quick", action="store_true", help="200 feeds")
    args = ap.parse_args(argv)
    if args.quick:
        args.feeds, args.baseline_feeds = 200, 50

    port, mode = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
    server = multiprocessing.Process(
        target=serve, args=(port, mode, args.feeds, args.items), daemon=True
    )
    server.start()
    try:
        while port.value == 0:
            time.sleep(0.05)
        urls = [f"http://127.0.0.1:{port.value}/feed/{n}.xml" for n in range(args.feeds)]
        # All feeds share one loopback host here, so the per-host limit is raised to the global
        # one; against real servers it stays at its default of 2.
        poll = PollConfig(concurrency=16, per_host_concurrency=16, timeout_seconds=60)
        rss_before = rss_mb()
        rows = asyncio.run(chipwatch_cycles(urls, mode, poll))
        mode.value = 0
        sample = urls[: args.baseline_feeds]
        b_wall, b_cpu, b_entries = baseline_cycle(sample)
    finally:
        server.kill()

    scale = args.feeds / len(sample)
    print(
        f"{args.feeds} feeds × {args.items} items on loopback (server in its own process); "
        f"chipwatch: concurrency {poll.concurrency}, per-host {poll.per_host_concurrency}; "
        f"baseline timed on {len(sample)} feeds, scaled ×{scale:g}\n"
    )
    print(f"{'cycle':<22} {'wall s':>7} {'cpu s':>7} {'peak RSS MB':>12}  outcome")
    for r in rows:
        outcome = ", ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items()))
        low, high = r["range"]
        spread = f" (3 runs: {low:.2f}–{high:.2f} s)" if high > low else ""
        print(
            f"{r['cycle']:<22} {r['wall']:7.2f} {r['cpu']:7.2f} {r['rss']:12.0f}  {outcome}, "
            f"new={r['new']}, alerts={r['alerts']}{spread}"
        )
    base_wall, base_cpu = b_wall * scale, b_cpu * scale
    print(
        f"{'baseline, any cycle':<22} {base_wall:7.2f} {base_cpu:7.2f} {'':>12}  "
        f"sequential + feedparser, {b_entries} entries in the sample"
    )
    print()
    print(
        f"speed-up vs baseline: first {base_wall / rows[0]['wall']:.1f}×, "
        f"304 {base_wall / rows[1]['wall']:.1f}×, unchanged {base_wall / rows[2]['wall']:.1f}× "
        f"(wall time)"
    )
    targets = [
        ("304 cycle under 2 s", rows[1]["wall"] < 2.0),
        ("first cycle under 15 s", rows[0]["wall"] < 15.0),
        ("memory under 200 MB", max(r["rss"] for r in rows) < 200),
    ]
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"(RSS before the cycles: {rss_before:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
