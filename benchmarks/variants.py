"""Score an experiment's variant of the story rules (a ``StoryIndex`` subclass) the way the
shipped rules are scored: the busy day and other event files through the pipeline
(``eval_events``), then the real set's multi-outlet stories (``eval_cluster``). Used by
``eval_meaning.py`` and ``eval_time.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from alerts.cluster import (  # noqa: E402
    Clusterer,
    Headline,
    Story,
    StoryIndex,
    _by_kind,
    _conflict,
    _same_subject,
    _specific_of,
    _veto,
)

import eval_cluster  # noqa: E402
import eval_events  # noqa: E402

# Called with the keyword arguments of ``StoryIndex``: window, threshold, and (inside the
# pipeline's clusterer) categories and rarity.
MakeIndex = Callable[..., StoryIndex]

HEADER = f"{'file':24} {'swallowed':>9} {'wrong':>5} {'alerts/ev':>9} {'pair_P':>6} {'pair_R':>6}"


def clusterer_class(make_index: MakeIndex) -> type[Clusterer]:
    """A ``Clusterer`` on the variant's index (for ``eval_events``: its store starts empty)."""

    class VariantClusterer(Clusterer):
        def __init__(self, store, config, **kwargs) -> None:
            super().__init__(store, config, **kwargs)
            old = self.index
            self.index = make_index(
                window=old.window,
                threshold=old.threshold,
                categories=old._category,
                rarity=old.rarity,
            )
            assert not old.stories, "measured on a fresh store only"

    return VariantClusterer


def open_candidates(
    index: StoryIndex, item: Headline, at: datetime, source: str
) -> Iterator[Story]:
    """The index's candidate stories an experimental rule may join the item to: open at
    ``at``, not reported by the item's outlet, naming no other company or model, no veto
    against the title, and a specific subject of the title in common with the item."""
    earliest, latest, born = at - index.window, at + index.window, at - 2 * index.window
    mine, mine_specific = _by_kind(item.specific), _specific_of(item.entities)
    for sid in index._candidates(item):
        story = index.stories[sid]
        first = story.members[0]
        if (
            story.last_seen < earliest
            or not born <= story.first_seen <= latest
            or source in story.sources
            or _conflict(mine, story.specific)
            or _veto(item, first)
            or not any(
                _same_subject(x, y) for x in mine_specific for y in _specific_of(first.entities)
            )
        ):
            continue
        yield story


def score(
    label: str,
    make_index: MakeIndex,
    others: Sequence[Path],
    *,
    threshold: float,
    window_hours: float,
) -> None:
    """Print one line per file (the busy day, then ``others`` with ``--any-subject``) and one
    for the real set, each starting with ``label``; wrong joins under their file."""
    cls = clusterer_class(make_index)
    for path, any_subject in [(eval_events.BUSY, False), *((p, True) for p in others)]:
        r = eval_events.evaluate(path, any_subject=any_subject, clusterer_class=cls)
        print(
            f"{label} {r['file']:24.24} {len(r['swallowed']):9d} "
            f"{len(r['wrong_joins']):5d} {r['alerts_per_event']:9.2f} "
            f"{r['pair_precision']:6.3f} {r['pair_recall']:6.3f}"
        )
        for w in r["wrong_joins"]:
            print(f"{'':{len(label) + 1}} wrong join: {w.source}: {w.headline} [{w.event}]")
    index = make_index(window=timedelta(hours=window_hours), threshold=threshold)
    real = eval_cluster.evaluate(threshold, window_hours, index=index)
    print(
        f"{label} {'real set (alerting)':24} pairwise P / R {real['pair_precision']:.3f} / "
        f"{real['pair_recall']:.3f}, {real['alerts']} alerts for {real['true_stories']} "
        f"stories, A800 story: {real['a800_alerts']} alerts"
    )
