"""Benchmark the store alone, on SQLite and (optionally) PostgreSQL, in the same run.

One loop of what a poll cycle asks of the store: ``known_items`` and ``record_poll`` for every
feed (50 items each, one in ten alerting to one destination), then ``record_unchanged`` for
every feed (a 304 cycle), then ``pending`` and ``mark_sent`` for every alert. Timed as CPU of
this process and wall time; PostgreSQL's own CPU (another process) is not in the CPU column.

    python benchmarks/bench_store.py [--feeds 400] [--items 50] [--runs 3]
        [--postgres URL | --throwaway-postgres]

``--throwaway-postgres`` starts a server like the tests do (``tests/pg_server.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.store import open_store  # noqa: E402
from alerts.types import FeedItem, Match, MatchResult, NewItem  # noqa: E402

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)
RESULT = MatchResult(
    matches=(Match("companies", "Nvidia", "Nvidia", "exact", 100.0),), rules=("chip-trade",)
)


def _items(feed: int, n: int) -> list[NewItem]:
    return [
        NewItem(
            item=FeedItem(
                feed=f"F{feed}",
                guid=f"g{i}",
                link=f"https://x.example/{feed}/{i}",
                title=f"headline {feed} {i}",
                summary="s",
                published=NOW,
            ),
            canonical_link=f"https://x.example/{feed}/{i}",
            result=RESULT if i % 10 == 0 else None,
            destinations=("telegram",) if i % 10 == 0 else (),
        )
        for i in range(n)
    ]


def one_run(database, feeds: int, items: int) -> tuple[float, float]:
    store = open_store(database)
    cpu, wall = time.process_time(), time.perf_counter()
    for f in range(feeds):
        new = _items(f, items)
        store.known_items(f"F{f}", [(n.item.guid, n.canonical_link) for n in new])
        store.record_poll(f"F{f}", f"https://x.example/{f}", new, now=NOW, etag='"e"')
    for f in range(feeds):
        store.record_unchanged(f"F{f}", f"https://x.example/{f}", "not_modified", now=NOW)
    for alert in store.pending("telegram", now=NOW, limit=feeds * items):
        store.mark_sent(alert.id, "telegram", message_id="1", now=NOW)
    result = time.process_time() - cpu, time.perf_counter() - wall
    store.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=400)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--postgres", help="a PostgreSQL URL whose server may be written to")
    ap.add_argument("--throwaway-postgres", action="store_true")
    args = ap.parse_args()

    server = None
    if args.throwaway_postgres:
        from tests.pg_server import PgServer

        server = PgServer().__enter__()
    try:
        engines = {"sqlite": lambda d: Path(d) / "cw.db"}
        if server is not None:
            engines["postgresql"] = lambda d: server.new_database()
        elif args.postgres:
            engines["postgresql"] = lambda d: _fresh_postgres(args.postgres)
        times: dict[str, list[tuple[float, float]]] = {e: [] for e in engines}
        for _ in range(args.runs):
            for engine, target in engines.items():  # alternating: both see the same noise
                with tempfile.TemporaryDirectory() as d:
                    times[engine].append(one_run(target(d), args.feeds, args.items))
        print(f"{args.feeds} feeds × {args.items} items, {args.runs} runs, median (range)")
        print(f"{'engine':12} {'cpu s':>22} {'wall s':>22}")
        for engine, runs in times.items():
            cpu, wall = [r[0] for r in runs], [r[1] for r in runs]
            print(
                f"{engine:12} {statistics.median(cpu):8.3f} ({min(cpu):.3f}–{max(cpu):.3f})"
                f" {statistics.median(wall):8.3f} ({min(wall):.3f}–{max(wall):.3f})"
            )
    finally:
        if server is not None:
            server.__exit__(None, None, None)


def _fresh_postgres(url: str) -> str:
    """Empty the chipwatch tables of ``url`` so that every run starts alike."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS chipwatch_schema, deliveries, alerts, items, stories, "
            "feeds, mutes, settings, subscriptions CASCADE"
        )
    return url


if __name__ == "__main__":
    main()
