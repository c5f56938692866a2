"""Benchmark story clustering at scale against a naive all-stories scan.

From the issue: "Clustering a new item must not scan all history. Add a benchmark: 100,000 stored
items in the window, then 10,000 new items clustered. Report items/s and memory."

1. Generates a synthetic but realistic stream (fixed seed) of alerting headlines spread over the
   48 h window: many distinct events, each a subject from the default watchlist (Nvidia, the
   most common one, with H20/H200/B30A/…; Huawei with Ascend 910C; SMIC, TSMC, Samsung, AMD, the
   toolmakers…), an action (bans, approves, licences, entity list, tariffs, smuggling, probes),
   an authority, and details (numbers, names, places: a Zipf-distributed vocabulary, so some
   details are common and some unique), each reported by 1–10 outlets with paraphrased
   headlines. Matches come from the default config's matcher (timed apart: it is not clustering);
   only headlines the matcher alerts on are kept, as in the pipeline.
2. History: (a) the first ``--stored`` items, in time order, clustered by the real
   ``Clusterer.place`` (empty in-memory store): its items/s and the stories it makes; (b) the
   stories of the stored items' true events (each absorbing its members' features), i.e. the
   window as a correct clusterer would leave it. On this dense stream the clusterer's own
   history (a) collapses into a few huge stories, which would leave nothing to index, so (b) is
   what the store holds by default (``--history clustered`` stores (a) instead). The stories are
   written to a real SQLite file in the store's schema (members as ``Headline.encode()`` lists,
   outlets too), and the stored items' titles to its ``items`` table.
3. Startup: ``Clusterer(store, config.stories, now=…)`` loads the stories of the window from
   that file, and learns token rarity from the newest ``IDF_ITEMS`` stored titles
   (``store.recent_titles``), as the bot does (timed; memory with tracemalloc in a separate
   pass). The benchmark then counts the older stored titles too (``Clusterer.observe``, untimed),
   so that every stored item has been observed before the new ones are clustered; clustering
   itself does not change rarity.
4. The next ``--new`` items (later timestamps, same window) are clustered with
   ``Clusterer.place``: items/s and per-item latency. Interleaved but timed apart, the naive
   baseline on a sample of them: features, then ``StoryIndex.similarity`` against every member
   of every story in the window (the best member per story); the sample also compares the
   indexed decision with an exhaustive one (same rules, every story). A second, identical pass
   under tracemalloc gives peak memory and, through wrappers this script installs on
   ``StoryIndex._candidates`` and ``StoryIndex.similarity`` (nothing in alerts/ is edited), the
   candidate stories examined and the member headlines scored per item.
5. Quality of the new items' decisions against the generator's true events, and blocking recall:
   how often an item's own event's story is among the index's candidates at all.

Everything runs offline in one process; ``--quick`` takes well under a minute, the default one to three
minutes on two cores: history (a) stops after ``--history-budget`` seconds and the baseline takes
fewer samples if they would exceed ``--baseline-budget`` (the table says so when either happens).

    python benchmarks/bench_cluster.py [--quick] [--stored N] [--new N] [--seed N]
                                      [--history events|clustered] [--history-budget S]
                                      [--baseline-sample N] [--baseline-budget S] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.config import load_config  # noqa: E402
from alerts.match import Match, compile_matcher  # noqa: E402
from alerts.store import open_store  # noqa: E402
from alerts.stories import IDF_ITEMS, Clusterer, Story, StoryIndex, headline_features  # noqa: E402

from common import SYLLABLES, made_up_word  # noqa: E402

START = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
SPAN_HOURS = 44.0  # events start within this; follow-ups come up to FOLLOW_UP_MAX_H later
FOLLOW_UP_MEAN_H = 1.0
FOLLOW_UP_MAX_H = 3.5  # so every item lies within 48 h of the first one

# --- the synthetic stream --------------------------------------------------------------------

# (weight, surface forms, chips with weights). Nvidia dominates, as it does in real coverage.
COMPANIES = [
    (
        34,
        ["Nvidia", "Nvidia", "Nvidia", "NVIDIA"],
        [
            ("H20", 25),
            ("H200", 20),
            ("B30A", 10),
            ("B200", 8),
            ("Blackwell", 8),
            ("H100", 6),
            ("A100", 5),
            ("RTX Pro 6000D", 5),
            ("GB200", 4),
            ("B40", 3),
            ("L20", 3),
            ("H800", 3),
        ],
    ),
    (
        10,
        ["Huawei", "Huawei", "HiSilicon"],
        [("Ascend 910C", 40), ("Ascend 910B", 25), ("Ascend 920", 15), ("Ascend 950", 10)],
    ),
    (6, ["SMIC", "Semiconductor Manufacturing International"], []),
    (7, ["TSMC", "TSMC", "Taiwan Semiconductor"], []),
    (5, ["Samsung", "Samsung Electronics"], [("HBM", 60), ("HBM3E", 30)]),
    (6, ["AMD"], [("MI308", 50), ("MI300X", 25), ("MI350", 25)]),
    (4, ["Intel"], [("Gaudi 3", 30)]),
    (4, ["SK Hynix", "Hynix"], [("HBM", 60), ("HBM3E", 30)]),
    (3, ["Micron"], [("HBM", 50)]),
    (4, ["ASML"], [("EUV", 40), ("DUV", 40)]),
    (2, ["CXMT", "ChangXin Memory"], [("HBM", 50)]),
    (2, ["YMTC", "Yangtze Memory"], []),
    (2, ["Cambricon"], []),
    (2, ["Applied Materials"], [("chipmaking tools", 50)]),
    (1, ["Lam Research"], [("chipmaking tools", 50)]),
    (1, ["Tokyo Electron"], [("chipmaking tools", 50)]),
    (2, ["Super Micro", "Supermicro"], [("AI servers", 50)]),
    (1, ["Qualcomm"], []),
    (1, ["Broadcom"], []),
    (1, ["Hua Hong"], []),
    (1, ["Moore Threads"], []),
    (1, ["Hygon"], []),
]
GENERIC_CHIP = ["chips", "AI chips", "advanced chips", "GPUs", "semiconductors", "AI processors"]
ACTORS = {
    "us": (
        60,
        [
            "US",
            "U.S.",
            "Washington",
            "Commerce Department",
            "Trump administration",
            "White House",
            "US Commerce",
            "BIS",
            "US officials",
        ],
    ),
    "china": (
        20,
        ["China", "Beijing", "Chinese regulators", "MOFCOM", "China's commerce ministry"],
    ),
    "other": (
        20,
        [
            "Netherlands",
            "Japan",
            "Taiwan",
            "South Korea",
            "Malaysia",
            "Singapore",
            "UAE",
            "EU",
            "India",
            "Dutch government",
            "Tokyo",
        ],
    ),
}


def _forms(*verbs: str) -> list[tuple[str, ...]]:
    """Each verb's present, past and base forms, from "bans banned ban"."""
    return [tuple(v.split()) for v in verbs]


