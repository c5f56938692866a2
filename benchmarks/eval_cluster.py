"""Evaluate story clustering on the real multi-outlet stories in ../shared/eval.

Feeds every dated headline of ``headlines_real.tsv`` through the clustering in time order (the
default config's matcher supplies the watchlist entities) and reports, over the headlines that
carry a ``story`` id:

- pairwise precision and recall of the joins (a pair is "together" when both headlines got the
  same story), and the share of same-story pairs that joins plus quiet follow-ups put in one
  thread (the recall of threads), with the threads' precision;
- notifications that would have been sent (a follow-up is none) against the number of distinct
  true stories, and those of the 14-outlet A800 story.

Headlines without a story id take part too, as distractors: a wrong merge with one of them costs
precision.

As in the pipeline, a light edit of a headline the same outlet ran in the last 7 days (the edit
rule of ``alerts.dedupe``) is the same item: it makes no alert of its own and counts as being in
its original's cluster (``--no-edits`` clusters it like any other item).

    python benchmarks/eval_cluster.py [--threshold 0.5] [--window-hours 48] [--follow-ups LEVEL]
                                      [--show] [--no-edits]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from datetime import timedelta
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.dedupe import edited_titles, title_key  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.stories import (  # noqa: E402
    FOLLOW,
    FOLLOW_UP,
    JOIN,
    FollowUpRules,
    Offline,
    categories_of,
    cluster_offline,
)

from common import FOLLOW_UP_LEVELS, parse_date  # noqa: E402

REAL = ROOT.parent / "shared" / "eval" / "headlines_real.tsv"
A800 = "2022-11-a800"  # 14 outlets, one event: issue #12 wants at most 2 alerts for it


EDIT_LOOKBACK = timedelta(days=7)


def edits_of(rows: list[dict]) -> dict[int, int]:
    """Row -> the earlier row of the same outlet it is a light edit of (the pipeline's edit
    rule), for the rows that are edits."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["when"])
    original: dict[int, int] = {}
    for n, i in enumerate(order):
        earlier = [
            j
            for j in order[:n]
            if rows[j]["outlet"] == rows[i]["outlet"]
            and rows[i]["when"] - rows[j]["when"] <= EDIT_LOOKBACK
            and j not in original
        ]
        key = title_key(rows[i]["headline"])
        keys = [title_key(rows[j]["headline"]) for j in earlier]
        if earlier and edited_titles([key], keys):
            original[i] = max(
                zip(earlier, keys, strict=True), key=lambda jk: fuzz.ratio(key, jk[1])
            )[0]
    return original


def evaluate(
    threshold: float,
    window_hours: float,
    show: bool = False,
    everything: bool = False,
    edits: bool = True,
    follow_up: FollowUpRules = FOLLOW_UP,
) -> dict:
    """Cluster the real set and score it."""
    config = load_config(ROOT / "config.yaml")
    matcher = compile_matcher(config.watchlists, config.rules)
    rows = []
    with REAL.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            when = parse_date(r["date"])
            if when is None:
                continue
            result = matcher.match(r["headline"])
            # As in the pipeline, only alerting headlines are clustered (unless --all).
            if everything or result.alert:
                rows.append(r | {"when": when, "matches": result.matches})
    original = edits_of(rows) if edits else {}
    kept = [i for i in range(len(rows)) if i not in original]
    items = [
        (rows[i]["headline"], rows[i]["when"], rows[i]["outlet"] or "unknown", rows[i]["matches"])
        for i in kept
    ]
    placed: list[Offline | None] = [None] * len(rows)
    offline = cluster_offline(
        items,
        window=timedelta(hours=window_hours),
        threshold=threshold,
        categories=categories_of(config.watchlists),
        follow_up=follow_up,
    )
    for i, where in zip(kept, offline, strict=True):
        placed[i] = where
    for i, j in original.items():  # an edit is its original's item: no notification of its own
        where = placed[j]
        assert where is not None
        placed[i] = where._replace(outcome=JOIN)
    assigned = [p for p in placed if p is not None]
    assert len(assigned) == len(rows)

    labelled = [i for i, r in enumerate(rows) if r["story"]]
    joins = _pairs(rows, [p.story for p in assigned])
    threads = _pairs(rows, [p.thread for p in assigned])
    stories = {rows[i]["story"] for i in labelled}
    notifications = sum(assigned[i].notifies for i in labelled)
    a800 = sum(assigned[i].notifies for i in labelled if rows[i]["story"] == A800)
    result = {
        "headlines": len(rows),
        "story_headlines": len(labelled),
        "true_stories": len(stories),
        "alerts": notifications,
        "alerts_per_story": notifications / len(stories),
        "followups": sum(assigned[i].outcome == FOLLOW for i in labelled),
        "pair_precision": joins[0],
        "pair_recall": joins[1],
        "thread_precision": threads[0],
        "thread_recall": threads[1],
        "edits": len(original),
        "a800_alerts": a800,
    }
    if show:
        by_thread: dict[int, list[int]] = defaultdict(list)
        for i in range(len(rows)):
            by_thread[assigned[i].thread].append(i)
        for tid, members in sorted(by_thread.items()):
            if not any(rows[i]["story"] for i in members):
                continue
            print(f"thread {tid}:")
            for i in sorted(members, key=lambda i: (assigned[i].story, rows[i]["when"])):
                how = {FOLLOW: " (a follow-up)", JOIN: ""}.get(assigned[i].outcome, "")
                edit = " (an edit)" if i in original else ""
                print(
                    f"  story {assigned[i].story} [{rows[i]['story'] or '-'}] "
                    f"{rows[i]['when']:%Y-%m-%d %H:%M} {rows[i]['outlet']}: "
                    f"{rows[i]['headline']}{how}{edit}"
                )
    return result


