"""Evaluate the chipwatch matcher on labelled headlines.

By default reads the real headlines in /work/shared/eval/headlines_real.tsv (columns label, story,
headline, outlet, date, collected_from; label 1/0/?, ``?`` rows skipped) and matches each headline
as a title with no summary. With ``--labelled PATH`` it reads the project's own labelled set
(columns label, trap, title, summary), matches title and summary, and adds error counts per trap
class.

    python benchmarks/eval_match.py [--config config.yaml] [--show-errors]
    python benchmarks/eval_match.py --labelled tests/data/labelled_headlines.tsv --show-errors
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.config import load_config  # noqa: E402
from alerts.match import MatchResult, compile_matcher  # noqa: E402

DEFAULT_REAL = Path("/work/shared/eval/headlines_real.tsv")
DEFAULT_LABELLED = ROOT / "tests" / "data" / "labelled_headlines.tsv"
DEFAULT_CONFIG = ROOT / "config.yaml"


@dataclass(frozen=True)
class Item:
    """One labelled headline: gold label, group (trap class or story), title, summary."""

    label: int
    group: str
    title: str
    summary: str = ""


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_real(path: Path = DEFAULT_REAL) -> tuple[list[Item], int]:
    """Scored rows of the real set (title only) and the number of ``?`` rows skipped."""
    items, skipped = [], 0
    for row in _read_tsv(path):
        label = row["label"].strip()
        if label not in ("0", "1"):
            skipped += 1
            continue
        items.append(Item(int(label), row.get("story", ""), row["headline"]))
    return items, skipped


def read_labelled(path: Path = DEFAULT_LABELLED) -> list[Item]:
    """All rows of the project's labelled set (label, trap, title, summary)."""
    return [
        Item(int(r["label"]), r.get("trap") or "-", r["title"], r.get("summary") or "")
        for r in _read_tsv(path)
    ]


@dataclass
class Scores:
    """Confusion counts and the usual ratios."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, gold: int, pred: bool) -> None:
        if pred:
            if gold:
                self.tp += 1
            else:
                self.fp += 1
        elif gold:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self) -> str:
        return (
            f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"(TP {self.tp}  FP {self.fp}  FN {self.fn}  TN {self.tn})"
        )


def _digit_confusions(result: MatchResult) -> list[str]:
    """Model-number matches whose digits differ from the text they came from (H20 read as H200)."""
    bad = []
    for m in result.matches:
        want = re.findall(r"\d+", m.term)
        if want and m.kind != "fuzzy" and re.findall(r"\d+", m.text) != want:
            # an alias such as "MI308X" keeps the digits; a different number is a confusion
            bad.append(f"{m.term} <- {m.text!r}")
    return bad


def evaluate(items: list[Item], matcher, *, show_errors: bool, by_group: bool) -> Scores:
    """Match every item, print the scores (and errors, per-group counts if asked)."""
    total = Scores()
    groups: dict[str, Scores] = defaultdict(Scores)
    errors: dict[str, list[tuple[Item, MatchResult]]] = {"FP": [], "FN": []}
    confusions = []
    for item in items:
        result = matcher.match(item.title, item.summary)
        total.add(item.label, result.alert)
        groups[item.group].add(item.label, result.alert)
        if result.alert != bool(item.label):
            errors["FP" if result.alert else "FN"].append((item, result))
        confusions += [(item, c) for c in _digit_confusions(result)]

    print(f"items {len(items)}  positives {total.tp + total.fn}  negatives {total.fp + total.tn}")
    print(total.line())
    if by_group:
        print(f"\n{'trap class':<20} {'rows':>5} {'pos':>4} {'neg':>4} {'FP':>4} {'FN':>4}")
        for name in sorted(groups, key=lambda g: (g == "-", g)):
            s = groups[name]
            print(
                f"{name:<20} {s.tp + s.fp + s.fn + s.tn:>5} {s.tp + s.fn:>4} "
                f"{s.fp + s.tn:>4} {s.fp:>4} {s.fn:>4}"
            )
        print(f"model-number confusions (e.g. H20 reported as H200): {len(confusions)}")
        for item, c in confusions:
            print(f"  {c}  in {item.title!r}")
    if show_errors:
        for kind in ("FP", "FN"):
            print(
                f"\n--- {'false positives' if kind == 'FP' else 'false negatives'} "
                f"({len(errors[kind])}) ---"
            )
            for item, result in errors[kind]:
                tag = f"[{item.group}] " if by_group else ""
                print(f"{kind} {tag}{item.title}")
                if item.summary:
                    print(f"   summary: {item.summary}")
                print("   " + result.explain().replace("\n", "\n   "))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="config whose watchlists and rules to use (default: %(default)s)",
    )
    ap.add_argument(
        "--real", type=Path, default=DEFAULT_REAL, help="real headlines TSV (default: %(default)s)"
    )
    ap.add_argument(
        "--labelled",
        type=Path,
        nargs="?",
        const=DEFAULT_LABELLED,
        default=None,
        help="evaluate on the project's labelled TSV instead "
        f"(default path if given bare: {DEFAULT_LABELLED.relative_to(ROOT)})",
    )
    ap.add_argument(
        "--show-errors",
        action="store_true",
        help="list false positives and negatives with the matcher's explanation",
    )
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    matcher = compile_matcher(cfg.watchlists, cfg.rules)
    if args.labelled is not None:
        items = read_labelled(args.labelled)
        print(f"labelled set: {args.labelled}  (title + summary)  config: {args.config}")
        evaluate(items, matcher, show_errors=args.show_errors, by_group=True)
    else:
        items, skipped = read_real(args.real)
        print(
            f"real set: {args.real}  (title only; {skipped} '?' rows skipped)  "
            f"config: {args.config}"
        )
        evaluate(items, matcher, show_errors=args.show_errors, by_group=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
