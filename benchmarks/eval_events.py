"""Evaluate alerting on a busy day of events, through the real pipeline.

Reads a TSV shaped like ``../shared/eval/busy_days.tsv`` (minute, source, event, label,
headline, and optionally date), serves one loopback RSS feed per outlet (or, with
``--aggregator``, one Google News-style feed carrying every outlet in ``<source>`` elements),
and polls every ``--step`` minutes with ``run_cycle`` on a fresh SQLite file, each item dated
by its minute. It reads the real set too (``../shared/eval/headlines_real.tsv``: label, story,
headline, outlet, date), each headline at its real publication time, its story id as the
event (a headline without one is an event of its own; label "?" is fed but not scored).

Timing. The dev sets pack months of events into one 8-hour day: a stress test, kept as the
default. ``--real-dates`` places each report of a file with a ``date`` column at that date plus
its minute, across days and months, as the events happened. Only polls with something new run.

Then it reads what the database says happened and reports, losing errors first:

- wrong joins: headlines joined to (edited into) a story another event started;
- events without a notification of their own: every report of the event joined or followed up
  another event's story (``swallowed``: not even a follow-up of its own, all joined);
- wrong threads: follow-ups posted under another event's story;
- headline recall (label-1 headlines that matched a rule), non-events alerted;
- notifications per event (a follow-up is not a notification), follow-ups, and pairwise
  precision and recall of the joins and of the threads (joins plus follow-ups).

    python benchmarks/eval_events.py [FILE…] [--real-dates] [--follow-ups LEVEL] [--step 5]
                                     [--threshold T] [--show] [--sweep] [--rules-alone]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import math
import sqlite3
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from itertools import combinations
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # common.py, also when imported by the tests

from alerts.config import Destinations, FeedConfig, Rule, load_config  # noqa: E402
from alerts.fetch import Fetcher  # noqa: E402
from alerts.loopback import FeedServer, Route  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.pipeline import PollContext, run_cycle  # noqa: E402
from alerts.store import open_store  # noqa: E402
from alerts.stories import FOLLOW_UP, Clusterer, FollowUpRules  # noqa: E402

from common import FOLLOW_UP_LEVELS, parse_date  # noqa: E402

BUSY = ROOT.parent / "shared" / "eval" / "busy_days.tsv"
REAL = ROOT.parent / "shared" / "eval" / "headlines_real.tsv"
DEV = ROOT / "benchmarks" / "data" / "events_dev.tsv"
BASE = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
UNSCORED = -1  # the real set's "?" label: fed, not scored


@dataclass(frozen=True)
class Row:
    n: int
    minute: float  # after the start of the replay
    source: str
    event: str
    label: int
    headline: str


def read_rows(path: Path, *, real_dates: bool = False) -> list[Row]:
    """A set's rows, each at its minute of the packed day; with ``real_dates``, at its real
    date plus that minute. The real set's rows are always at their real times."""
    with path.open(encoding="utf-8", newline="") as f:
        raw = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if raw and "outlet" in raw[0]:
        return _real_set(raw)
    if real_dates:
        if not raw or "date" not in raw[0]:
            raise SystemExit(f"{path}: --real-dates needs a date column")
        days = [datetime.fromisoformat(r["date"].strip()).replace(tzinfo=timezone.utc) for r in raw]
        first = min(days)
    return [
        Row(
            n,
            float(r["minute"]) + ((days[n] - first).total_seconds() / 60 if real_dates else 0),
            r["source"].strip(),
            r["event"].strip(),
            int(r["label"]),
            r["headline"].strip(),
        )
        for n, r in enumerate(raw)
    ]