RESTRICT = _forms(
    "bans banned ban",
    "blocks blocked block",
    "curbs curbed curb",
    "restricts restricted restrict",
    "halts halted halt",
    "bars barred bar",
)
ALLOW = _forms(
    "approves approved approve",
    "clears cleared clear",
    "allows allowed allow",
    "permits permitted permit",
    "greenlights approved greenlight",
)
OBJECTS = [
    "sales to China",
    "exports to China",
    "shipments to China",
    "China sales",
    "sales to Chinese firms",
    "exports",
]
PLACES = [
    "Malaysia",
    "Singapore",
    "Thailand",
    "Vietnam",
    "UAE",
    "Hong Kong",
    "Indonesia",
    "Taiwan",
    "India",
    "Dubai",
    "Shenzhen",
    "Penang",
    "Johor",
    "Hsinchu",
]
TOPICAL = [
    "deadline",
    "loophole",
    "review",
    "lawmakers",
    "startups",
    "cloud",
    "datacenter",
    "resellers",
    "memo",
    "draft",
    "quota",
    "audit",
    "senators",
    "investigation",
    "filing",
    "earnings",
    "guidance",
    "revenue",
    "orders",
    "inventory",
    "supply",
    "deal",
    "talks",
    "summit",
    "truce",
    "military",
    "universities",
    "labs",
    "hyperscalers",
    "ByteDance",
    "Alibaba",
    "Tencent",
    "DeepSeek",
    "Baidu",
    "rivals",
    "workaround",
    "downgraded",
    "compliance",
    "security",
    "tracking",
    "location",
    "verification",
    "stockpile",
    "backlog",
    "windfall",
    "revenue share",
    "levy",
    "fees",
    "court",
    "appeal",
]
FILLERS = [
    ", sources say",
    ", report says",
    " - Reuters",
    ", analysts say",
    " as trade tensions rise",
    ", shares fall",
    ", shares jump",
    " in new escalation",
    " ahead of talks",
    " - Bloomberg",
    " | Financial Times",
    ", filing shows",
]
OUTLETS = [
    "Reuters",
    "Bloomberg",
    "Financial Times",
    "Wall Street Journal",
    "CNBC",
    "The Verge",
    "Tom's Hardware",
    "The Register",
    "Ars Technica",
    "TechCrunch",
    "SCMP",
    "Nikkei Asia",
    "Caixin",
    "Global Times",
    "DigiTimes",
    "EE Times",
    "TrendForce",
    "The Information",
    "Barron's",
    "MarketWatch",
    "Yahoo Finance",
    "Seeking Alpha",
    "Fortune",
    "Axios",
    "Politico",
    "BBC",
    "Guardian",
    "CNN",
    "NYT",
    "Washington Post",
    "HotHardware",
    "Wccftech",
    "TechSpot",
    "Data Center Dynamics",
    "Electronics Weekly",
    "The Straits Times",
    "Korea Herald",
    "Taipei Times",
    "Nasdaq",
    "Investopedia",
]
OUTLET_COUNT_WEIGHTS = [30, 18, 13, 10, 8, 6, 5, 4, 3, 3]  # outlets per event: 1..10, mean ≈ 3.3

# The shared syllables as this stream has always used them, without "chip" and with five more:
# its seeded figures depend on the list.
_SYL = [s for s in SYLLABLES if s != "chip"] + ["do", "ku", "bao", "fu", "lin"]
_NAME_TAILS = [
    "",
    "",
    "",
    " Logistics",
    " Trading",
    " Tech",
    " Holdings",
    " Electronics",
    " Cloud",
    " Systems",
]

