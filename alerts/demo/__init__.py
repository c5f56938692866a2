"""``python bot.py demo``: the whole pipeline on bundled sample feeds, offline, with no tokens.

The feeds in this folder are served on a loopback port; the watchlists and rules come from the
config (``./config.yaml``, else the shipped one: ``config.yaml`` here is a link to the repository's,
which a wheel carries as a copy); the database is a temporary file that is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import re
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import TextIO

from ..app import run_once
from ..config import Destinations, FeedConfig, load_config
from ..deliver.console import ConsoleSink
from ..loopback import FeedServer, Route

HERE = Path(__file__).parent
SHIPPED_CONFIG = HERE / "config.yaml"
SAMPLES = (
    ("Asia Tech Wire", "wire.xml", "application/rss+xml"),
    ("Trade Policy Watch", "policy.atom", "application/atom+xml"),
    ("Markets Digest", "syndicated.xml", "application/rss+xml"),
)
_AGO_RE = re.compile(r"\{\{ago:(\d+)\}\}")


def render_sample(name: str, *, now: datetime | None = None) -> bytes:
    """A sample feed with ``{{ago:N}}`` replaced by the date N minutes before ``now``."""
    now = now or datetime.now(timezone.utc)
    atom = name.endswith(".atom")

    def when(m: re.Match) -> str:
        t = now - timedelta(minutes=int(m.group(1)))
        return t.isoformat(timespec="seconds") if atom else format_datetime(t)

    return _AGO_RE.sub(when, (HERE / name).read_text(encoding="utf-8")).encode("utf-8")


def run_demo(config_path: Path, *, stdout: TextIO) -> int:
    config = load_config(config_path if config_path.exists() else SHIPPED_CONFIG)
    with FeedServer() as server, tempfile.TemporaryDirectory(prefix="chipwatch-demo-") as tmp:
        feeds = []
        for title, filename, ctype in SAMPLES:
            url = server.route(
                f"/{filename}",
                Route(
                    body=functools.partial(render_sample, filename), headers={"Content-Type": ctype}
                ),
            )
            feeds.append(FeedConfig(name=title, url=url, interval_seconds=60))
        demo = replace(
            config, feeds=tuple(feeds), database=Path(tmp) / "demo.db", destinations=Destinations()
        )
        print(
            f"chipwatch demo: {len(feeds)} sample feeds on {server.url('/')}, watchlists from "
            f"{config.path}\n",
            file=stdout,
        )
        print("--- first poll: new stories ---\n", file=stdout)
        code = asyncio.run(run_once(demo, stdout=stdout, sinks=[ConsoleSink(stream=stdout)]))
        print("\n--- second poll: the same feeds again, nothing repeats ---\n", file=stdout)
        code = code or asyncio.run(
            run_once(demo, stdout=stdout, sinks=[ConsoleSink(stream=stdout)])
        )
    return code
