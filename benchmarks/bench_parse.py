"""Parse speed and entry counts: chipwatch's parse_feed against its own earlier version (git
revision ``--before``, read from the repository at run time), feedparser (the naive baseline)
and, when installed, fastfeedparser — all in one run, on the same bytes.

    python benchmarks/bench_parse.py [--corpus DIR] [--min-time SECONDS] [--before REV]

``--before`` defaults to ed6ae43, the last commit with the hand-written salvage tokenizer
(before the parser became the ``alerts/parse/`` package); ``--before ''`` leaves it out.

Part 1 times a generated 50-item RSS 2.0 feed. Part 2 times every file of the shared feed corpus
(a .gz file is decompressed first, as an HTTP client would for Content-Encoding: gzip) and lists
the files where the parsers find different numbers of entries. ms figures are the best of
repeated rounds after a warm-up, the parsers taking turns; "chipwatch time / chipwatch@REV time"
is the ratio the parser package is held to (at most 1.10).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import atexit  # noqa: E402
import gzip  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from email.utils import format_datetime  # noqa: E402
from xml.sax.saxutils import escape  # noqa: E402

import feedparser  # noqa: E402

from alerts.errors import ParseError  # noqa: E402
from alerts.parse import parse_feed  # noqa: E402

try:
    import fastfeedparser
except ImportError:  # optional
    fastfeedparser = None

DEFAULT_CORPUS = ROOT.parent / "shared" / "feeds"
DEFAULT_BEFORE = "ed6ae43"
_before: dict[str, Callable] = {}  # "chipwatch@REV" → that revision's parse_feed


def load_before(rev: str) -> str | None:
    """Import revision ``rev``'s ``alerts`` package from git as ``alerts_<rev>``; its column
    name, or None (with a note) when git cannot provide it."""
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "alerts"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"(chipwatch@{rev} left out: git archive failed: {exc})")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="bench-parse-"))
    atexit.register(shutil.rmtree, tmp, True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(tmp, filter="data")
    package = f"alerts_{rev}"
    (tmp / "alerts").rename(tmp / package)
    sys.path.insert(0, str(tmp))
    module = importlib.import_module(f"{package}.parse")
    errors = importlib.import_module(f"{package}.errors")
    name = f"chipwatch@{rev}"

    def parse(body: bytes, url: str) -> int:
        try:
            return len(module.parse_feed(body, feed="bench", url=url).items)
        except errors.ParseError:
            return -1

    _before[name] = parse
    return name


def generated_feed(n: int = 50) -> bytes:
    """A realistic RSS 2.0 feed: CDATA titles, HTML descriptions, dates, guids, categories."""
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n<channel>\n'
        "<title>Bench wire</title><link>https://news.example/</link>"
        "<description>generated</description><ttl>15</ttl>\n"
    ]
    for i in range(n):
        summary = (
            f"<p>Export controls on <b>AI chips</b> tightened again, item {i}. "
            "Officials said the rules cover H200 &amp; Blackwell parts shipped to "
            'third countries.</p><p>More <a href="https://news.example/more">here</a>.'
            "</p>"
        )
        parts.append(
            "<item>"
            f"<title><![CDATA[Nvidia H200 shipments item {i}: China approves imports]]></title>"
            f"<link>https://news.example/2026/01/story-{i}.html</link>"
            f'<guid isPermaLink="false">bench-{i}</guid>'
            f"<pubDate>{format_datetime(now - timedelta(minutes=7 * i))}</pubDate>"
            "<dc:creator>Reporter</dc:creator><category>Chips</category>"
            f"<description>{escape(summary)}</description>"
            "</item>\n"
        )
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def timed(fns: dict[str, Callable[[], object]], *, min_time: float) -> dict[str, float]:
    """Milliseconds per call of each function, the best of its rounds: on a shared machine other
    processes only ever add time, so the fastest round is the closest to the code's own cost
    (the median moved by ±10% between runs here). The functions take turns, round after round,
    each round starting with the next one, so none always runs in caches another has just
    warmed. A turn repeats its call for at least 2 ms. Enough rounds to fill ``min_time``
    seconds (at least 5)."""
    once = {}
    for name, fn in fns.items():
        fn()  # warm-up
        start = time.perf_counter()
        fn()
        once[name] = max(time.perf_counter() - start, 1e-6)
    reps = {name: max(1, int(0.002 / t)) for name, t in once.items()}
    per_round = sum(once[name] * reps[name] for name in fns)
    rounds = max(5, min(200, int(min_time / per_round)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for i in range(rounds):
        for name, fn in order[i % len(order) :] + order[: i % len(order)]:
            t = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            samples[name].append((time.perf_counter() - t) / reps[name])
    return {name: min(values) * 1000 for name, values in samples.items()}


def parsers(url: str) -> dict[str, Callable[[bytes], int]]:
    """name → function(body) returning the number of entries found (-1: raised)."""

    def chipwatch(body: bytes) -> int:
        try:
            return len(parse_feed(body, feed="bench", url=url).items)
        except ParseError:
            return -1

    def fp(body: bytes) -> int:
        return len(feedparser.parse(body, response_headers={"content-location": url}).entries)

    out = {"chipwatch": chipwatch}
    for name, parse in _before.items():
        out[name] = lambda body, parse=parse: parse(body, url)
    out["feedparser"] = fp
    if fastfeedparser is not None:

        def ffp(body: bytes) -> int:
            try:
                return len(fastfeedparser.parse(body).entries)
            except Exception:  # noqa: BLE001 (it raises ValueError and others on bad input)
                return -1

        out["fastfeedparser"] = ffp
    return out


def _recovered(body: bytes) -> bool:
    try:
        return parse_feed(body, feed="bench").salvaged
    except ParseError:
        return False


def load(path: Path) -> bytes:
    body = path.read_bytes()
    return gzip.decompress(body) if path.suffix == ".gz" else body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument(
        "--min-time",
        type=float,
        default=0.3,
        help="seconds of timing per parser for the generated feed, a tenth of it "
        "per parser and corpus file (default 0.3; at least 5 rounds)",
    )
    ap.add_argument(
        "--before",
        default=DEFAULT_BEFORE,
        help=f"git revision to compare with (default {DEFAULT_BEFORE}; '' for none)",
    )
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    before = load_before(args.before) if args.before else None
    names = list(parsers("").keys())
    versions = {
        "feedparser": feedparser.__version__,
        "fastfeedparser": getattr(fastfeedparser, "__version__", "?"),
    }

    print(
        "parsers: "
        + ", ".join(n if n.startswith("chipwatch") else f"{n} {versions.get(n, '')}" for n in names)
        + ("" if fastfeedparser else "  (fastfeedparser not installed)")
    )

    body = generated_feed(50)
    print(f"\n1) generated RSS 2.0 feed, 50 items, {len(body) / 1024:.1f} KiB")
    print(f"   {'parser':18} {'ms/feed':>9} {'entries':>8} {'vs feedparser':>14}")
    fns = parsers("https://news.example/feed.xml")
    ms_by = timed(
        {name: (lambda fn=fn: fn(body)) for name, fn in fns.items()},
        min_time=args.min_time * len(fns),
    )
    rows = [(name, ms_by[name], fn(body)) for name, fn in fns.items()]
    base = ms_by["feedparser"]
    for name, ms, count in rows:
        print(f"   {name:18} {ms:9.3f} {count:8d} {base / ms:13.1f}x")
    if before:
        ours = {name: ms for name, ms, _ in rows}
        print(f"   chipwatch time / {before} time: {ours['chipwatch'] / ours[before]:.2f}")

    files = sorted(p for p in args.corpus.glob("*.xml*") if p.is_file())
    if not files:
        print(f"\n2) no corpus at {args.corpus}")
        return 0
    print(f"\n2) corpus: {len(files)} files from {args.corpus}")
    totals = dict.fromkeys(names, 0.0)
    counts: dict[str, dict[str, int]] = {}
    slowest: list[tuple[float, str, dict[str, float]]] = []
    recovered: list[tuple[str, dict[str, float]]] = []  # not well-formed XML
    for path in files:
        data = load(path)
        fns = parsers(f"https://feeds.example/{path.name}")
        per = timed(
            {name: (lambda fn=fn, data=data: fn(data)) for name, fn in fns.items()},
            min_time=args.min_time / 10 * len(fns),
        )
        counts[path.name] = {name: fn(data) for name, fn in fns.items()}
        for name, ms in per.items():
            totals[name] += ms
        slowest.append((per["chipwatch"], path.name, per))
        if _recovered(data):
            recovered.append((path.name, per))
    header = "   " + f"{'':44}" + "".join(f"{n:>18}" for n in names)
    print(header)
    print("   " + f"{'total ms, whole corpus':44}" + "".join(f"{totals[n]:18.1f}" for n in names))
    print(
        "   "
        + f"{'mean ms per feed':44}"
        + "".join(f"{totals[n] / len(files):18.2f}" for n in names)
    )
    print(
        "   "
        + f"{'speed-up vs feedparser':44}"
        + "".join(f"{totals['feedparser'] / totals[n]:17.1f}x" for n in names)
    )
    if before:
        print(f"   chipwatch time / {before} time: {totals['chipwatch'] / totals[before]:.2f}")
    print("\n   slowest five for chipwatch (ms):")
    for _ms, name, per in sorted(slowest, reverse=True)[:5]:
        print("   " + f"{name:44}" + "".join(f"{per[n]:18.2f}" for n in names))

    print("\n   not well-formed files, which chipwatch recovers (ms):")
    for name, per in recovered:
        print("   " + f"{name:44}" + "".join(f"{per[n]:18.2f}" for n in names))

    print("\n   entries found where the parsers disagree (-1 = raised):")
    print(header)
    disagree = 0
    for fname, found in counts.items():
        if len(set(found.values())) > 1:
            disagree += 1
            print("   " + f"{fname:44}" + "".join(f"{found[n]:18d}" for n in names))
    if not disagree:
        print("   (none)")
    print(
        "\n   chipwatch counts only entries with a title, link or summary; the corpus test"
        "\n   (tests/test_parse.py) holds the true count of every file."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
