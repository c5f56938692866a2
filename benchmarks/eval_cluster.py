"""Evaluate story clustering on the real multi-outlet stories in ../shared/eval.

Feeds every dated headline of ``headlines_real.tsv`` through the clustering in time order (the
default config's matcher supplies the watchlist entities) and reports, over the headlines that
carry a ``story`` id:

- pairwise precision and recall of the grouping (a pair is "together" when both headlines got
  the same story);
- alerts that would have been sent (clusters) against the number of distinct true stories.

Headlines without a story id take part too, as distractors: a wrong merge with one of them costs
precision.

As in the pipeline, a light edit of a headline the same outlet ran in the last 7 days (the edit
rule of ``alerts.dedupe``) is the same item: it makes no alert of its own and counts as being in
its original's cluster (``--no-edits`` clusters it like any other item).

    python benchmarks/eval_cluster.py [--threshold 0.5] [--window-hours 48] [--show] [--no-edits]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.dedupe import edited_titles, title_key  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.stories import cluster_offline  # noqa: E402

REAL = ROOT.parent / "shared" / "eval" / "headlines_real.tsv"
A800 = "2022-11-a800"  # 14 outlets, one event: issue #12 wants at most 2 alerts for it


def parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    for parse in (
        lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        parsedate_to_datetime,
    ):
        try:
            d = parse(value)
        except (ValueError, TypeError, IndexError):
            continue
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return None


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
    assigned = [0] * len(rows)
    stories = cluster_offline(items, window=timedelta(hours=window_hours), threshold=threshold)
    for i, story in zip(kept, stories, strict=True):
        assigned[i] = story
    for i, j in original.items():
        assigned[i] = assigned[j]

    labelled = [i for i, r in enumerate(rows) if r["story"]]
    tp = fp = fn = 0
    for a, b in combinations(range(len(rows)), 2):
        same_truth = bool(rows[a]["story"]) and rows[a]["story"] == rows[b]["story"]
        same_pred = assigned[a] == assigned[b]
        if not (rows[a]["story"] or rows[b]["story"]):
            continue
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    stories = {rows[i]["story"] for i in labelled}
    clusters = {assigned[i] for i in labelled}
    a800 = len({assigned[i] for i in labelled if rows[i]["story"] == A800})
    result = {
        "headlines": len(rows),
        "story_headlines": len(labelled),
        "true_stories": len(stories),
        "alerts": len(clusters),
        "alerts_per_story": len(clusters) / len(stories),
        "pair_precision": tp / (tp + fp) if tp + fp else 1.0,
        "pair_recall": tp / (tp + fn) if tp + fn else 1.0,
        "edits": len(original),
        "a800_alerts": a800,
    }
    if show:
        by_cluster = defaultdict(list)
        for i in range(len(rows)):
            by_cluster[assigned[i]].append(i)
        for cid, members in sorted(by_cluster.items()):
            if not any(rows[i]["story"] for i in members):
                continue
            print(f"cluster {cid}:")
            for i in members:
                edit = " (an edit)" if i in original else ""
                print(
                    f"  [{rows[i]['story'] or '-'}] {rows[i]['when']:%Y-%m-%d %H:%M} "
                    f"{rows[i]['outlet']}: {rows[i]['headline']}{edit}"
                )
    return result


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
    args = ap.parse_args(argv)
    config = load_config(ROOT / "config.yaml")
    threshold = args.threshold if args.threshold is not None else config.stories.threshold
    window = args.window_hours if args.window_hours is not None else config.stories.window_hours
    thresholds = [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7] if args.sweep else [threshold]
    print(
        f"{'threshold':>9} {'window_h':>8} {'pair_P':>7} {'pair_R':>7} {'alerts':>6} "
        f"{'stories':>7} {'alerts/story':>12} {'A800':>4}"
    )
    for t in thresholds:
        r = evaluate(
            t,
            window,
            show=args.show and not args.sweep,
            everything=args.all,
            edits=not args.no_edits,
        )
        print(
            f"{t:9.2f} {window:8.0f} {r['pair_precision']:7.3f} {r['pair_recall']:7.3f} "
            f"{r['alerts']:6d} {r['true_stories']:7d} {r['alerts_per_story']:12.2f} "
            f"{r['a800_alerts']:4d}"
        )
    scope = "every dated headline" if args.all else "the headlines the matcher alerts on"
    print(
        f"(clustered {scope}: {r['headlines']}, of which {r['story_headlines']} belong to "
        f"{r['true_stories']} multi-outlet stories; {r['edits']} light edits of an outlet's "
        f"own headline count as their original; A800: the alerts of the 14-outlet story "
        f"{A800})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
