"""Benchmark WebSub push against polling: the latency of one entry from publication to the
Bot API's ``sendMessage`` (issue #22: "delivered within 2 s" on loopback).

Two ``python bot.py run`` processes, each with its own database and its own strict fake Bot
API (tests/fakes/telegram_api.py), run side by side with the shipped timings:

- **pushed**: its feed names a hub (tests/fakes/websub_hub.py, a spec-following hub on
  loopback) in a ``Link:`` header; the bot subscribes after its first poll. The feed's
  interval is an hour, so nothing but the push can bring the entry in time.
- **polled**: the same feed without a hub, polled every ``--interval`` seconds (default 10,
  the config's floor; ``adaptive: false``), as a busy feed is. Quiet feeds slow down to an
  hour, so this is polling at its best.

Each round publishes one new entry (the same title and link) on both feeds at the same
instant: the publisher pings the hub, which fetches the feed and pushes it, signed, to the
bot's callback. Latency is measured from the ping to the fake Bot API's sendMessage of that
entry, on one monotonic clock (the fakes and the hub run in this process). Rounds start at
random moments of the poll interval, so the polled latency samples its whole range.

    python benchmarks/bench_websub.py [--rounds 8] [--interval 10]

About ``rounds × interval`` seconds, plus ~15 s for the bots' start (first poll spread over
5 s, then the subscriber's round every 10 s).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.loopback import FeedServer, Route  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.fakes.websub_hub import FakeHub  # noqa: E402

CHANNEL, CHANNEL_ID = "@bench", -1001234567890
WATCHLISTS = """watchlists:
  chips: [H20, H200]
  companies: [Nvidia]
  export_terms: [entity list, export controls, import approval]
"""


class TimedTelegram(FakeTelegram):
    """The fake Bot API, noting when each message arrived."""

    def __init__(self) -> None:
        super().__init__(chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "b"}})
        self.arrived: dict[str, float] = {}

    def _send_message(self, token: str, params: dict) -> dict:
        answer = super()._send_message(token, params)
        self.arrived.setdefault(str(params.get("text", "")), time.monotonic())
        return answer

    def when(self, title: str) -> float | None:
        return next((t for text, t in list(self.arrived.items()) if title in text), None)


class Feed:
    """One RSS feed whose entries the benchmark publishes; it may name a hub."""

    def __init__(self, hub: str | None):
        self.hub = hub
        self.url = ""
        self.items: list[str] = []
        self._lock = threading.Lock()

    def respond(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            items = list(self.items)
        now = format_datetime(datetime.now(timezone.utc))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Wire'
            "</title><link>https://w.example/</link><description>bench</description>"
            + "".join(
                f"<item><title>{t}</title><link>https://w.example/{i}</link><guid>g{i}</guid>"
                f"<pubDate>{now}</pubDate></item>"
                for i, t in reversed(list(enumerate(items)))
            )
            + "</channel></rss>"
        ).encode()
        out = {"Content-Type": "application/rss+xml; charset=utf-8"}
        if self.hub:
            out["Link"] = f'<{self.hub}>; rel="hub", <{self.url}>; rel="self"'
        return 200, out, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(database: Path, url: str, telegram: FakeTelegram, interval: int,
                websub_port: int | None) -> str:  # fmt: skip
    lines = [
        f"database: {database}",
        'ops:\n  listen: ""',
        f"poll:\n  interval_seconds: {interval}\n  max_interval_seconds: {max(interval, 3600)}"
        "\n  adaptive: false",
        f'feeds:\n  - name: Wire\n    url: "{url}"',
        f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
        f"    api_base_url: {telegram.base_url}",
        "stories:\n  edit_delay_seconds: 0",
    ]
    if websub_port:
        lines.append(
            f"websub:\n  callback_url: http://127.0.0.1:{websub_port}/websub\n"
            f"  listen: 127.0.0.1:{websub_port}"
        )
    return "\n".join(lines) + "\n" + WATCHLISTS


def start_bot(tmp: Path, name: str, text: str, token: str) -> subprocess.Popen:
    config = tmp / f"{name}.yaml"
    config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
    env["TELEGRAM_BOT_TOKEN"] = token
    log = (tmp / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def wait(predicate, what: str, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--interval", type=int, default=10, help="the polled feed's interval (s)")
    ap.add_argument("--seed", type=int, default=22)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    with (
        FeedServer() as server,
        FakeHub() as hub,
        TimedTelegram() as pushed_api,
        TimedTelegram() as polled_api,
        tempfile.TemporaryDirectory() as tmp_dir,
    ):
        tmp = Path(tmp_dir)
        pushed, polled = Feed(hub.url), Feed(None)
        pushed.url = server.route("/pushed.xml", Route(respond=pushed.respond))
        polled.url = server.route("/polled.xml", Route(respond=polled.respond))
        bots = [
            start_bot(tmp, "pushed", config_text(tmp / "pushed.db", pushed.url, pushed_api,
                                                 3600, free_port()), pushed_api.token),
            start_bot(tmp, "polled", config_text(tmp / "polled.db", polled.url, polled_api,
                                                 args.interval, None), polled_api.token),
        ]  # fmt: skip
        try:
            wait(lambda: hub.live(pushed.url), "the pushed bot's subscription", 90)
            wait(lambda: server.hits("/polled.xml"), "the polled bot's first poll", 90)
            push_ms, poll_ms = [], []
            for n in range(args.rounds):
                time.sleep(rng.uniform(0, args.interval))  # a random moment of the interval
                title = f"US adds {n + 2} Nvidia H20 buyers to entity list"
                with pushed._lock, polled._lock:
                    pushed.items.append(title)
                    polled.items.append(title)
                published = time.monotonic()
                statuses = hub.publish(pushed.url)  # the publisher's ping: fetch, push
                assert statuses == [204], statuses
                got_push = wait(lambda t=title: pushed_api.when(t), "the pushed alert", 30)
                got_poll = wait(lambda t=title: polled_api.when(t), "the polled alert",
                                args.interval * 3 + 30)  # fmt: skip
                push_ms.append((got_push - published) * 1000)
                poll_ms.append((got_poll - published) * 1000)
                print(f"round {n + 1}: pushed {push_ms[-1]:7.0f} ms   polled {poll_ms[-1]:7.0f} ms")
            polls = sum(1 for p, h in server.requests
                        if p == "/pushed.xml" and h.get("User-Agent", "").startswith("chipwatch"))  # fmt: skip
        finally:
            for bot in bots:
                bot.send_signal(signal.SIGTERM)
            for bot in bots:
                try:
                    bot.wait(30)
                except subprocess.TimeoutExpired:
                    bot.kill()
    push, poll = statistics.median(push_ms), statistics.median(poll_ms)
    print()
    print(f"publish -> sendMessage, {args.rounds} entries, loopback, shipped timings")
    print(f"  pushed (WebSub):         median {push:6.0f} ms   max {max(push_ms):6.0f} ms")
    print(
        f"  polled every {args.interval:>3} s:      median {poll:6.0f} ms   max {max(poll_ms):6.0f} ms"
    )
    print(f"  ratio polled / pushed:   {poll / push:.1f}x (median)")
    print(f"  polls of the pushed feed during the run: {polls} (the first, which found the hub)")
    print(f"  pushed within 2 s: {sum(m <= 2000 for m in push_ms)} of {len(push_ms)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
