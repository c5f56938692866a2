"""Benchmark the chipwatch matcher against a naive rapidfuzz baseline.

Builds a 1,000-term watchlist (the default config's terms plus synthetic company names, model
numbers and phrases), generates 20,000 headlines (the labelled set's titles mixed with synthetic
ones, fixed seed), and reports compile time, peak memory of compiling (tracemalloc), matching
throughput, and the throughput of the baseline, ``rapidfuzz.process.extract(headline, terms,
scorer=fuzz.partial_ratio, limit=None)`` with score >= 90 counting as a match, timed on a subset.
Then scores chipwatch and the baseline on the labelled set (and the real set, if present) with the
default config. Offline, standard library + rapidfuzz only.

    python benchmarks/bench_match.py [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from rapidfuzz import fuzz, process, utils  # noqa: E402

from alerts.config import LearnedConfig, Rule, Term, load_config  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.relevance import MODEL_PATH  # noqa: E402

from common import made_up_word  # noqa: E402
from eval_match import (  # noqa: E402
    DEFAULT_CONFIG,
    DEFAULT_LABELLED,
    DEFAULT_REAL,
    Item,
    Scores,
    read_labelled,
    read_real,
)

BASELINE_CUTOFF = 90

# --- a synthetic but realistic watchlist ----------------------------------------------------

_SUFFIXES = [
    "",
    "",
    "",
    " Micro",
    " Semiconductor",
    " Systems",
    " Technologies",
    " Electronics",
    " Memory",
    " Devices",
    " Photonics",
    " Silicon",
    " Holdings",
]
_MODEL_PREFIXES = [
    "XK",
    "QX",
    "TR",
    "NV",
    "Z",
    "MX",
    "HX",
    "VS",
    "LP",
    "RX",
    "K",
    "Tera",
    "Orion",
    "Atlas",
    "Helix",
    "Nova",
]
_PHRASE_HEADS = [
    "foreign direct product",
    "dual-use",
    "end-use",
    "military end-user",
    "deemed",
    "de minimis",
    "validated end-user",
    "outbound investment",
    "reexport",
    "anti-dumping",
    "countervailing",
    "national security",
    "critical technology",
    "wafer fab",
    "advanced computing",
    "license exception",
    "know-your-customer",
    "chip security",
]
_PHRASE_TAILS = [
    "rule",
    "rules",
    "review",
    "screening",
    "regime",
    "probe",
    "duties",
    "order",
    "requirement",
    "certification",
    "exemption",
    "controls",
    "list",
    "framework",
]
_CONTEXT = ("chip", "chips", "GPU", "AI", "semiconductor", "accelerator")


def _company_name(rng: random.Random) -> str:
    return made_up_word(rng) + rng.choice(_SUFFIXES)


def _model_number(rng: random.Random) -> str:
    prefix = rng.choice(_MODEL_PREFIXES)
    digits = str(rng.randint(10, 9999))
    tail = rng.choice(["", "", "X", "A", "C", "D", " Pro", " Max", "e"])
    sep = rng.choice(["", "-", " "]) if prefix.isupper() else " "
    return f"{prefix}{sep}{digits}{tail}"


def _phrase(rng: random.Random) -> str:
    return f"{rng.choice(_PHRASE_HEADS)} {rng.choice(_PHRASE_TAILS)}"


def build_watchlist(
    base: Mapping[str, Sequence[Term]], size: int, rng: random.Random
) -> dict[str, tuple[Term, ...]]:
    """The base terms plus synthetic ones, ``size`` canonical terms in all."""
    lists = {cat: list(terms) for cat, terms in base.items()}
    seen = {t.name.casefold() for terms in lists.values() for t in terms}
    makers = [
        ("companies", _company_name, 0.45),
        ("chips", _model_number, 0.35),
        ("export_terms", _phrase, 0.20),
    ]
    total = sum(len(v) for v in lists.values())
    while total < size:
        r, acc = rng.random(), 0.0
        for cat, make, share in makers:  # noqa: B007 (cat and make are used after the break)
            acc += share
            if r <= acc:
                break
        name = make(rng)
        if name.casefold() in seen:
            continue
        seen.add(name.casefold())
        opts: dict = {}
        if cat == "companies" and rng.random() < 0.3:
            opts["aliases"] = (name.split()[0] + " Corp", name.upper().replace(" ", "")[:6])
        if cat == "chips" and rng.random() < 0.4:
            opts["context"] = _CONTEXT
        if cat == "chips" and rng.random() < 0.2:
            opts["aliases"] = (name.replace("-", "") + "X",)
        lists.setdefault(cat, []).append(Term(name=name, category=cat, **opts))
        total += 1
    return {cat: tuple(terms) for cat, terms in lists.items()}


# --- synthetic headlines --------------------------------------------------------------------

_SUBJECTS = [
    "US",
    "China",
    "Beijing",
    "Washington",
    "The Netherlands",
    "Japan",
    "Taiwan",
    "EU",
    "Commerce",
    "Regulators",
    "Lawmakers",
    "Investors",
    "Analysts",
    "South Korea",
]
_VERBS = [
    "weighs",
    "tightens",
    "eases",
    "extends",
    "probes",
    "announces",
    "delays",
    "rejects",
    "welcomes",
    "unveils",
    "reports",
    "considers",
    "targets",
    "expands",
    "scraps",
    "backs",
]
_OBJECTS = [
    "new rules",
    "sales",
    "shipments",
    "quarterly results",
    "a new factory",
    "prices",
    "supply deals",
    "production plans",
    "investment",
    "benchmark results",
    "a new CEO",
    "the data centre buildout",
    "research funding",
    "a partnership",
    "job cuts",
]
_TAILS = [
    "amid trade tensions",
    "after talks stall",
    "as demand surges",
    "in surprise move",
    "despite warnings",
    "ahead of summit",
    "as shares slide",
    "for the first time",
    "report says",
    "sources say",
    "in 2026",
    "as tariffs loom",
    "over security concerns",
    "under pressure from Washington",
    "as AI boom continues",
    "",
]
_FILLER = [
    "weather",
    "football",
    "election",
    "housing",
    "inflation",
    "vaccine",
    "festival",
    "airline",
    "museum",
    "railway",
    "startup",
    "budget",
    "court",
    "police",
    "climate",
]
_CJK_HEADLINES = [
    "美国收紧芯片出口管制",
    "英伟达发布新一代GPU",
    "华为手机销量增长",
    "台积电扩产",
    "中国对进口大豆加征关税",
    "中芯国际季度营收创新高",
    "海关查获走私手机",
]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1 :]  # a dropped letter
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # two letters swapped


def _new_word(rng: random.Random) -> str:
    return made_up_word(rng, most=4)


def make_headlines(
    n: int, watchlists: Mapping[str, Sequence[Term]], seed_titles: Sequence[str], rng: random.Random
) -> list[str]:
    """``n`` headlines: about a fifth from ``seed_titles``, the rest synthetic."""
    names = {cat: [t.name for t in terms] for cat, terms in watchlists.items()}
    alias_pool = [a for terms in watchlists.values() for t in terms for a in t.aliases]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.2 and seed_titles:
            out.append(rng.choice(seed_titles))
            continue
        if r < 0.23:
            out.append(rng.choice(_CJK_HEADLINES))
            continue
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS)]
        if rng.random() < 0.6:
            company = rng.choice(names["companies"])
            words.append(_typo(company, rng) if rng.random() < 0.1 else company)
        if rng.random() < 0.4:
            words.append(rng.choice(names["chips"]))
        if rng.random() < 0.15 and alias_pool:
            words.append(rng.choice(alias_pool))
        words.append(rng.choice(_OBJECTS))
        if rng.random() < 0.35:
            words.append(rng.choice(names["export_terms"]))
        if rng.random() < 0.5:
            words.append(rng.choice(_FILLER) if rng.random() < 0.5 else _new_word(rng))
        words.append(rng.choice(_TAILS))
        out.append(" ".join(w for w in words if w))
    return out


# --- the baseline ---------------------------------------------------------------------------


class FuzzyBaseline:
    """Every term and alias scored with partial_ratio against the whole headline."""

    def __init__(self, watchlists: Mapping[str, Sequence[Term]]):
        self.choices: list[str] = []
        self.category: list[str] = []
        for cat, terms in watchlists.items():
            for t in terms:
                for s in (t.name, *t.aliases):
                    self.choices.append(s)
                    self.category.append(cat)

    def hits(self, text: str) -> list[tuple[str, float, int]]:
        return process.extract(
            text,
            self.choices,
            scorer=fuzz.partial_ratio,
            limit=None,
            processor=utils.default_process,
            score_cutoff=BASELINE_CUTOFF,
        )

    def alert(self, text: str, rules: Sequence[Rule]) -> bool:
        """The config's rules applied to the categories the fuzzy hits fall in."""
        cats = {self.category[i] for _, _, i in self.hits(text)}
        for rule in rules:
            if rule.all_of and not all(c in cats for c in rule.all_of):
                continue
            if rule.any_of and not cats.intersection(rule.any_of):
                continue
            if rule.none_of and cats.intersection(rule.none_of):
                continue
            if rule.terms:  # the baseline does not know which term a hit stands for
                continue
            return True
        return False