THEMES = {  # name: (weight, action kind, templates)
    "ban": (
        30,
        "restrict",
        [
            "{A} {V3} {S} {O}{D}",
            "{S} {O} {VP} by {A}{D}",
            "{C} says {A} {V3} {X} {O}{D}",
            "Exclusive: {A} to {VB} {S} {O}{D}",
            "{A} {V3} {S} {O} in blow to {C}{D}",
            "{A} moves to {VB} {S} {O}{D}",
        ],
    ),
    "approve": (
        15,
        "allow",
        [
            "{A} {V3} {S} {O}{D}",
            "{S} {O} {VP} by {A}{D}",
            "{C} says {A} {V3} {X} {O}{D}",
            "Exclusive: {A} to {VB} {S} {O}{D}",
            "{A} {V3} {S} {O} in win for {C}{D}",
        ],
    ),
    "licence": (
        10,
        "allow",
        [
            "{A} grants {C} export licences for {X}{D}",
            "{C} gets {A} licence to ship {X} to China{D}",
            "{C} wins export licence for {X} sales to China{D}",
            "{A} issues licences for {S} exports{D}",
        ],
    ),
    "revoke": (
        5,
        "restrict",
        [
            "{A} revokes {C} export licences for {X}{D}",
            "{C} loses licence to ship {X} to China{D}",
            "{A} revokes licences for {S} exports to China{D}",
        ],
    ),
    "entity": (
        10,
        "restrict",
        [
            "{A} adds {N} Chinese firms to entity list over {S} ties{D}",
            "{N} firms linked to {C} added to entity list{D}",
            "{A} blacklists {N} companies tied to {S}{D}",
            "Entity list: {A} targets {C} suppliers{D}",
        ],
    ),
    "tariff": (
        10,
        "",
        [
            "{A} slaps {P}% tariffs on {S} imports{D}",
            "{A} to impose {P}% tariff on {S}{D}",
            "{S} face {P}% tariffs, {A} says{D}",
            "{C} hit by {P}% {A} tariffs on {X}{D}",
        ],
    ),
    "smuggling": (
        12,
        "",
        [
            "{N} charged with smuggling {S} to China{D}",
            "Smuggling ring moved ${M} million of {S} via {PL}{D}",
            "{A} probes {S} smuggling through {PL}{D}",
            "Prosecutors say {S} smuggled to China via {PL}{D}",
        ],
    ),
    "probe": (
        8,
        "",
        [
            "China probes {C} over {X} security risks{D}",
            "{A} opens probe into {S} diversion to China{D}",
            "{C} faces {A} probe over export violations{D}",
            "{A} investigates {S} export violations{D}",
        ],
    ),
}


@dataclass(slots=True)
class Event:
    id: int
    start: float  # hours after START
    theme: str
    company: list[str]  # surface forms
    chip: str | None
    actor: list[str]
    verb: int
    details: list[str]
    number: int
    percent: int
    money: int
    place: str


def _choose(rng: random.Random, pairs):
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


