"""The learned second opinion: how likely an item is chip-trade news, by a logistic model over
its words, word pairs and the watchlist categories it matched.

The rules decide what they decide well; this scores only what they leave alone (see
``alerts.match``). The model is a small reviewable file beside this module, ``relevance.json``
(feature -> weight, sorted), written by ``benchmarks/train_relevance.py`` from the labelled data
in the repository. Scoring is a dictionary lookup per feature and one sigmoid: no dependency,
nothing downloaded.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .types import Opinion

MODEL_PATH = Path(__file__).with_name("relevance.json")
# A summary is weaker evidence than a title, as for the matcher's scores.
SUMMARY_WEIGHT = 0.5
# The categories that name the chip side of a deal (the shipped watchlists' names): whether any
# matched is a feature of its own, the one that tells chip trade from other trade best.
CHIP_SIDE = frozenset({"chips", "companies", "chip_buyers"})
SHOWN = 3  # phrases named in an explanation
LONGEST = 4  # words in one of them


def features(
    title_words: Sequence[str], summary_words: Sequence[str], categories: Iterable[str]
) -> dict[str, float]:
    """An item's features: ``w:`` words and ``b:`` adjacent word pairs of its normalised title
    and summary (the summary's at half weight), ``cat:`` each matched category, and
    ``cat:chip_side`` when one of ``CHIP_SIDE`` matched."""
    found: dict[str, float] = {}
    for words, weight in ((title_words, 1.0), (summary_words, SUMMARY_WEIGHT)):
        for word in words:
            key = "w:" + word
            found[key] = found.get(key, 0.0) + weight
        for a, b in zip(words, words[1:], strict=False):
            key = f"b:{a} {b}"
            found[key] = found.get(key, 0.0) + weight
    for category in categories:
        found["cat:" + category] = 1.0
        if category in CHIP_SIDE:
            found["cat:chip_side"] = 1.0
    return found


@dataclass(frozen=True, slots=True)
class Model:
    """A logistic model: ``bias`` plus the weights of the features present."""

    bias: float
    weights: Mapping[str, float]
    threshold: float  # the threshold chosen when it was trained (config.yaml may set another)

    def opinion(self, found: Mapping[str, float], *, threshold: float, text: str = "") -> Opinion:
        """The score of an item's features, with the words that weighed most for it (``text``:
        its normalised words, space-padded, to join word pairs that overlap into phrases)."""
        weights = self.weights
        parts = [(f, v * weights[f]) for f, v in found.items() if f in weights]
        z = self.bias + math.fsum(c for _, c in parts)
        score = 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0
        # Words and word pairs, not categories: the matches already show those, and an admin
        # silences a learned alert by its words.
        said = sorted(
            ((f.partition(":")[2], c) for f, c in parts if c > 0 and not f.startswith("cat:")),
            key=lambda p: (-p[1], p[0]),
        )
        return Opinion(score=score, threshold=threshold, weighed=_phrases(said, text))


def _phrases(said: Sequence[tuple[str, float]], text: str) -> tuple[tuple[str, float], ...]:
    """The first ``SHOWN`` of ``said`` (words and word pairs, heaviest first) as phrases: a word
    inside a phrase already shown is left out, and one that the text has next to a shown phrase,
    or overlapping it by a word, extends it ("slams the" + "the door": "slams the door")."""
    shown: list[tuple[str, float]] = []
    for words, weight in said:
        for i, (phrase, total) in enumerate(shown):
            if f" {words} " in f" {phrase} ":
                break
            joined = next(
                (j for j in _joins(phrase, words) if j.count(" ") < LONGEST and f" {j} " in text),
                "",
            )
            if joined:
                shown[i] = (joined, total + weight)
                break
        else:
            if len(shown) == SHOWN:
                break
            shown.append((words, weight))
    shown.sort(key=lambda p: (-p[1], p[0]))
    return tuple((p, round(c, 2)) for p, c in shown)


def _joins(x: str, y: str) -> list[str]:
    """The phrases ``x`` and ``y`` make in either order, side by side or overlapping by a word."""
    found = []
    for first, then in ((x, y), (y, x)):
        a, b = first.split(" "), then.split(" ")
        found.append(f"{first} {then}")
        if len(b) > 1 and a[-1] == b[0]:
            found.append(" ".join(a + b[1:]))
    return found


def read_model(text: str) -> Model:
    """A model from the text of a model file."""
    doc = json.loads(text)
    return Model(
        bias=float(doc["bias"]),
        weights={str(k): float(v) for k, v in doc["weights"].items()},
        threshold=float(doc["threshold"]),
    )


@functools.cache
def shipped_model() -> Model:
    """The model that ships with the package, read once."""
    return read_model(MODEL_PATH.read_text(encoding="utf-8"))


def model_text(
    *, bias: float, weights: Mapping[str, float], threshold: float, about: Mapping[str, object]
) -> str:
    """A model file: sorted, rounded, one weight a line, so that a retrained model reads as a
    diff and the same data gives the same bytes."""
    doc = {
        "about": dict(about),
        "bias": round(bias, 4),
        "threshold": threshold,
        "weights": {k: round(w, 4) for k, w in sorted(weights.items()) if round(w, 4) != 0},
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
