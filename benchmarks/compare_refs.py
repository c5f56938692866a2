"""Compare the match, parse, poll and cluster kernels of two versions of chipwatch in one run.

A refactoring must not make the bot slower. This checks out ``--base`` (a git ref) into a
temporary worktree, then times the same four kernels in the base tree and in this working tree,
in fresh processes, alternating base and new for ``--rounds`` rounds (so both see the same
machine load), and prints each kernel's median time and the ratio new / base. A ratio above
1.10 is flagged.

    python benchmarks/compare_refs.py [--base ed6ae43] [--rounds 5] [--only match,parse]

Kernels (the same code in both trees, using only APIs both versions have):
- match: compile the shipped config's matcher, then match every real headline 50 times;
- parse: parse every document of the feed corpus (``../shared/feeds``);
- poll: two cycles (all new, then unchanged bodies) of 200 loopback feeds of 50 items;
- cluster: place the real headlines in time order with the shipped story settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MATCH = r"""
import csv, time
from alerts.config import load_config
from alerts.match import compile_matcher
rows = list(csv.DictReader(open(SHARED / "eval" / "headlines_real.tsv", encoding="utf-8"),
                           delimiter="\t", quoting=csv.QUOTE_NONE))
titles = [r["headline"] for r in rows] * 50
config = load_config(TREE / "config.yaml")
t = time.perf_counter()
matcher = compile_matcher(config.watchlists, config.rules)
for title in titles:
    matcher.match(title)
print(time.perf_counter() - t)
"""

PARSE = r"""
import gzip, time
from alerts.errors import ParseError
from alerts.parse import parse_feed
bodies = [p.read_bytes() for p in sorted((SHARED / "feeds").iterdir())
          if p.name.endswith((".xml", ".xml.gz"))]
t = time.perf_counter()
for _ in range(3):
    for body in bodies:
        try:
            parse_feed(body, feed="bench")
        except ParseError:
            pass
print(time.perf_counter() - t)
"""

POLL = r"""
import asyncio, tempfile, threading, time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
try:
    from alerts.stories import Clusterer
except ImportError:  # a version from before alerts/stories/
    from alerts.cluster import Clusterer
from alerts.config import FeedConfig, load_config
from alerts.fetch import Fetcher
from alerts.match import compile_matcher
from alerts.store import open_store
import alerts.pipeline as pipeline

now = datetime.now(timezone.utc)
def body(n):
    items = "".join(
        f"<item><title>{'Nvidia H20 export controls for' if i % 17 == 0 else 'Council budget in'}"
        f" region {n}-{i}</title><link>https://news{n}.example/{i}</link><guid>f{n}-{i}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=5 + i))}</pubDate>"
        f"<description>Item {i} of feed {n}.</description></item>" for i in range(50))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>F{n}</title>'
            f"<link>http://x/</link><description>d</description>{items}</channel></rss>").encode()
BODIES = [body(n) for n in range(200)]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        b = BODIES[int(self.path.strip("/").split(".")[0])]
        self.send_response(200); self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
httpd = ThreadingHTTPServer(("127.0.0.1", 0), H); httpd.daemon_threads = True
threading.Thread(target=httpd.serve_forever, daemon=True).start()
port = httpd.server_address[1]

async def main():
    config = load_config(TREE / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        feeds = tuple(FeedConfig(name=f"feed {i}", url=f"http://127.0.0.1:{port}/{i}.xml",
                                 interval_seconds=300) for i in range(200))
        config = replace(config, feeds=feeds, database=Path(tmp) / "b.db")
        store = open_store(config.database)
        matcher = compile_matcher(config.watchlists, config.rules)
        total = 0.0
        async with Fetcher(config.poll) as fetcher:
            for _ in range(2):
                clusterer = Clusterer(store, config.stories, now=now, watchlists=config.watchlists)
                kw = dict(config=config, store=store, matcher=matcher, fetcher=fetcher,
                          now=datetime.now(timezone.utc), clusterer=clusterer)
                t = time.perf_counter()
                if hasattr(pipeline, "PollContext"):
                    await pipeline.run_cycle(feeds, pipeline.PollContext(**kw))
                else:
                    await pipeline.run_cycle(feeds, **kw)
                total += time.perf_counter() - t
        store.close()
    print(total)
asyncio.run(main())
"""

CLUSTER = r"""
import csv, time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
try:
    from alerts.stories import cluster_offline
except ImportError:  # a version from before alerts/stories/
    from alerts.cluster import cluster_offline
from alerts.config import load_config
from alerts.match import compile_matcher
def when(v):
    v = v.strip()
    if not v:
        return None
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        try:
            d = parsedate_to_datetime(v)
        except (TypeError, ValueError, IndexError):
            return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
config = load_config(TREE / "config.yaml")
matcher = compile_matcher(config.watchlists, config.rules)
rows = [r for r in csv.DictReader(open(SHARED / "eval" / "headlines_real.tsv", encoding="utf-8"),
                                  delimiter="\t", quoting=csv.QUOTE_NONE) if when(r["date"])]
items = [(r["headline"], when(r["date"]), r["outlet"] or "unknown",
          matcher.match(r["headline"]).matches) for r in rows]
t = time.perf_counter()
for _ in range(5):
    cluster_offline(items, window=timedelta(hours=48), threshold=config.stories.threshold)
print(time.perf_counter() - t)
"""

KERNELS = {"match": MATCH, "parse": PARSE, "poll": POLL, "cluster": CLUSTER}


def run(kernel: str, tree: Path) -> float:
    prelude = (
        f"import sys\nfrom pathlib import Path\nTREE = Path({str(tree)!r})\n"
        f"SHARED = Path({str(ROOT.parent / 'shared')!r})\nsys.path.insert(0, str(TREE))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + KERNELS[kernel]],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="ed6ae43", help="git ref to compare against")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(KERNELS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    kernels = [k for k in args.only.split(",") if k]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base],
            check=True,
        )
        try:
            times: dict[str, dict[str, list[float]]] = {k: {"base": [], "new": []} for k in kernels}
            for _ in range(args.rounds):
                for k in kernels:
                    times[k]["base"].append(run(k, base))
                    times[k]["new"].append(run(k, ROOT))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False
            )
    result = {}
    print(
        f"{'kernel':8} {'base s':>8} {'new s':>8} {'new/base':>9}   (medians of {args.rounds}, "
        f"base {args.base})"
    )
    worst = 0.0
    for k in kernels:
        b, n = statistics.median(times[k]["base"]), statistics.median(times[k]["new"])
        ratio = n / b
        worst = max(worst, ratio)
        result[k] = {"base": b, "new": n, "ratio": ratio}
        flag = "  slower by more than 10%" if ratio > 1.10 else ""
        print(f"{k:8} {b:8.3f} {n:8.3f} {ratio:9.2f}{flag}")
    if args.json:
        print(json.dumps(result))
    return 1 if worst > 1.10 else 0


if __name__ == "__main__":
    sys.exit(main())
