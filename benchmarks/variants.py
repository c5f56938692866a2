"""Score an experiment's variant of the story rules (a ``StoryIndex`` subclass) the way the
shipped rules are scored: the busy day and other event files through the pipeline
(``eval_events``), then the real set's multi-outlet stories (``eval_cluster``). Used by
``eval_meaning.py`` and ``eval_time.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from alerts.cluster import Clusterer, StoryIndex  # noqa: E402

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