def _pairs(rows: list[dict], group: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping against the labelled stories (a pair of two
    unlabelled headlines is not scored)."""
    tp = fp = fn = 0
    for a, b in combinations(range(len(rows)), 2):
        if not (rows[a]["story"] or rows[b]["story"]):
            continue
        same_truth = rows[a]["story"] == rows[b]["story"]
        same_pred = group[a] == group[b]
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--window-hours", type=float, default=None)
    ap.add_argument("--show", action="store_true", help="list each cluster's headlines")
    ap.add_argument("--sweep", action="store_true", help="try several thresholds")
    ap.add_argument(
        "--no-edits",
        action="store_true",
        help="cluster an outlet's light edits like any other item",
    )
    ap.add_argument(
        "--all",
        action="store_true",
        help="cluster every dated headline, not only those the matcher alerts on",
    )
    ap.add_argument(
        "--follow-ups",
        choices=FOLLOW_UP_LEVELS,
        default="shipped",
        help="the follow-up rules, from loosest to strictest (shipped: the bot's)",
    )
    args = ap.parse_args(argv)
    config = load_config(ROOT / "config.yaml")
    threshold = args.threshold if args.threshold is not None else config.stories.threshold
    window = args.window_hours if args.window_hours is not None else config.stories.window_hours
    thresholds = [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7] if args.sweep else [threshold]
    print(
        f"{'threshold':>9} {'window_h':>8} {'pair_P':>7} {'pair_R':>7} {'thread_P':>8} "
        f"{'thread_R':>8} {'notif':>5} {'follow':>6} {'stories':>7} {'notif/story':>11} "
        f"{'A800':>4}"
    )
    for t in thresholds:
        r = evaluate(
            t,
            window,
            show=args.show and not args.sweep,
            everything=args.all,
            edits=not args.no_edits,
            follow_up=FOLLOW_UP_LEVELS[args.follow_ups],
        )
        print(
            f"{t:9.2f} {window:8.0f} {r['pair_precision']:7.3f} {r['pair_recall']:7.3f} "
            f"{r['thread_precision']:8.3f} {r['thread_recall']:8.3f} {r['alerts']:5d} "
            f"{r['followups']:6d} {r['true_stories']:7d} {r['alerts_per_story']:11.2f} "
            f"{r['a800_alerts']:4d}"
        )
    scope = "every dated headline" if args.all else "the headlines the matcher alerts on"
    print(
        f"(clustered {scope}: {r['headlines']}, of which {r['story_headlines']} belong to "
        f"{r['true_stories']} multi-outlet stories; {r['edits']} light edits of an outlet's "
        f"own headline count as their original; notif: notifications of the multi-outlet "
        f"stories' headlines, follow: their quiet follow-ups; A800: the notifications of the "
        f"14-outlet story {A800})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
