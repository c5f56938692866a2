"""Evaluate alerting on a busy day of events, through the real pipeline.

Reads a TSV shaped like ``../shared/eval/busy_days.tsv`` (minute, source, event, label,
headline), serves one loopback RSS feed per outlet (or, with ``--aggregator``, one Google
News-style feed carrying every outlet in ``<source>`` elements), and polls every ``--step``
minutes of the day with ``run_cycle`` on a fresh SQLite file, each item dated by its minute.
Then it reads what the database says happened and reports, losing errors first:

- events swallowed: events that matched but produced no alert of their own (every matched
  headline joined another event's story);
- wrong joins: headlines that joined a story another event started;
- headline recall (label-1 headlines that matched a rule), non-events alerted;
- events alerted, alerts per event, pairwise precision and recall of the grouping.

    python benchmarks/eval_events.py [FILE…] [--step 5] [--threshold T] [--show] [--sweep]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sqlite3
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from itertools import combinations
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.config import Destinations, FeedConfig, Rule, load_config  # noqa: E402
from alerts.fetch import Fetcher  # noqa: E402
from alerts.loopback import FeedServer, Route  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.pipeline import PollContext, run_cycle  # noqa: E402
from alerts.store import open_store  # noqa: E402
from alerts.stories import Clusterer  # noqa: E402

BUSY = ROOT.parent / "shared" / "eval" / "busy_days.tsv"
DEV = ROOT / "benchmarks" / "data" / "events_dev.tsv"
BASE = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Row:
    n: int
    minute: int
    source: str
    event: str
    label: int
    headline: str


def read_rows(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Row(
                n,
                int(r["minute"]),
                r["source"].strip(),
                r["event"].strip(),
                int(r["label"]),
                r["headline"].strip(),
            )
            for n, r in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        ]


def _host(source: str) -> str:
    return "".join(c for c in source.lower() if c.isalnum()) + ".example"


def render(rows: list[Row], *, upto: int, aggregator: bool) -> bytes:
    """An RSS document with the rows published by minute ``upto``, newest first."""
    items = []
    for r in sorted((r for r in rows if r.minute <= upto), key=lambda r: -r.minute):
        title = r.headline
        source = ""
        if aggregator:  # as Google News does: " - Outlet" after the title, and <source>
            title = f"{r.headline} - {r.source}"
            source = f'<source url="https://{_host(r.source)}">{escape(r.source)}</source>'
        items.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://{_host(r.source)}/story/{r.n}</link>"
            f"<guid>row-{r.n}</guid>"
            f"<pubDate>{format_datetime(BASE + timedelta(minutes=r.minute))}</pubDate>"
            f"{source}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>eval</title>{''.join(items)}</channel></rss>"
    ).encode()


async def _simulate(rows: list[Row], config, *, step: int, aggregator: bool) -> list[tuple]:
    clock = {"t": -1}
    with FeedServer() as server, tempfile.TemporaryDirectory(prefix="chipwatch-eval-") as tmp:
        feeds = []
        groups = {"Aggregator": rows} if aggregator else defaultdict(list)
        if not aggregator:
            for r in rows:
                groups[r.source].append(r)
        for name, mine in groups.items():
            path = f"/{_host(name)}.xml"
            url = server.route(
                path,
                Route(body=lambda mine=mine: render(mine, upto=clock["t"], aggregator=aggregator)),
            )
            feeds.append(FeedConfig(name=name, url=url, interval_seconds=60))
        cfg = replace(
            config, feeds=tuple(feeds), database=Path(tmp) / "eval.db", destinations=Destinations()
        )
        store = open_store(cfg.database)
        matcher = compile_matcher(cfg.watchlists, cfg.rules)
        clusterer = Clusterer(store, cfg.stories, now=BASE, watchlists=cfg.watchlists)
        last = max(r.minute for r in rows)
        async with Fetcher(cfg.poll) as fetcher:
            for t in range(0, last + step, step):
                clock["t"] = t
                await run_cycle(
                    cfg.feeds,
                    PollContext(
                        config=cfg,
                        store=store,
                        matcher=matcher,
                        fetcher=fetcher,
                        now=BASE + timedelta(minutes=t),
                        clusterer=clusterer,
                    ),
                )
        store.close()
        db = sqlite3.connect(cfg.database)
        out = db.execute("SELECT guid, alert_id, story_id FROM items").fetchall()
        db.close()
        return out


def evaluate(
    path: Path,
    *,
    threshold: float | None = None,
    step: int = 5,
    aggregator: bool = False,
    show: bool = False,
    any_subject: bool = False,
) -> dict:
    """Run the file through the pipeline and score it."""
    rows = read_rows(path)
    config = load_config(ROOT / "config.yaml")
    if any_subject:  # clustering alone: every headline naming a chip or company alerts
        config = replace(config, rules=(Rule(name="any-subject", any_of=("chips", "companies")),))
    if threshold is not None:
        config = replace(config, stories=replace(config.stories, threshold=threshold))
    logging.disable(logging.WARNING)
    records = asyncio.run(_simulate(rows, config, step=step, aggregator=aggregator))
    logging.disable(logging.NOTSET)
    by_row = {int(guid.split("-")[1]): (alert_id, story_id) for guid, alert_id, story_id in records}
    story_of: dict[int, int] = {}  # row -> story, for matched (alerting) rows
    owner: dict[int, Row] = {}  # story -> the row that started it
    for n, (alert_id, story_id) in by_row.items():
        if story_id is not None:
            story_of[n] = story_id
            if alert_id is not None:
                owner[story_id] = rows[n]
    matched = [r for r in rows if r.n in story_of]
    positives = [r for r in rows if r.label == 1]
    events = {r.event for r in positives}
    wrong = [r for r in matched if owner[story_of[r.n]].event != r.event]
    owned = defaultdict(set)
    for sid, r in owner.items():
        owned[r.event].add(sid)
    matched_events = {r.event for r in matched if r.label == 1}
    swallowed = sorted(e for e in matched_events if not owned.get(e))
    alerted = [e for e in events if owned.get(e)]
    tp = fp = fn = 0
    for a, b in combinations(matched, 2):
        same_truth, same_pred = a.event == b.event, story_of[a.n] == story_of[b.n]
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    result = {
        "file": path.name,
        "rows": len(rows),
        "events": len(events),
        "swallowed": swallowed,
        "wrong_joins": wrong,
        "recall": sum(r.n in story_of for r in positives) / len(positives),
        "missed": [r for r in positives if r.n not in story_of],
        "non_events_alerted": sorted({r.event for r in matched if r.label == 0}),
        "events_alerted": len(alerted),
        "alerts_per_event": (sum(len(owned[e]) for e in alerted) / len(alerted))
        if alerted
        else 0.0,
        "pair_precision": tp / (tp + fp) if tp + fp else 1.0,
        "pair_recall": tp / (tp + fn) if tp + fn else 1.0,
    }
    if show:
        by_story = defaultdict(list)
        for r in matched:
            by_story[story_of[r.n]].append(r)
        for sid, members in sorted(by_story.items()):
            print(f"story {sid}:")
            for r in members:
                flag = "" if r.event == owner[sid].event else "   <-- WRONG JOIN"
                print(f"  {r.minute:4d} {r.source:16.16} [{r.event}] {r.headline}{flag}")
    return result


def report(r: dict) -> str:
    lines = [
        f"{r['file']}: {r['rows']} headlines, {r['events']} events",
        f"  events swallowed      {len(r['swallowed'])}  {' '.join(r['swallowed'])}",
        f"  wrong joins           {len(r['wrong_joins'])}",
        *(f"      {w.source}: {w.headline} [{w.event}]" for w in r["wrong_joins"]),
        f"  headline recall       {r['recall']:.3f}  ({len(r['missed'])} missed)",
        *(f"      missed: {m.headline}" for m in r["missed"]),
        f"  non-events alerted    {len(r['non_events_alerted'])}  {' '.join(r['non_events_alerted'])}",
        f"  events alerted        {r['events_alerted']} of {r['events']}",
        f"  alerts per event      {r['alerts_per_event']:.2f}",
        f"  pairwise P / R        {r['pair_precision']:.3f} / {r['pair_recall']:.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--step", type=int, default=5, help="minutes between polls (default 5)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument(
        "--aggregator", action="store_true", help="serve every outlet in one Google News-style feed"
    )
    ap.add_argument("--show", action="store_true", help="list each story's headlines")
    ap.add_argument(
        "--any-subject",
        action="store_true",
        help="clustering alone: every headline naming a chip or company alerts",
    )
    ap.add_argument("--sweep", action="store_true", help="try several thresholds")
    args = ap.parse_args(argv)
    files = args.files or [p for p in (BUSY, DEV) if p.exists()]
    if args.sweep:
        print(
            f"{'file':20} {'threshold':>9} {'swallowed':>9} {'wrong':>5} {'alerts/ev':>9} "
            f"{'pair_P':>6} {'pair_R':>6}"
        )
        for path in files:
            for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                r = evaluate(
                    path,
                    threshold=t,
                    step=args.step,
                    aggregator=args.aggregator,
                    any_subject=args.any_subject,
                )
                print(
                    f"{r['file']:20} {t:9.2f} {len(r['swallowed']):9d} "
                    f"{len(r['wrong_joins']):5d} {r['alerts_per_event']:9.2f} "
                    f"{r['pair_precision']:6.3f} {r['pair_recall']:6.3f}"
                )
        return 0
    for path in files:
        r = evaluate(
            path,
            threshold=args.threshold,
            step=args.step,
            aggregator=args.aggregator,
            show=args.show,
            any_subject=args.any_subject,
        )
        print(report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