class Generator:
    def __init__(self, rng: random.Random, vocabulary: int = 6000):
        self.rng = rng
        names: set[str] = set()
        while len(names) < vocabulary:
            names.add(made_up_word(rng, syllables=_SYL))
        self.names = sorted(names)
        rng.shuffle(self.names)
        # Zipf-like: a few details recur across hundreds of events, most are rare.
        self.name_weights = list(accumulate(1.0 / (r + 8) for r in range(vocabulary)))
        self.next_id = 0

    def _detail(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:
            name = rng.choices(self.names, cum_weights=self.name_weights)[0]
            return name + rng.choice(_NAME_TAILS)
        if kind < 0.65:
            return rng.choice(TOPICAL)
        if kind < 0.85:
            return rng.choice(
                [
                    f"${rng.randint(2, 990)} million",
                    f"${rng.randint(2, 60)} billion",
                    f"{rng.randint(3, 400)} firms",
                    f"{rng.randint(2, 90)},000 GPUs",
                ]
            )
        return rng.choice(PLACES)

    def event(self) -> Event:
        rng = self.rng
        theme = _choose(rng, [(name, t[0]) for name, t in THEMES.items()])
        _, forms, chips = rng.choices(COMPANIES, weights=[c[0] for c in COMPANIES])[0]
        chip = _choose(rng, chips) if chips and rng.random() < 0.75 else None
        region = _choose(rng, [(k, v[0]) for k, v in ACTORS.items()])
        actors = ACTORS[region][1]
        actor = rng.sample(actors, k=min(3, len(actors)))  # outlets word the authority alike
        kind = THEMES[theme][1]
        verbs = ALLOW if kind == "allow" else RESTRICT
        ev = Event(
            id=self.next_id,
            start=rng.uniform(0, SPAN_HOURS),
            theme=theme,
            company=forms,
            chip=chip,
            actor=actor,
            verb=rng.randrange(len(verbs)),
            details=[self._detail() for _ in range(rng.randint(1, 3))],
            number=rng.randint(2, 40),
            percent=rng.choice([10, 15, 20, 25, 30, 50, 100]),
            money=rng.randint(5, 900),
            place=rng.choice(PLACES),
        )
        self.next_id += 1
        return ev

    def headline(self, ev: Event) -> str:
        rng = self.rng
        kind = THEMES[ev.theme][1]
        verbs = ALLOW if kind == "allow" else RESTRICT
        v = verbs[ev.verb] if rng.random() < 0.55 else rng.choice(verbs)
        company = rng.choice(ev.company)
        chip = ev.chip
        with_company = chip is None or rng.random() < 0.8
        with_chip = chip is not None and (not with_company or rng.random() < 0.85)
        if with_chip and rng.random() < 0.3 and not chip.endswith("s"):
            chip_form = chip + rng.choice([" chips", " GPUs", " chip"])
        else:
            chip_form = chip or rng.choice(GENERIC_CHIP)
        if with_company and with_chip:
            subject = rng.choice([f"{company} {chip_form}", f"{company}'s {chip_form}"])
        elif with_chip:
            subject = chip_form
        else:
            subject = rng.choice([company, f"{company} {rng.choice(GENERIC_CHIP)}"])
        details = [d for d in ev.details if rng.random() < 0.7]
        tail = ""
        if details:
            tail = (
                " "
                + rng.choice(["over", "after", "amid", "citing", "with", "as", "on"])
                + " "
                + " and ".join(details)
            )
        if rng.random() < 0.35:
            tail += rng.choice(FILLERS)
        template = rng.choice(THEMES[ev.theme][2])
        title = template.format(
            A=rng.choice(ev.actor),
            V3=v[0],
            VP=v[1],
            VB=v[2],
            S=subject,
            C=company,
            X=chip_form if chip else rng.choice(GENERIC_CHIP),
            O=rng.choice(OBJECTS),
            D=tail,
            N=ev.number,
            P=ev.percent,
            M=ev.money,
            PL=ev.place,
        )
        return title[0].upper() + title[1:]

    def reports(self, ev: Event) -> list[tuple[float, str, str]]:
        """(hours after START, title, outlet) for each outlet that carries the event."""
        rng = self.rng
        k = rng.choices(range(1, 11), weights=OUTLET_COUNT_WEIGHTS)[0]
        out = []
        for j, outlet in enumerate(rng.sample(OUTLETS, k)):
            delay = 0.0 if j == 0 else min(rng.expovariate(1 / FOLLOW_UP_MEAN_H), FOLLOW_UP_MAX_H)
            out.append((ev.start + delay, self.headline(ev), outlet))
        return out


@dataclass(slots=True)
class Item:
    at: datetime
    title: str
    source: str
    matches: tuple[Match, ...]
    event: int


def build_stream(n: int, rng: random.Random, matcher) -> tuple[list[Item], dict]:
    """``n`` alerting items in time order, plus generation and matching statistics."""
    gen = Generator(rng)
    items: list[Item] = []
    generated = match_seconds = 0
    t_gen = time.perf_counter()
    while len(items) < n:
        need = n - len(items)
        batch: list[tuple[float, str, str, int]] = []
        while len(batch) < need * 1.15 + 50:
            ev = gen.event()
            batch.extend((h, title, outlet, ev.id) for h, title, outlet in gen.reports(ev))
        t = time.perf_counter()
        results = [matcher.match(title) for _, title, _, _ in batch]
        match_seconds += time.perf_counter() - t
        generated += len(batch)
        for (h, title, outlet, eid), r in zip(batch, results, strict=True):
            if r.alert:
                items.append(Item(START + timedelta(hours=h), title, outlet, r.matches, eid))
    gen_seconds = time.perf_counter() - t_gen - match_seconds
    if len(items) > n:  # drop at random, not by time, so the timeline stays even
        items = rng.sample(items, n)
    items.sort(key=lambda it: it.at)
    return items, {
        "generated": generated,
        "alerting": len(items),
        "events": gen.next_id,
        "gen_s": gen_seconds,
        "match_s": match_seconds,
    }


# --- measuring helpers ------------------------------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc."""
    now = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return now, peak


class Probe:
    """Wrappers installed on ``StoryIndex`` by this benchmark only: count candidate stories per
    item, ``StoryIndex.similarity`` calls (one per member headline scored), and time spent in
    ``expire``."""

    def __init__(self, *, count: bool):
        self.count = count
        self.candidates: list[int] = []
        self.last: set[int] = set()  # the candidates of the latest item
        self.scored = 0
        self.expire_seconds = 0.0
        self.expire_calls = 0

    def __enter__(self):
        self._orig = (StoryIndex._candidates, StoryIndex.expire, StoryIndex.similarity)
        orig_candidates, orig_expire, orig_similarity = self._orig
        probe = self

        def expire(index, now):
            t = time.perf_counter()
            orig_expire(index, now)
            probe.expire_seconds += time.perf_counter() - t
            probe.expire_calls += 1

        StoryIndex.expire = expire
        if self.count:

            def candidates(index, item):
                found = orig_candidates(index, item)
                probe.candidates.append(len(found))
                probe.last = found
                return found

            def similarity(index, item, member, idioms=False):
                probe.scored += 1
                return orig_similarity(index, item, member, idioms)

            StoryIndex._candidates = candidates
            StoryIndex.similarity = similarity
        return self

    def __exit__(self, *exc):
        StoryIndex._candidates, StoryIndex.expire, StoryIndex.similarity = self._orig
        return False


class GcWatch:
    """Collections of the cyclic garbage collector while active: (generation, seconds) each."""

    def __init__(self):
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self):
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self._callback)
        return False

    def total(self) -> float:
        return sum(d for _, d in self.pauses)

    def full(self) -> list[float]:
        return [d for g, d in self.pauses if g == 2]


