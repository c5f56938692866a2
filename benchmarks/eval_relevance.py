"""Evaluate the rules alone and the rules with the learned second opinion, set by set.

With no file, scores every training set of ``benchmarks/train_relevance.py``: those figures are
in-sample (the model was trained on them; its cross-validated figures come from
``train_relevance.py --cv``). Given files (a blind batch, scored once), scores those, and prints
the learned opinion's precision-recall curve over thresholds on them. The losing error first:
false alerts the opinion adds, then the positives still missed.

    python benchmarks/eval_relevance.py [--show]
    python benchmarks/eval_relevance.py benchmarks/data/relevance_blind.tsv --curve
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from train_relevance import TRAINING, Row, read_rows  # noqa: E402

from alerts.config import LEARNED_RULE, load_config  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402

from eval_match import Scores  # noqa: E402


def kind_of(path: Path) -> str:
    """The shape of a labelled file, from its header."""
    header = path.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
    if "event" in header:
        return "events"
    return "real" if "headline" in header else "labelled"


def evaluate(name: str, rows: list[Row], matcher, *, show: bool, curve: bool) -> None:
    alone, together = Scores(), Scores()
    added_fp, added_tp, missed, scores = [], [], [], []
    for row in rows:
        result = matcher.match(row.title, row.summary)
        by_rules = result.alert and result.rules != (LEARNED_RULE,)
        alone.add(row.label, by_rules)
        together.add(row.label, result.alert)
        if result.opinion is not None:
            scores.append((result.opinion.score, row.label))
        if result.alert and not by_rules:
            (added_tp if row.label else added_fp).append((row, result))
        elif row.label and not result.alert:
            missed.append((row, result))
    print(
        f"{name:<24} {len(rows):>4} {alone.tp + alone.fn:>4} | "
        f"{alone.precision:.3f} {alone.recall:.3f} {alone.fp:>3} | "
        f"{together.precision:.3f} {together.recall:.3f} {together.fp:>3} | "
        f"+{len(added_tp):<3} +{len(added_fp)}"
    )
    if show:
        for label, found in (("FALSE ALERT ADDED", added_fp), ("still missed", missed)):
            for row, result in found:
                learned = result.opinion.explain() if result.opinion else "not asked"
                print(f"    {label}: {row.title}  [{learned}]")
    if curve:
        asked = sum(1 for _ in scores)
        print(f"\n  the learned opinion's curve on {name} ({asked} rows asked, rules aside):")
        print(f"  {'threshold':>9} {'false added':>11} {'true added':>10} precision recall")
        ruled_tp = alone.tp
        for t in np.round(np.arange(0.50, 0.995, 0.02), 2):
            tp = sum(1 for s, y in scores if s >= t and y)
            fp = sum(1 for s, y in scores if s >= t and not y)
            p = (ruled_tp + tp) / max(1, ruled_tp + tp + alone.fp + fp)
            r = (ruled_tp + tp) / max(1, alone.tp + alone.fn)
            print(f"  {t:9.2f} {fp:11d} {tp:10d} {p:9.3f} {r:6.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "files", nargs="*", type=Path, help="labelled files (default: the training sets)"
    )
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--threshold", type=float, default=None, help="instead of the config's")
    ap.add_argument("--show", action="store_true", help="list added false alerts and misses")
    ap.add_argument("--curve", action="store_true", help="precision-recall over thresholds")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    learned = cfg.learned
    if args.threshold is not None:
        learned = replace(learned, threshold=args.threshold)
    matcher = compile_matcher(cfg.watchlists, cfg.rules, learned)
    sets = [(p, kind_of(p)) for p in args.files] or list(TRAINING)
    blind = bool(args.files)
    print(
        f"learned opinion: {'on' if learned.enabled else 'off'}, threshold {learned.threshold:g}"
        + ("" if blind else "  (every set below was trained on: in-sample)")
    )
    print(
        f"{'set':<24} {'rows':>4} {'pos':>4} | {'rules alone: P, R, FP':<21} | "
        f"{'with learned: P, R, FP':<22} | added TP, FP"
    )
    for path, kind in sets:
        rows = read_rows(path, kind, blind_ok=blind)
        evaluate(path.stem, rows, matcher, show=args.show, curve=args.curve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