# --- measuring ------------------------------------------------------------------------------


def _rate(fn, items: Sequence[str]) -> tuple[float, float]:
    """(seconds, items per second) for calling ``fn`` on every item."""
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    dt = time.perf_counter() - t0
    return dt, len(items) / dt if dt else float("inf")


def _learned_cost(watchlists, cfg, headlines: Sequence[str]) -> list[tuple[str, str]]:
    """The learned opinion's cost: the same headlines matched with it off and on, taking turns
    (best of 3 each), the difference spread over the headlines it scored."""
    alone = compile_matcher(watchlists, cfg.rules, LearnedConfig(enabled=False))
    learned = compile_matcher(watchlists, cfg.rules, LearnedConfig())
    scored = sum(learned.match(h).opinion is not None for h in headlines)
    times: dict[str, list[float]] = {"alone": [], "learned": []}
    for _ in range(3):
        for name, m in (("alone", alone), ("learned", learned)):
            times[name].append(_rate(m.match, headlines)[0])
    t_alone, t_learned = min(times["alone"]), min(times["learned"])
    per = (t_learned - t_alone) / scored * 1e6 if scored else 0.0
    size = MODEL_PATH.stat().st_size
    return [
        ("headlines the learned opinion scored", f"{scored} of {len(headlines)}"),
        ("match time, learned on / matcher alone", f"{t_learned / t_alone:.2f}x"),
        ("learned opinion, per scored headline", f"{per:.1f} µs (limit 1,000 µs)"),
        ("learned model file", f"{size / 1024:.0f} KiB ({MODEL_PATH.name})"),
    ]