def _real_set(raw: list[dict]) -> list[Row]:
    """The real set's dated rows at their publication times; the story id is the event."""
    dated = [(n, r, parse_date(r["date"])) for n, r in enumerate(raw)]
    dated = [(n, r, when) for n, r, when in dated if when is not None]
    first = min(when for _, _, when in dated)
    return [
        Row(
            n,
            (when - first).total_seconds() / 60,
            r["outlet"].strip() or "unknown",
            r["story"].strip() or f"row-{n}",
            UNSCORED if r["label"].strip() == "?" else int(r["label"]),
            r["headline"].strip(),
        )
        for n, r, when in dated
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


async def _simulate(
    rows: list[Row], config, *, step: int, aggregator: bool, follow_up: FollowUpRules
) -> tuple[list[tuple], dict[int, int]]:
    """Poll every ``step`` minutes that something new was published in; the items' (guid,
    alert, story) and each story's thread."""
    clock: dict[str, float] = {"t": -1}
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
        matcher = compile_matcher(cfg.watchlists, cfg.rules, cfg.learned)
        clusterer = Clusterer(
            store, cfg.stories, now=BASE, watchlists=cfg.watchlists, follow_up=follow_up
        )
        polls = sorted({math.ceil(r.minute / step) * step for r in rows})
        served: dict[str, bytes] = {}  # feed -> the document it served at its last poll
        async with Fetcher(cfg.poll) as fetcher:
            for t in polls:
                clock["t"] = t
                # Every feed at the first poll (its first-poll rules), then the feeds with news:
                # another would answer as before, which the pipeline skips unread.
                changed = []
                for feed, mine in zip(cfg.feeds, groups.values(), strict=True):
                    body = render(mine, upto=t, aggregator=aggregator)
                    if served.get(feed.name) != body:
                        served[feed.name] = body
                        changed.append(feed)
                await run_cycle(
                    changed,
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
        threads = dict(db.execute("SELECT id, COALESCE(parent, id) FROM stories").fetchall())
        db.close()
        return out, threads


def evaluate(
    path: Path,
    *,
    threshold: float | None = None,
    step: int = 5,
    aggregator: bool = False,
    show: bool = False,
    any_subject: bool = False,
    real_dates: bool = False,
    follow_up: FollowUpRules = FOLLOW_UP,
    rules_alone: bool = False,
) -> dict:
    """Run the file through the pipeline and score it."""
    rows = read_rows(path, real_dates=real_dates)
    config = load_config(ROOT / "config.yaml")
    if rules_alone:  # the matcher's rules without the learned second opinion
        config = replace(config, learned=replace(config.learned, enabled=False))
    if any_subject:  # clustering alone: every headline naming a chip or company alerts
        config = replace(config, rules=(Rule(name="any-subject", any_of=("chips", "companies")),))
    if threshold is not None:
        config = replace(config, stories=replace(config.stories, threshold=threshold))
    logging.disable(logging.WARNING)
    records, thread_of = asyncio.run(
        _simulate(rows, config, step=step, aggregator=aggregator, follow_up=follow_up)
    )
    logging.disable(logging.NOTSET)
    by_n = {r.n: r for r in rows}
    story_of: dict[int, int] = {}  # row -> story, for matched (alerting) rows
    owner: dict[int, Row] = {}  # story -> the row that started it
    for guid, alert_id, story_id in records:
        n = int(guid.split("-")[1])
        if story_id is not None:
            story_of[n] = story_id
            if alert_id is not None:
                owner[story_id] = by_n[n]
    matched = [r for r in rows if r.n in story_of]
    positives = [r for r in rows if r.label == 1]
    events = {r.event for r in positives}
    wrong = [r for r in matched if owner[story_of[r.n]].event != r.event]
    followups = [sid for sid in owner if thread_of[sid] != sid]
    wrong_threads = [
        owner[sid] for sid in followups if owner[thread_of[sid]].event != owner[sid].event
    ]
    owned, notified = defaultdict(set), defaultdict(set)  # event -> its stories / its roots
    for sid, r in owner.items():
        owned[r.event].add(sid)
        if thread_of[sid] == sid:
            notified[r.event].add(sid)
    matched_events = {r.event for r in matched if r.label == 1}
    swallowed = sorted(e for e in matched_events if not owned.get(e))
    silent = sorted(e for e in matched_events if not notified.get(e))
    alerted = [e for e in events if notified.get(e)]
    scored = [r for r in matched if r.label != UNSCORED or r.event in events]
    joins = _pairs(scored, lambda r: story_of[r.n])
    threads = _pairs(scored, lambda r: thread_of[story_of[r.n]])
    result = {
        "file": path.name,
        "timing": "real dates" if real_dates or path.name == REAL.name else "packed day",
        "rows": len(rows),
        "events": len(events),
        "wrong_joins": wrong,
        "silent": silent,
        "swallowed": swallowed,
        "wrong_threads": wrong_threads,
        "recall": sum(r.n in story_of for r in positives) / len(positives),
        "missed": [r for r in positives if r.n not in story_of],
        "non_events_alerted": sorted({r.event for r in matched if r.label == 0}),
        "events_alerted": len(alerted),
        "notifications_per_event": (sum(len(notified[e]) for e in alerted) / len(alerted))
        if alerted
        else 0.0,
        "followups": len(followups),
        "pair_precision": joins[0],
        "pair_recall": joins[1],
        "thread_precision": threads[0],
        "thread_recall": threads[1],
    }
    result["alerts_per_event"] = result["notifications_per_event"]  # the name before threads
    if show:
        by_thread = defaultdict(lambda: defaultdict(list))
        for r in matched:
            sid = story_of[r.n]
            by_thread[thread_of[sid]][sid].append(r)
        for root, stories in sorted(by_thread.items()):
            print(f"story {root}:")
            for sid, members in sorted(stories.items()):
                indent = "  "
                if sid != root:
                    flag = "" if owner[sid].event == owner[root].event else "   <-- WRONG THREAD"
                    print(f"  follow-up, story {sid}:{flag}")
                    indent = "    "
                for r in members:
                    flag = "" if r.event == owner[sid].event else "   <-- WRONG JOIN"
                    print(
                        f"{indent}{r.minute:7.0f} {r.source:16.16} [{r.event}] {r.headline}{flag}"
                    )
    return result


def _pairs(rows: list[Row], group: Callable[[Row], int]) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping against the events."""
    tp = fp = fn = 0
    for a, b in combinations(rows, 2):
        same_truth, same_pred = a.event == b.event, group(a) == group(b)
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def report(r: dict) -> str:
    wrong_share = len(r["wrong_joins"]) / r["rows"]
    lines = [
        f"{r['file']} ({r['timing']}): {r['rows']} headlines, {r['events']} events",
        f"  wrong joins                {len(r['wrong_joins'])}  ({wrong_share:.1%} of items)",
        *(f"      {w.source}: {w.headline} [{w.event}]" for w in r["wrong_joins"]),
        f"  events without their own notification  {len(r['silent'])}  {' '.join(r['silent'])}"
        + (f"  (all joined: {' '.join(r['swallowed'])})" if r["swallowed"] else ""),
        f"  wrong threads              {len(r['wrong_threads'])}",
        *(f"      {w.source}: {w.headline} [{w.event}]" for w in r["wrong_threads"]),
        f"  headline recall            {r['recall']:.3f}  ({len(r['missed'])} missed)",
        *(f"      missed: {m.headline}" for m in r["missed"]),
        f"  non-events alerted         {len(r['non_events_alerted'])}  "
        f"{' '.join(r['non_events_alerted'])}",
        f"  events notified            {r['events_alerted']} of {r['events']}",
        f"  notifications per event    {r['notifications_per_event']:.2f}  "
        f"({r['followups']} quiet follow-ups)",
        f"  pairwise P / R, joins      {r['pair_precision']:.3f} / {r['pair_recall']:.3f}",
        f"  pairwise P / R, threads    {r['thread_precision']:.3f} / {r['thread_recall']:.3f}",
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
    ap.add_argument(
        "--follow-ups",
        choices=FOLLOW_UP_LEVELS,
        default="shipped",
        help="the follow-up rules, from loosest to strictest (shipped: the bot's)",
    )
    ap.add_argument(
        "--real-dates",
        action="store_true",
        help="place each report at its real date (the file's date column) plus its minute",
    )
    ap.add_argument(
        "--rules-alone",
        action="store_true",
        help="the matcher's rules alone, without the learned second opinion",
    )
    args = ap.parse_args(argv)
    files = args.files or [p for p in (BUSY, DEV) if p.exists()]
    options = dict(
        step=args.step,
        aggregator=args.aggregator,
        any_subject=args.any_subject,
        real_dates=args.real_dates,
        rules_alone=args.rules_alone,
        follow_up=FOLLOW_UP_LEVELS[args.follow_ups],
    )
    if args.sweep:
        print(
            f"{'file':20} {'threshold':>9} {'wrong':>5} {'silent':>6} {'threads':>7} "
            f"{'notif/ev':>8} {'pair_P':>6} {'pair_R':>6} {'thread_R':>8}"
        )
        for path in files:
            for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                r = evaluate(path, threshold=t, **options)
                print(
                    f"{r['file']:20} {t:9.2f} {len(r['wrong_joins']):5d} "
                    f"{len(r['silent']):6d} {len(r['wrong_threads']):7d} "
                    f"{r['notifications_per_event']:8.2f} {r['pair_precision']:6.3f} "
                    f"{r['pair_recall']:6.3f} {r['thread_recall']:8.3f}"
                )
        return 0
    for path in files:
        r = evaluate(path, threshold=args.threshold, show=args.show, **options)
        print(report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
