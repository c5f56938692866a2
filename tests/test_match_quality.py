"""The default watchlist on the labelled set (tests/data/labelled_headlines.tsv): overall
precision and recall, and every trap and phrasing class by name."""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import pytest

from tests.support import ROOT, shipped_config, shipped_matcher

DATA = ROOT / "tests" / "data" / "labelled_headlines.tsv"
CONFIG = shipped_config()
MATCHER = shipped_matcher()


def _rows():
    with DATA.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


ROWS = _rows()
BY_CLASS: dict[str, list[dict]] = defaultdict(list)
for _row in ROWS:
    BY_CLASS[_row["trap"]].append(_row)
# Classes where one wrong row in several is tolerated by the overall score, not by name.
CLASSES = sorted(c for c in BY_CLASS if c not in ("-", "heldout_pos", "heldout_neg"))


def _wrong(rows):
    return [
        (r["label"], r["title"])
        for r in rows
        if MATCHER.match(r["title"], r["summary"]).alert != (r["label"] == "1")
    ]


def test_labelled_set_is_big_and_covers_the_traps():
    assert len(ROWS) >= 200
    for trap in (
        "arm_farm",
        "intel_intelligence",
        "smic_seismic",
        "micron_micronesia",
        "ascend_ascendis",
        "digits",
        "hyundai_h200",
        "blackwell_surname",
        "licence_software",
        "trade_no_chips",
        "chips_no_policy",
        "short_token_typo",
    ):
        assert len(BY_CLASS[trap]) >= 4, trap


def test_precision_and_recall_on_the_labelled_set():
    tp = fp = fn = 0
    for r in ROWS:
        alert, want = MATCHER.match(r["title"], r["summary"]).alert, r["label"] == "1"
        tp += alert and want
        fp += alert and not want
        fn += want and not alert
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.95, f"precision {precision:.3f}"
    assert recall >= 0.95, f"recall {recall:.3f}"


@pytest.mark.parametrize("trap", CLASSES, ids=CLASSES)
def test_every_row_of_each_class_is_right(trap):
    assert _wrong(BY_CLASS[trap]) == []


def test_digits_never_cross_between_models():
    for r in BY_CLASS["digits"]:
        found = {m.term for m in MATCHER.match(r["title"], r["summary"]).matches}
        text = re.sub(r"(?<=[A-Z])[-\s](?=\d)", "", f"{r['title']} {r['summary']}".upper())
        for model in ("H20", "H200", "B20", "B200", "A800", "H800"):
            if model in found:
                assert re.search(rf"(?<![A-Z0-9]){model}(?!\d)", text), (model, r["title"])