def _quality(
    items: Sequence[Item], matcher, baseline: FuzzyBaseline, rules: Sequence[Rule]
) -> tuple[Scores, Scores]:
    ours, theirs = Scores(), Scores()
    for it in items:
        ours.add(it.label, matcher.match(it.title, it.summary).alert)
        text = f"{it.title} {it.summary}".strip()
        theirs.add(it.label, baseline.alert(text, rules))
    return ours, theirs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller run (a few seconds)")
    ap.add_argument("--seed", type=int, default=20240917)
    ap.add_argument("--terms", type=int, default=1000)
    ap.add_argument("--headlines", type=int, default=20_000)
    ap.add_argument("--baseline-sample", type=int, default=2_000)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--labelled", type=Path, default=DEFAULT_LABELLED)
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL)
    args = ap.parse_args(argv)
    if args.quick:
        args.headlines = min(args.headlines, 2_000)
        args.baseline_sample = min(args.baseline_sample, 300)

    rng = random.Random(args.seed)
    cfg = load_config(args.config)
    labelled = read_labelled(args.labelled) if args.labelled.exists() else []
    watchlists = build_watchlist(cfg.watchlists, args.terms, rng)
    n_terms = sum(len(v) for v in watchlists.values())
    headlines = make_headlines(args.headlines, watchlists, [it.title for it in labelled], rng)

    compile_times = []
    off = LearnedConfig(enabled=False)  # the matcher alone; the learned opinion is timed below
    for _ in range(3):
        t0 = time.perf_counter()
        matcher = compile_matcher(watchlists, cfg.rules, off)
        compile_times.append(time.perf_counter() - t0)
    tracemalloc.start()
    base_mem = tracemalloc.get_traced_memory()[0]
    probe = compile_matcher(watchlists, cfg.rules, off)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del probe

    cold_s, cold_rate = _rate(matcher.match, headlines)
    warm_s, warm_rate = _rate(matcher.match, headlines)
    alerts = sum(matcher.match(h).alert for h in headlines)

    baseline = FuzzyBaseline(watchlists)
    sample = rng.sample(headlines, min(args.baseline_sample, len(headlines)))
    base_s, base_rate = _rate(baseline.hits, sample)

    print(
        f"watchlist: {n_terms} terms, {len(baseline.choices)} strings with aliases "
        f"({', '.join(f'{c} {len(t)}' for c, t in watchlists.items())}); seed {args.seed}"
    )
    print(
        f"headlines: {len(headlines)} ({alerts} alert against this watchlist with the "
        f"config's rules)\n"
    )
    rows = [
        (
            "chipwatch compile time (median of 3)",
            f"{statistics.median(compile_times) * 1000:.1f} ms",
        ),
        ("chipwatch compile peak mem (tracemalloc)", f"{(peak - base_mem) / 2**20:.2f} MiB"),
        ("chipwatch compiled size retained", f"{(retained - base_mem) / 2**20:.2f} MiB"),
        (
            "chipwatch match, cold cache",
            f"{cold_rate:,.0f} hl/s  ({len(headlines)} in {cold_s:.2f} s)",
        ),
        (
            "chipwatch match, warm cache",
            f"{warm_rate:,.0f} hl/s  ({len(headlines)} in {warm_s:.2f} s)",
        ),
        (
            f"baseline partial_ratio >= {BASELINE_CUTOFF}",
            f"{base_rate:,.0f} hl/s  ({len(sample)} in {base_s:.2f} s)",
        ),
        ("speed-up (cold / baseline)", f"{cold_rate / base_rate:.1f}x"),
    ]
    rows += _learned_cost(watchlists, cfg, headlines)
    print(f"{'measure':<42} value")
    for label, value in rows:
        print(f"{label:<42} {value}")

    default_matcher = compile_matcher(cfg.watchlists, cfg.rules, cfg.learned)
    default_baseline = FuzzyBaseline(cfg.watchlists)
    sets = [("labelled (title+summary)", labelled)]
    if args.real.exists():
        sets.append(("real (title only)", read_real(args.real)[0]))
    print(
        f"\nquality with the default config ({args.config.name}), alert = rule over matched "
        f"categories, or the learned opinion ({'on' if cfg.learned.enabled else 'off'})"
    )
    print(
        f"{'data set':<26} {'matcher':<10} {'prec':>6} {'recall':>7} {'F1':>6} "
        f"{'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}"
    )
    for name, items in sets:
        if not items:
            continue
        for who, s in zip(
            ("chipwatch", "baseline"),
            _quality(items, default_matcher, default_baseline, cfg.rules),
            strict=True,
        ):
            print(
                f"{name:<26} {who:<10} {s.precision:>6.3f} {s.recall:>7.3f} {s.f1:>6.3f} "
                f"{s.tp:>4} {s.fp:>4} {s.fn:>4} {s.tn:>4}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
