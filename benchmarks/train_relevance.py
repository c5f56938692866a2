"""Train the learned second opinion (``alerts/relevance.json``) from the labelled data in the
repository, reproducibly: the same data gives the same file, byte for byte.

The model is an L2-regularised logistic regression over the features of ``alerts.relevance``
(words and word pairs of the normalised title and summary, and the watchlist categories the
matcher found), fitted by Newton's method in numpy (a training-only dependency)
on the rows the opinion would be asked about: those with at least one watchlist match. The
threshold is chosen by grouped cross-validation (``--cv``), precision first: the lowest at which
the opinion, asked only where no rule holds, adds at most ``MAX_CV_FALSE`` false alerts out of
fold over all the training negatives (one event's or story's headlines stay in one fold).

    python benchmarks/train_relevance.py            # writes alerts/relevance.json
    python benchmarks/train_relevance.py --cv       # cross-validated curve and threshold; writes nothing
    python benchmarks/train_relevance.py --check    # exit 1 when the committed file differs

Never trained or tuned on: the blind batches (``BLIND`` below), scored once each at the end.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.config import LearnedConfig, load_config  # noqa: E402
from alerts.match import compile_matcher, normalise  # noqa: E402
from alerts.relevance import MODEL_PATH, features, model_text  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
TESTS = ROOT / "tests" / "data"
# (path, kind): "labelled" has label, trap/class, title, summary; "real" label, story, headline;
# "events" minute, source, event, label, headline (one row a headline).
TRAINING = (
    (TESTS / "labelled_headlines.tsv", "labelled"),
    (TESTS / "labelled_business.tsv", "labelled"),
    (DATA / "heldout_recall.tsv", "labelled"),
    (DATA / "relevance_train.tsv", "labelled"),
    (TESTS / "headlines_real.tsv", "real"),
    (TESTS / "busy_days.tsv", "events"),
    (DATA / "events_dev.tsv", "events"),
    (DATA / "events_heldout.tsv", "events"),
    (DATA / "events_blind.tsv", "events"),
)
BLIND = (
    "relevance_blind.tsv",
    "relevance_blind2.tsv",
    "events_blind2.tsv",
    "events_blind3.tsv",
    "events_blind4.tsv",
)
C = 1.0  # inverse regularisation strength, as scikit-learn's C (chosen with --cv)
THRESHOLD = 0.89  # chosen with --cv (the rule in the docstring); the config's default
MAX_CV_FALSE = 1
TOLERANCE = 1e-8  # of the gradient's norm
FOLDS = 10


@dataclass(frozen=True)
class Row:
    label: int
    group: str  # rows of one event or story share a fold
    title: str
    summary: str = ""


def read_rows(path: Path, kind: str, *, blind_ok: bool = False) -> list[Row]:
    """A labelled file's rows (``blind_ok``: for scoring a blind batch, never for training)."""
    if path.name in BLIND and not blind_ok:
        raise SystemExit(f"{path.name} is a blind batch: never trained on")
    with open(path, encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = []
    for i, r in enumerate(table):
        if kind == "labelled":
            rows.append(
                Row(int(r["label"]), f"{path.name}:{i}", r["title"], r.get("summary") or "")
            )
        elif kind == "real" and r["label"] in ("0", "1"):
            rows.append(Row(int(r["label"]), f"{path.name}:{r['story'] or i}", r["headline"]))
        elif kind == "events":
            rows.append(Row(int(r["label"]), f"{path.name}:{r['event']}", r["headline"]))
    return rows


@dataclass(frozen=True)
class Prepared:
    rows: list[Row]
    found: list[dict[str, float]]  # each row's features
    asked: np.ndarray  # the opinion would be asked: a watchlist match
    ruled: np.ndarray  # a rule holds already
    y: np.ndarray


def prepare(config_path: Path = ROOT / "config.yaml") -> Prepared:
    """Every training row with its features and what the rules say of it."""
    cfg = load_config(config_path)
    matcher = compile_matcher(cfg.watchlists, cfg.rules, LearnedConfig(enabled=False))
    rows = [row for path, kind in TRAINING for row in read_rows(path, kind)]
    found, asked, ruled = [], [], []
    for row in rows:
        result = matcher.match(row.title, row.summary)
        summary = normalise(row.summary).split() if row.summary else []
        found.append(features(normalise(row.title).split(), summary, sorted(result.categories())))
        asked.append(bool(result.matches))
        ruled.append(result.alert)
    return Prepared(
        rows, found, np.array(asked), np.array(ruled), np.array([r.label for r in rows])
    )


def fit(
    found: list[dict[str, float]], y: np.ndarray, *, c: float = C
) -> tuple[float, dict[str, float]]:
    """(bias, weights) minimising ||w||^2 / 2c + the log loss summed over the rows, by Newton's
    method with conjugate gradients, in a fixed order of operations (so, reproducible)."""
    names = sorted({f for row in found for f in row})
    index = {f: i for i, f in enumerate(names)}
    ri = np.array([i for i, row in enumerate(found) for _ in row], dtype=np.int64)
    ci = np.array([index[f] for row in found for f in sorted(row)], dtype=np.int64)
    vi = np.array([row[f] for row in found for f in sorted(row)], dtype=np.float64)
    n, d = len(found), len(names)
    yf = y.astype(np.float64)

    def times(w: np.ndarray) -> np.ndarray:  # X @ w
        return np.bincount(ri, weights=vi * w[ci], minlength=n)

    def times_t(r: np.ndarray) -> np.ndarray:  # X.T @ r
        return np.bincount(ci, weights=vi * r[ri], minlength=d)

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = times(w) + b
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the sigmoid, without overflow
        loss = float(np.sum(np.logaddexp(0.0, z) - yf * z) + w @ w / (2 * c))
        r = p - yf
        return loss, np.concatenate([times_t(r) + w / c, [r.sum()]]), p * (1.0 - p)

    def hessian_times(h: np.ndarray, v: np.ndarray) -> np.ndarray:
        q = h * (times(v[:d]) + v[d])
        return np.concatenate([times_t(q) + v[:d] / c, [q.sum()]])

    # Newton's method, each step solved by conjugate gradients, halved while the loss rises.
    theta = np.zeros(d + 1)
    loss, g, h = loss_grad(theta)
    for _ in range(100):
        if np.linalg.norm(g) < TOLERANCE:
            break
        step, r = np.zeros(d + 1), -g
        direction, rr = r.copy(), float(r @ r)
        for _ in range(500):
            hd = hessian_times(h, direction)
            alpha = rr / float(direction @ hd)
            step += alpha * direction
            r -= alpha * hd
            new_rr = float(r @ r)
            if new_rr < (1e-4 * TOLERANCE) ** 2:
                break
            direction = r + (new_rr / rr) * direction
            rr = new_rr
        t = 1.0
        while True:
            new_loss, new_g, new_h = loss_grad(theta + t * step)
            if new_loss <= loss or t < 1e-6:
                break
            t /= 2
        theta, loss, g, h = theta + t * step, new_loss, new_g, new_h
    return float(theta[d]), dict(zip(names, theta[:d].tolist(), strict=True))


def score(bias: float, weights: dict[str, float], found: dict[str, float]) -> float:
    z = bias + sum(v * weights.get(f, 0.0) for f, v in found.items())
    return 1.0 / (1.0 + np.exp(-z))


def train(data: Prepared, *, c: float = C) -> str:
    """The model file's text, trained on every row the opinion would be asked about."""
    rows = [i for i in range(len(data.rows)) if data.asked[i]]
    bias, weights = fit([data.found[i] for i in rows], data.y[rows], c=c)
    return model_text(
        bias=bias,
        weights=weights,
        threshold=THRESHOLD,
        about={
            "what": "chip-trade relevance: logistic regression, words, word pairs, categories",
            "trained_by": "python benchmarks/train_relevance.py",
            "C": c,
            "rows": len(rows),
            "positives": int(data.y[rows].sum()),
            "files": [str(p.relative_to(ROOT)) for p, _ in TRAINING],
        },
    )


def folds(groups: list[str], k: int = FOLDS) -> list[int]:
    """A fold for each row: whole groups, dealt largest first to the smallest fold so far."""
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    load = [0] * k
    where: dict[str, int] = {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(range(k), key=lambda i: (load[i], i))
        where[g] = f
        load[f] += sizes[g]
    return [where[g] for g in groups]


def cross_validate(data: Prepared, *, c: float = C) -> np.ndarray:
    """Each row's out-of-fold score (trained without its fold)."""
    fold = folds([r.group for r in data.rows])
    oof = np.zeros(len(data.rows))
    for f in range(FOLDS):
        train_rows = [i for i in range(len(data.rows)) if fold[i] != f and data.asked[i]]
        bias, weights = fit([data.found[i] for i in train_rows], data.y[train_rows], c=c)
        for i in range(len(data.rows)):
            if fold[i] == f:
                oof[i] = score(bias, weights, data.found[i])
    return oof


def curve(data: Prepared, oof: np.ndarray) -> float:
    """Print what the opinion adds at each threshold, out of fold; return the threshold the
    rule chooses (the lowest with at most MAX_CV_FALSE false alerts added)."""
    y, asked, ruled = data.y, data.asked, data.ruled
    missed = int(((y == 1) & ~ruled).sum())
    negatives = int(((y == 0) & asked & ~ruled).sum())
    print(
        f"{len(y)} rows, {int(y.sum())} positive; the rules alone: {int((ruled & (y == 1)).sum())}"
        f" true, {int((ruled & (y == 0)).sum())} false alerts (in-sample); {missed} positives"
        f" missed; {negatives} negatives the opinion is asked about"
    )
    print(f"{'threshold':>9} {'false added':>11} {'true added':>10}  precision  recall (together)")
    chosen = None
    for t in np.round(np.arange(0.50, 0.995, 0.01), 2):
        adds = asked & ~ruled & (oof >= t)
        fp, tp = int((adds & (y == 0)).sum()), int((adds & (y == 1)).sum())
        alert = ruled | adds
        p = (alert & (y == 1)).sum() / alert.sum()
        r = (alert & (y == 1)).sum() / (y == 1).sum()
        print(f"{t:9.2f} {fp:11d} {tp:6d}/{missed:<3d}  {p:9.3f}  {r:6.3f}")
        if chosen is None and fp <= MAX_CV_FALSE:
            chosen = float(t)
    return chosen if chosen is not None else 0.99


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="store_true", help="cross-validate; write nothing")
    ap.add_argument("--c", type=float, default=C, help="regularisation (default %(default)s)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed model differs")
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args(argv)
    data = prepare()
    if args.cv:
        chosen = curve(data, cross_validate(data, c=args.c))
        print(f"threshold chosen (at most {MAX_CV_FALSE} false alert added out of fold): {chosen}")
        return 0
    text = train(data, c=args.c)
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from a fresh training run'}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
