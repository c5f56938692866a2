"""Measure time proximity as one more way to join a story (issue #12): an experiment, not part
of the bot.

The idea: the outlets of one event report it in a burst, while distinct events about the same
subject are spread through the day, so an item could join a story at a lower bar while the
story's last (or first) report is recent. Whether that holds is a question about the data's
timestamps, so ``--gaps`` first prints, for each file, the time between two reports of one
event and of two events about the same subject (other outlets, a specific subject in common;
then also no veto and the same kind of action), and, under the bot's own clustering, how long
after its event's latest and first earlier report each duplicate alert came.

Only ``../shared/eval/headlines_real.tsv`` carries real publication times. ``busy_days.tsv``
reports events of 2022-2025 as one day on a regular grid (one headline every 4-5 minutes), and
the ``benchmarks/data/events_*.tsv`` sets were written by earlier sessions with made-up
minutes: their gaps show how they were written, not how news arrives.

The rule measured (``--windows``, ``--bars``, ``--from``): an item the bot's rules leave alone
joins the open story whose ``last`` (or ``first``) report is at most N minutes old when no veto
stops it (same outlet, other companies or models, countries, agencies, leading actor, numbers,
kind or direction of action, against the story's first headline and the member compared), it
names a specific subject of the story's first headline, both report the same kind of action,
and the similarity with a member reaches the bar (the rule for the kind of action alone is
lifted: that is what the bar is for). Through the same code as ``eval_events.py`` and
``eval_cluster.py``: the busy day (shipped rules) and each other file (``--any-subject``) -
swallowed events, wrong joins, alerts per event - then the real set's pairwise precision /
recall and the alerts of its largest story (A800). Window 0 is the bot as it is.

    python benchmarks/eval_time.py [FILE…] [--gaps] [--windows 0 30 60 120] [--bars 0.3 0.2]
        [--from last|first]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import variants  # noqa: E402

from alerts.cluster import (  # noqa: E402
    Decision,
    Headline,
    Story,
    StoryIndex,
    _by_kind,
    _conflict,
    _same_subject,
    _specific_of,
    _veto,
    cluster_offline,
    headline_features,
)
from alerts.config import Rule, load_config  # noqa: E402
from alerts.match import Matcher, compile_matcher  # noqa: E402
from alerts.types import Match  # noqa: E402

import eval_cluster  # noqa: E402
import eval_events  # noqa: E402


class TimeIndex(StoryIndex):
    """``StoryIndex`` with the rule measured added after the bot's decision."""

    def __init__(self, *, within: timedelta, bar: float, since: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.within, self.bar, self.since = within, bar, since

    def decide(self, item: Headline, at: datetime, *, source: str = "") -> Decision:
        decision = super().decide(item, at, source=source)
        if decision.story is not None or not self.within or not item.entities:
            return decision
        return self._by_time(item, at, source) or decision

    def _by_time(self, item: Headline, at: datetime, source: str) -> Decision | None:
        best: tuple[float, Story] | None = None
        for story in variants.open_candidates(self, item, at, source):
            first = story.members[0]
            reference = story.last_seen if self.since == "last" else story.first_seen
            if at - reference > self.within or not item.primary or item.primary != first.primary:
                continue
            score = max(
                (
                    self.similarity(item, m)
                    for m in story.members
                    if m is first or not _veto(item, m)
                ),
                default=0.0,
            )
            if score >= self.bar and (best is None or score > best[0]):
                best = (score, story)
        if best is None:
            return None
        return Decision(best[1], best[0], ("time",))


# --- the data's time gaps -------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    minute: float  # minutes since an arbitrary origin
    outlet: str
    event: str  # "" when the file gives none (the real set's single headlines)
    headline: str
    features: Headline
    matches: tuple[Match, ...]


def _alerting(path: Path, matcher: Matcher) -> list[Report]:
    out = []
    for r in eval_events.read_rows(path):
        result = matcher.match(r.headline)
        if result.alert:
            features = headline_features(r.headline, result.matches)
            out.append(
                Report(r.minute, r.source, r.event, r.headline, features, tuple(result.matches))
            )
    return out


def _real(matcher: Matcher) -> list[Report]:
    out = []
    with eval_cluster.REAL.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            when = eval_cluster.parse_date(r["date"])
            result = matcher.match(r["headline"])
            if when is None or not result.alert:
                continue
            features = headline_features(r["headline"], result.matches)
            out.append(
                Report(
                    when.timestamp() / 60,
                    r["outlet"] or "unknown",
                    r["story"],
                    r["headline"],
                    features,
                    tuple(result.matches),
                )
            )
    return out


def _describe(gaps: Sequence[float]) -> str:
    if not gaps:
        return "n=0"
    xs = sorted(gaps)
    within = " ".join(f"{sum(x <= c for x in xs)}" for c in (30, 60, 120, 240))
    return f"n={len(xs):4d}  median {statistics.median(xs):6.0f} min  <=30/60/120/240 min: {within}"


def pair_gaps(reports: Sequence[Report], window_minutes: float = 48 * 60) -> None:
    """Gaps between two reports of one event and of two events, same subject, other outlets."""
    found: dict[str, tuple[list[float], list[float]]] = {"subject": ([], []), "gated": ([], [])}
    for a, b in combinations(reports, 2):
        gap = abs(a.minute - b.minute)
        if gap > window_minutes or a.outlet == b.outlet:
            continue
        fa, fb = a.features, b.features
        if not any(
            _same_subject(x, y)
            for x in _specific_of(fa.entities)
            for y in _specific_of(fb.entities)
        ):
            continue
        same = 0 if a.event and a.event == b.event else 1
        found["subject"][same].append(gap)
        if (
            _conflict(_by_kind(fa.specific), _by_kind(fb.specific))
            or _veto(fa, fb)
            or _veto(fb, fa)
            or not fa.primary
            or fa.primary != fb.primary
        ):
            continue
        found["gated"][same].append(gap)
    print("  pairs of reports by other outlets with a specific subject in common, within 48 h:")
    print(f"    one event    {_describe(found['subject'][0])}")
    print(f"    two events   {_describe(found['subject'][1])}")
    print("  of which no veto and the same kind of action:")
    print(f"    one event    {_describe(found['gated'][0])}")
    print(f"    two events   {_describe(found['gated'][1])}")


def duplicate_gaps(reports: Sequence[Report], threshold: float, window_hours: float) -> None:
    """Under the bot's clustering: how long after its event's latest (and first) earlier
    report each duplicate alert (an item starting a story its event already has) came."""
    origin = datetime(2026, 1, 1, tzinfo=timezone.utc)
    items = [
        (
            r.headline,
            origin + timedelta(minutes=r.minute),
            r.outlet,
            r.matches,
        )
        for r in reports
    ]
    stories = cluster_offline(items, window=timedelta(hours=window_hours), threshold=threshold)
    started: set[int] = set()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    to_last, to_first = [], []
    for i in sorted(range(len(reports)), key=lambda i: reports[i].minute):
        r = reports[i]
        if stories[i] not in started and r.event in last:
            to_last.append(r.minute - last[r.event])
            to_first.append(r.minute - first[r.event])
        started.add(stories[i])
        if r.event:
            last[r.event] = r.minute
            first.setdefault(r.event, r.minute)
    print(f"  duplicate alerts under the bot ({len(to_last)}), minutes after their event's")
    print(f"    latest earlier report  {_describe(to_last)}")
    print(f"    first report           {_describe(to_first)}")
    if to_last:
        print(f"    each (latest): {', '.join(f'{x:.0f}' for x in sorted(to_last))}")


def gaps(paths: Sequence[Path], threshold: float, window_hours: float) -> None:
    config = load_config(ROOT / "config.yaml")
    shipped = compile_matcher(config.watchlists, config.rules)
    anything = compile_matcher(
        config.watchlists, (Rule(name="any-subject", any_of=("chips", "companies")),)
    )
    sets = [
        ("headlines_real.tsv (REAL publication times; alerting headlines)", _real(shipped)),
        (
            "busy_days.tsv (artificial times: 2022-2025 events on a 4-5 minute grid)",
            _alerting(eval_events.BUSY, shipped),
        ),
        *(
            (f"{p.name} (times written by a session, --any-subject)", _alerting(p, anything))
            for p in paths
        ),
    ]
    for name, reports in sets:
        print(f"{name}: {len(reports)} headlines")
        pair_gaps(reports)
        duplicate_gaps(reports, threshold, window_hours)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="besides the busy day (--any-subject)")
    ap.add_argument("--gaps", action="store_true", help="first, the data's time gaps")
    ap.add_argument("--windows", nargs="+", type=float, default=[0, 30, 60, 120])
    ap.add_argument("--bars", nargs="+", type=float, default=[0.3, 0.2])
    ap.add_argument("--from", dest="since", choices=("last", "first"), default="last")
    args = ap.parse_args(argv)
    others = args.files or [eval_events.DEV]
    config = load_config(ROOT / "config.yaml")
    threshold, window = config.stories.threshold, config.stories.window_hours
    if args.gaps:
        gaps(others, threshold, window)
    print(f"{'minutes':>7} {'bar':>4} {variants.HEADER}")
    runs = sorted({(w, b if w else 0.0) for w in args.windows for b in args.bars})
    for within, bar in runs:
        variants.score(
            f"{within:7.0f} {bar:4.2f}",
            partial(TimeIndex, within=timedelta(minutes=within), bar=bar, since=args.since),
            others,
            threshold=threshold,
            window_hours=window,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