def _iso(value: datetime) -> str:
    # The store's format (alerts.store._iso): recent_stories compares these as text.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def persist_stories(path: Path, stories, items) -> None:
    """Write the stories as the store keeps them (``stories`` table: per member headline its
    ``Headline.encode()`` tokens and its entities; the outlets that reported it), and the
    stored items to the ``items`` table (``store.recent_titles`` reads their titles)."""
    store = open_store(path)
    try:
        conn = store.db.conn
        conn.executemany(
            "INSERT INTO stories (id, alert_id, title, first_seen, last_seen, words, entities, "
            "actions, sources, outlets) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.id,
                    s.title,
                    _iso(s.first_seen),
                    _iso(s.last_seen),
                    json.dumps([m.encode() for m in s.members]),
                    json.dumps([sorted(m.entities) for m in s.members]),
                    # The stories.actions column: the first headline's kinds (Story.actions is gone).
                    json.dumps(sorted(s.members[0].actions) if s.members else []),
                    json.dumps(s.sources),
                    json.dumps(s.sources),
                )
                for s in stories
            ],
        )
        conn.executemany(
            "INSERT INTO items (feed, guid, link, title, seen_at, story_id, source) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL)",
            [
                (it.source, f"bench-{i}", f"https://example.com/{i}", it.title, _iso(it.at), sid)
                for i, (it, sid) in enumerate(items)
            ],
        )
        conn.commit()
    finally:
        store.close()


def exhaustive_decision(index: StoryIndex, item, at: datetime, source: str):
    """``index.decide`` with the blocking taken out: every story in the window that shares a
    chip or company with the item is a candidate (the same rules otherwise, whatever they are,
    the same-outlet rule included)."""

    def every(_item) -> set[int]:
        ids: set[int] = set()
        for entity in item.entities:
            ids.update(index._by_entity.get(entity, ()))
        return ids

    index._candidates = every  # on this instance only, for this one call
    try:
        return index.decide(item, at, source=source)
    finally:
        del index._candidates


def naive_scores(index: StoryIndex, item, cutoff: datetime) -> list[float]:
    """The naive baseline: ``index.similarity`` against every member of every story reported
    since ``cutoff`` (no blocking, no vetoes); the best member's score per story."""
    similarity = index.similarity
    return [
        max((similarity(item, m) for m in s.members), default=0.0)
        for s in index.stories.values()
        if s.last_seen >= cutoff
    ]


