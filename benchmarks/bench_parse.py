"""Parse speed and entry counts: chipwatch's parse_feed against feedparser (the naive baseline)
and, when installed, fastfeedparser — all in one run, on the same bytes.

    python benchmarks/bench_parse.py [--corpus DIR] [--min-time SECONDS]

Part 1 times a generated 50-item RSS 2.0 feed. Part 2 times every file of the shared feed corpus
(a .gz file is decompressed first, as an HTTP client would for Content-Encoding: gzip) and lists
the files where the parsers find different numbers of entries. ms figures are the median of
repeated runs after a warm-up.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import gzip  # noqa: E402
import statistics  # noqa: E402
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


def generated_feed(n: int = 50) -> bytes:
    """A realistic RSS 2.0 feed: CDATA titles, HTML descriptions, dates, guids, categories."""
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
             'xmlns:dc="http://purl.org/dc/elements/1.1/" '
             'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n<channel>\n'
             "<title>Bench wire</title><link>https://news.example/</link>"
             "<description>generated</description><ttl>15</ttl>\n"]
    for i in range(n):
        summary = (f"<p>Export controls on <b>AI chips</b> tightened again, item {i}. "
                   "Officials said the rules cover H200 &amp; Blackwell parts shipped to "
                   "third countries.</p><p>More <a href=\"https://news.example/more\">here</a>."
                   "</p>")
        parts.append(
            "<item>"
            f"<title><![CDATA[Nvidia H200 shipments item {i}: China approves imports]]></title>"
            f"<link>https://news.example/2026/01/story-{i}.html</link>"
            f'<guid isPermaLink="false">bench-{i}</guid>'
            f"<pubDate>{format_datetime(now - timedelta(minutes=7 * i))}</pubDate>"
            "<dc:creator>Reporter</dc:creator><category>Chips</category>"
            f"<description>{escape(summary)}</description>"
            "</item>\n")
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def timed(fn: Callable[[], object], *, min_time: float) -> float:
    """Median milliseconds per call, over enough calls to fill ``min_time`` seconds."""
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    runs = max(3, min(200, int(min_time / once)))
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def parsers(url: str) -> dict[str, Callable[[bytes], int]]:
    """name → function(body) returning the number of entries found (-1: raised)."""

    def chipwatch(body: bytes) -> int:
        try:
            return len(parse_feed(body, feed="bench", url=url).items)
        except ParseError:
            return -1

    def fp(body: bytes) -> int:
        return len(feedparser.parse(body, response_headers={"content-location": url}).entries)

    out = {"chipwatch": chipwatch, "feedparser": fp}
    if fastfeedparser is not None:
        def ffp(body: bytes) -> int:
            try:
                return len(fastfeedparser.parse(body).entries)
            except Exception:  # noqa: BLE001 (it raises ValueError and others on bad input)
                return -1
        out["fastfeedparser"] = ffp
    return out


def load(path: Path) -> bytes:
    body = path.read_bytes()
    return gzip.decompress(body) if path.suffix == ".gz" else body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--min-time", type=float, default=0.3,
                    help="seconds of timing per parser and feed (default 0.3)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    names = list(parsers("").keys())
    versions = {"feedparser": feedparser.__version__,
                "fastfeedparser": getattr(fastfeedparser, "__version__", "?")}

    print("parsers: " + ", ".join(
        n if n == "chipwatch" else f"{n} {versions.get(n, '')}" for n in names)
        + ("" if fastfeedparser else "  (fastfeedparser not installed)"))

    body = generated_feed(50)
    print(f"\n1) generated RSS 2.0 feed, 50 items, {len(body) / 1024:.1f} KiB")
    print(f"   {'parser':16} {'ms/feed':>9} {'entries':>8} {'vs feedparser':>14}")
    base = None
    rows = []
    for name, fn in parsers("https://news.example/feed.xml").items():
        ms = timed(lambda fn=fn: fn(body), min_time=args.min_time)
        rows.append((name, ms, fn(body)))
        if name == "feedparser":
            base = ms
    for name, ms, count in rows:
        print(f"   {name:16} {ms:9.3f} {count:8d} {base / ms:13.1f}x")

    files = sorted(p for p in args.corpus.glob("*.xml*") if p.is_file())
    if not files:
        print(f"\n2) no corpus at {args.corpus}")
        return 0
    print(f"\n2) corpus: {len(files)} files from {args.corpus}")
    totals = dict.fromkeys(names, 0.0)
    counts: dict[str, dict[str, int]] = {}
    slowest: list[tuple[float, str, dict[str, float]]] = []
    for path in files:
        data = load(path)
        per = {}
        counts[path.name] = {}
        for name, fn in parsers(f"https://feeds.example/{path.name}").items():
            ms = timed(lambda fn=fn, data=data: fn(data), min_time=args.min_time / 10)
            per[name] = ms
            totals[name] += ms
            counts[path.name][name] = fn(data)
        slowest.append((per["chipwatch"], path.name, per))
    header = "   " + f"{'':44}" + "".join(f"{n:>16}" for n in names)
    print(header)
    print("   " + f"{'total ms, whole corpus':44}" + "".join(f"{totals[n]:16.1f}" for n in names))
    print("   " + f"{'mean ms per feed':44}"
          + "".join(f"{totals[n] / len(files):16.2f}" for n in names))
    print("   " + f"{'speed-up vs feedparser':44}"
          + "".join(f"{totals['feedparser'] / totals[n]:15.1f}x" for n in names))
    print("\n   slowest five for chipwatch (ms):")
    for _ms, name, per in sorted(slowest, reverse=True)[:5]:
        print("   " + f"{name:44}" + "".join(f"{per[n]:16.2f}" for n in names))

    print("\n   entries found where the parsers disagree (-1 = raised):")
    print(header)
    disagree = 0
    for fname, found in counts.items():
        if len(set(found.values())) > 1:
            disagree += 1
            print("   " + f"{fname:44}" + "".join(f"{found[n]:16d}" for n in names))
    if not disagree:
        print("   (none)")
    print("\n   chipwatch counts only entries with a title, link or summary; the corpus test"
          "\n   (tests/test_parse.py) holds the true count of every file.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