def pair_quality(truth: list[int], assigned: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping, from the contingency table (O(n))."""

    def pairs(counter):
        return sum(c * (c - 1) // 2 for c in counter.values())

    tp = pairs(Counter(zip(truth, assigned, strict=True)))
    pred, true = pairs(Counter(assigned)), pairs(Counter(truth))
    return (tp / pred if pred else 1.0), (tp / true if true else 1.0)


def pct(values, q):
    if not values:
        return 0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- the benchmark ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 stored, 1,000 new")
    ap.add_argument("--stored", type=int, default=None, help="items already in the window")
    ap.add_argument("--new", type=int, default=None, help="new items to cluster")
    ap.add_argument("--seed", type=int, default=20250602, help="the synthetic stream's seed")
    ap.add_argument(
        "--baseline-sample",
        type=int,
        default=200,
        help="new items the naive all-stories scan is timed on",
    )
    ap.add_argument(
        "--history-budget",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="stop clustering the stored items in history (a) after this long "
        "(not with --history clustered, which needs all of them)",
    )
    ap.add_argument(
        "--baseline-budget",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="fewer baseline samples if they would take longer than this",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile clustering the new items (cProfile, top functions)",
    )
    ap.add_argument(
        "--history",
        choices=("events", "clustered"),
        default="events",
        help="what the store holds before the new items: the stories of the true "
        "events (default: the window a correct clusterer leaves, ~one story "
        "per event) or the stories the clusterer itself made of the stored items",
    )
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    args = ap.parse_args(argv)
    if (args.new is not None and args.new < 1) or (args.stored is not None and args.stored < 0):
        ap.error("--new must be at least 1 and --stored at least 0")
    n_stored = args.stored if args.stored is not None else (10_000 if args.quick else 100_000)
    n_new = args.new if args.new is not None else (1_000 if args.quick else 10_000)
    t_all = time.perf_counter()
    rows: list[tuple[str, str]] = []

    def row(label: str, value: str) -> None:
        rows.append((label, value))

    config = load_config(args.config)
    window = timedelta(hours=config.stories.window_hours)
    threshold = config.stories.threshold
    rng = random.Random(args.seed)
    matcher = compile_matcher(config.watchlists, config.rules)

    # 1. the stream
    items, st = build_stream(n_stored + n_new, rng, matcher)
    stored, new = items[:n_stored], items[n_stored:]
    nvidia = sum(any(m.term == "Nvidia" for m in it.matches) for it in items)
    row(
        "stream",
        f"{len(items):,} alerting headlines ({st['alerting'] / st['generated']:.0%} of "
        f"{st['generated']:,} generated), {len({it.event for it in items}):,} events, "
        f"{nvidia / len(items):.0%} name Nvidia",
    )
    span_h = (items[-1].at - items[0].at).total_seconds() / 3600
    new_h = (new[-1].at - new[0].at).total_seconds() / 3600 if new else 0
    row(
        "timeline",
        f"stored {span_h - new_h:.1f} h, new items the last {new_h:.1f} h "
        f"(window {config.stories.window_hours:g} h: all stored items stay in it)",
    )
    row(
        "matching (precomputed, not clustering)",
        f"{st['generated'] / st['match_s']:,.0f} headlines/s ({st['match_s']:.1f} s)",
    )
    rss_data = rss_mb()[0]

    # 2. history. (a) the stored items clustered by the clusterer itself, in time order, through
    # the real Clusterer.place: its items/s and what the window then holds. Rarity is learnt as
    # the items arrive (place observes each item's tokens before deciding). (b) the stories the
    # stored items' true events make, each absorbing its members' features: the window as a
    # correct clusterer would leave it. One of them (--history) is written to a real SQLite file.
    history = Clusterer(open_store(None), config.stories, now=START, watchlists=config.watchlists)
    assigned: list[int] = []
    budget = float("inf") if args.history == "clustered" else args.history_budget
    with Probe(count=True) as probe_h:
        hist_s = 0.0
        t0 = time.perf_counter()
        for i, it in enumerate(stored):
            if i % 1000 == 0 and time.perf_counter() - t0 > budget:
                break
            t = time.perf_counter()
            placed = history.place(it.title, it.matches, source=it.source, at=it.at)
            hist_s += time.perf_counter() - t
            assigned.append(placed.story_id)
    done = stored[: len(assigned)]
    hist_stories = list(history.index.stories.values())
    sizes = Counter(assigned)
    biggest = hist_stories and max(hist_stories, key=lambda s: sizes[s.id])
    stored_events = len({it.event for it in done})
    p, r = pair_quality([it.event for it in done], assigned)
    cut = (
        ""
        if len(done) == len(stored)
        else f"; stopped after {len(done):,} items (--history-budget {budget:g} s)"
    )
    row(
        "history (a): cluster stored items (Clusterer.place)",
        f"{len(done) / hist_s:,.0f} items/s ({hist_s:.1f} s; {probe_h.expire_seconds:.2f} s in "
        f"expire), {statistics.fmean(probe_h.candidates or [0]):.1f} candidates/item{cut}",
    )
    if done:
        row(
            "history (a): result" + ("" if len(done) == len(stored) else f" ({len(done):,} items)"),
            f"{len(hist_stories):,} stories for {stored_events:,} true events; pairwise precision "
            f"{p:.3f}, recall {r:.3f}; largest story {sizes[biggest.id]:,} items, "
            f"{len(biggest.words):,} words, {len(biggest.entities)} entities",
        )

    by_event: dict[int, object] = {}
    for it in stored:
        h = headline_features(it.title, it.matches)
        story = by_event.get(it.event)
        if story is None:
            story = by_event[it.event] = Story(
                id=len(by_event) + 1, first_seen=it.at, last_seen=it.at, title=it.title
            )
        story.absorb(h, source=it.source, at=it.at)
    event_stories = list(by_event.values())
    row("history (b): stories of the true events", f"{len(event_stories):,} stories")

    if args.history == "clustered":
        keep, event_story = hist_stories, {}
        for it, sid in zip(stored, assigned, strict=True):
            event_story.setdefault(it.event, set()).add(sid)
        item_story = assigned
    else:
        keep = event_stories
        event_story = {e: {s.id} for e, s in by_event.items()}
        item_story = [by_event[it.event].id for it in stored]
    tmp = tempfile.TemporaryDirectory(prefix="bench_cluster_")
    db_path = Path(tmp.name) / "chipwatch.db"
    t = time.perf_counter()
    persist_stories(db_path, keep, zip(stored, item_story, strict=True))
    row(
        f"history ({'a' if args.history == 'clustered' else 'b'}) written to SQLite",
        f"{len(keep):,} stories and {len(stored):,} items, {time.perf_counter() - t:.2f} s "
        f"({db_path.stat().st_size / 2**20:.1f} MiB file)",
    )
    del history, hist_stories, event_stories, by_event, keep
    gc.collect()

    # 3. startup: load the window's stories from the store
    now0 = new[0].at if new else items[-1].at
    store = open_store(db_path)
    t = time.perf_counter()
    records = store.recent_stories(since=now0 - window)
    read_s = time.perf_counter() - t
    n_records = len(records)
    del records
    gc.collect()
    rss_before = rss_mb()[0]
    t = time.perf_counter()
    n_titles = len(store.recent_titles(limit=IDF_ITEMS))
    titles_s = time.perf_counter() - t
    # The stored items older than the newest IDF_ITEMS, which startup does not read: counted
    # towards rarity after startup, so that every stored item is observed.
    older = [it.title for it in stored[: max(0, len(stored) - IDF_ITEMS)]]
    observe_s = 0.0
    orig_observe = Clusterer.observe

    def timed_observe(self, title: str) -> None:  # startup's rarity learning, timed apart
        nonlocal observe_s
        t = time.perf_counter()
        orig_observe(self, title)
        observe_s += time.perf_counter() - t

    Clusterer.observe = timed_observe
    try:
        with GcWatch() as gc_startup:
            t = time.perf_counter()
            clusterer = Clusterer(store, config.stories, now=now0, watchlists=config.watchlists)
            startup_s = time.perf_counter() - t
    finally:
        Clusterer.observe = orig_observe
    rss_after = rss_mb()[0]
    row(
        "startup: Clusterer(store) loads the window",
        f"{startup_s:.2f} s for {n_records:,} stories and {n_titles:,} titles for rarity "
        f"(observing the titles {observe_s:.2f} s; store.recent_stories alone {read_s:.2f} s, "
        f"store.recent_titles {titles_s:.2f} s; garbage collector {gc_startup.total():.2f} s), "
        f"RSS +{rss_after - rss_before:.0f} MiB",
    )
    t = time.perf_counter()
    for title in older:
        clusterer.observe(title)
    row(
        "rarity: older stored titles observed after startup",
        f"{len(older):,} titles, {time.perf_counter() - t:.2f} s (untimed in startup); rarity "
        f"over {clusterer.index.rarity.docs:,} titles, {len(clusterer.index.rarity.df):,} "
        f"distinct tokens",
    )

    # 4. the new items, timed; the naive baseline on a sample, timed apart
    n_samples = min(args.baseline_sample, len(new))
    if n_samples and new:  # one untimed trial to fit the sample into --baseline-budget
        t = time.perf_counter()
        h = headline_features(new[0].title, new[0].matches)
        naive_scores(clusterer.index, h, new[0].at - window)
        exhaustive_decision(clusterer.index, h, new[0].at, new[0].source)
        trial = time.perf_counter() - t
        n_samples = max(1, min(n_samples, int(args.baseline_budget / max(trial, 1e-9))))
    sample_every = max(1, len(new) // n_samples) if n_samples else 0
    naive_s, naive_n, naive_stories = 0.0, 0, 0
    agree = Counter()
    sampled_want: dict[int, int | None] = {}  # new item's index -> exhaustive decision's story
    decisions: list[tuple[int, bool]] = []
    latencies: list[float] = []
    profiler = cProfile.Profile() if args.profile else None
    with GcWatch() as gc_loop, Probe(count=False) as probe_t:
        cluster_s = 0.0
        for i, it in enumerate(new):
            if sample_every and i % sample_every == 0 and naive_n < n_samples:
                t = time.perf_counter()
                h = headline_features(it.title, it.matches)
                scores = naive_scores(clusterer.index, h, it.at - window)
                naive_s += time.perf_counter() - t
                naive_n += 1
                naive_stories += len(scores)
                want_decision = exhaustive_decision(clusterer.index, h, it.at, it.source)
                want = want_decision.story.id if want_decision.story is not None else None
                want_score = want_decision.score
                sampled_want[i] = want
            else:
                want = ...
            if profiler:
                profiler.enable()
            t = time.perf_counter()
            placed = clusterer.place(it.title, it.matches, source=it.source, at=it.at)
            decision, sid, is_new = placed.decision, placed.story_id, placed.new_story
            took = time.perf_counter() - t
            cluster_s += took
            latencies.append(took)
            if profiler:
                profiler.disable()
            decisions.append((sid, is_new))
            if want is not ...:
                got = None if is_new else sid
                if got == want:
                    agree["same"] += 1
                elif got is None:
                    agree["index missed a join"] += 1
                elif want is None:
                    agree["index joined, exhaustive did not"] += 1
                elif abs(decision.score - want_score) < 1e-9:
                    agree["other story, same score (tie)"] += 1
                else:
                    agree["index picked a lower-scoring story"] += 1
    rss_now, rss_peak = rss_mb()
    n_stories = len(clusterer.index.stories)
    new_stories = sum(is_new for _, is_new in decisions)
    per_item = cluster_s / len(new) if new else float("nan")
    row(
        "NEW ITEMS: cluster (Clusterer.place)",
        f"{len(new) / cluster_s:,.0f} items/s, {per_item * 1e6:,.0f} µs/item ({cluster_s:.2f} s; "
        f"{probe_t.expire_seconds:.2f} s in expire); per item p50 "
        f"{pct(latencies, 0.5) * 1e6:,.0f} µs, p99 {pct(latencies, 0.99) * 1e6:,.0f} µs, max "
        f"{max(latencies) * 1e3:,.1f} ms",
    )
    if new:
        t = time.perf_counter()
        for it in new:
            headline_features(it.title, it.matches)
        feat_s = time.perf_counter() - t
        row(
            "new items: of which headline_features (timed apart)",
            f"{feat_s / len(new) * 1e6:,.0f} µs/item ({feat_s / cluster_s:.0%} of the time)",
        )
    full = gc_loop.full()
    row(
        "new items: garbage collections in that loop",
        f"{len(gc_loop.pauses)} collections, {gc_loop.total() * 1e3:,.0f} ms; full (gen 2): "
        f"{len(full)}, longest {max(full, default=0) * 1e3:,.0f} ms",
    )
    row(
        "new items: outcome",
        f"{len(new) - new_stories:,} joined a story, {new_stories:,} new "
        f"stories; {n_stories:,} stories in the index after",
    )
    if naive_n:
        naive_per = naive_s / naive_n
        row(
            "NAIVE: similarity() vs every story's members in window",
            f"{1 / naive_per:,.0f} items/s, {naive_per * 1e3:,.1f} ms/item (timed on {naive_n} "
            f"items{' to fit --baseline-budget' if naive_n < args.baseline_sample else ''}, "
            f"{naive_stories / naive_n:,.0f} stories each); {len(new):,} items would take "
            f"~{naive_per * len(new):,.0f} s",
        )
        row("SPEED-UP over naive", f"{naive_per / per_item:,.0f}x")
        row(
            "index vs exhaustive decision (sample)",
            ", ".join(f"{k} {v}" for k, v in agree.most_common()),
        )

    # 5. the same again under tracemalloc, with counting wrappers (deterministic: same result)
    del clusterer
    # Blocking recall, online: was a story of the item's own event among its candidates?
    ev_stories = {e: set(ids) for e, ids in event_story.items()}
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    again = Clusterer(store, config.stories, now=now0, watchlists=config.watchlists)
    index_mem, startup_peak = tracemalloc.get_traced_memory()
    rarity_mem = sys.getsizeof(again.index.rarity.df)  # its hash table (tokens are interned)
    for title in older:
        again.observe(title)
    observed_mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    with Probe(count=True) as probe_c:
        again_decisions, offered = [], []
        for it in new:
            before = len(probe_c.candidates)
            placed = again.place(it.title, it.matches, source=it.source, at=it.at)
            sid, is_new = placed.story_id, placed.new_story
            again_decisions.append((sid, is_new))
            known = ev_stories.setdefault(it.event, set())
            offered.append(
                None
                if not known
                else len(probe_c.candidates) > before and not known.isdisjoint(probe_c.last)
            )
            known.add(sid)
    after_mem, place_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store.close()
    row(
        "memory: index after startup (tracemalloc)",
        f"{(index_mem - base) / 2**20:,.1f} MiB retained, peak {(startup_peak - base) / 2**20:,.1f}"
        f" MiB while loading ({(index_mem - base) / max(1, n_records) / 1024:.1f} KiB/story; of "
        f"it the rarity counts' table {rarity_mem / 1024:,.0f} KiB, {n_titles:,} titles)",
    )
    row(
        "memory: observing the older stored titles",
        f"{(observed_mem - index_mem) / 2**20:+.1f} MiB ({len(older):,} titles)",
    )
    row(
        "memory: clustering the new items",
        f"peak {(place_peak - base) / 2**20:,.1f} MiB, grew "
        f"{(after_mem - observed_mem) / 2**20:+.1f} MiB",
    )
    row(
        "memory: process RSS",
        f"{rss_now:,.0f} MiB now, {rss_peak:,.0f} MiB peak (the stream "
        f"itself: {rss_data:,.0f} MiB)",
    )
    cands = probe_c.candidates
    if cands:
        row(
            "candidates examined per new item",
            f"mean {statistics.fmean(cands):.1f}, p50 {pct(cands, 0.5)}, p99 {pct(cands, 0.99)}, "
            f"max {max(cands)} (of {n_records:,}+ stories); member headlines scored/item "
            f"(StoryIndex.similarity calls) {probe_c.scored / len(new):.1f}",
        )
    if again_decisions != decisions:
        row("WARNING", "the tracemalloc pass decided differently from the timed pass")

    # 6. quality of the new items' decisions against the generator's events
    outcome = Counter()
    blocked = sum(o is not None for o in offered)
    offered_ok = sum(o is True for o in offered)
    sample_right = Counter()  # on the baseline sample: decisions that follow the true event
    for i, (it, (sid, is_new)) in enumerate(zip(new, decisions, strict=True)):
        known = event_story.setdefault(it.event, set())
        if i in sampled_want:
            want = sampled_want[i]
            sample_right["exhaustive"] += (want in known) if want is not None else not known
            sample_right["index"] += (sid in known) if not is_new else not known
        if is_new:
            outcome["missed a join" if known else "new, correctly"] += 1
        elif sid in known:
            outcome["joined its event's story"] += 1
        else:
            outcome[
                "joined another event's story" if known else "joined a story, event was new"
            ] += 1
        known.add(sid)
    row("new items vs true events", ", ".join(f"{k} {v:,}" for k, v in outcome.most_common()))
    if sampled_want:
        row(
            "sample: decisions that follow the true event",
            f"index {sample_right['index']} of {len(sampled_want)}, exhaustive (same rules, "
            f"every story sharing a subject) {sample_right['exhaustive']}",
        )
    if blocked:
        row(
            "blocking recall",
            f"{offered_ok / blocked:.1%} of new items whose event already has "
            f"a story get that story among their candidates ({blocked - offered_ok:,} do not)",
        )

    width = max(len(k) for k, _ in rows)
    print(
        f"bench_cluster: {n_stored:,} stored + {n_new:,} new items, window "
        f"{config.stories.window_hours:g} h, threshold {threshold:g}, seed {args.seed}"
    )
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print(f"  {'total run time':<{width}}  {time.perf_counter() - t_all:.0f} s")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
