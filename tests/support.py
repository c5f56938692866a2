"""Builders the tests share: feed documents, temp configs, and running the CLI (in a new
process, or in this one). Plain functions, imported by the tests; ``conftest.py`` holds the
fixtures."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from alerts.cli import main
from alerts.config import Config, LearnedConfig, load_config
from alerts.coordinate import Coordinator
from alerts.fetch import Fetcher
from alerts.match import Matcher, compile_matcher, normalise
from alerts.pipeline import CycleReport, PollContext, run_cycle
from alerts.relevance import MODEL_PATH, features
from alerts.store import Store
from alerts.stories import Clusterer
from alerts.types import FeedItem, Match, MatchResult, NewItem

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def shipped_config() -> Config:
    """The shipped config.yaml, read once per test process."""
    return load_config(ROOT / "config.yaml", environ={})


@functools.cache
def shipped_matcher(learned: LearnedConfig | None = None) -> Matcher:
    """The shipped config's matcher (its own learned section unless ``learned`` is given),
    built once per test process: a matcher is immutable to its callers, and a build costs
    tens of milliseconds."""
    config = shipped_config()
    return compile_matcher(config.watchlists, config.rules, learned or config.learned)


def shipped_watchlists() -> str:
    """The shipped config's watchlists and rules, as YAML text for ``write_config``; without
    the rules limited to feed tags, which the tests' own feeds do not carry."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = text.split("\nwatchlists:", 1)[1].split("\ndestinations:", 1)[0]
    items = text.split("\n  - name: ")
    kept = [i for i in items[:1] + ["  - name: " + i for i in items[1:]] if "\n    tags:" not in i]
    return "\nwatchlists:" + "\n".join(kept) + "\n"


class Clock:
    """A clock that moves only when it sleeps (as a deliverer or a debouncer sleeps)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def learned_oracle(title: str) -> tuple[float, str]:
    """The shipped model's score of ``title`` and its heaviest word or word pair, worked out
    here from the model file's weights (not from the Opinion under test): what a learned
    alert's why line must show."""
    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    cats = {m.category for m in shipped_matcher().match(title).matches}
    found = features(normalise(title).split(), [], cats)
    weighed = {f: v * model["weights"][f] for f, v in found.items() if f in model["weights"]}
    z = model["bias"] + math.fsum(weighed.values())
    top = max((f for f in weighed if not f.startswith("cat:")), key=lambda f: weighed[f])
    return 1 / (1 + math.exp(-z)), top.partition(":")[2]


CHANNEL, CHANNEL_ID = "@chipwatch_test", -1001234567890  # the fake Bot API's test channel

MINIMAL_WATCHLISTS = """
watchlists:
  chips:
    - term: H200
      context: [Nvidia, GPU, chip, chips, AI]
    - H20
    - Blackwell
  companies:
    - Nvidia
    - Huawei
    - SMIC
  export_terms:
    - export controls
    - term: import approval
      aliases: [approves imports, imports]
    - entity list
"""


# Titles that break naive escaping, per destination.
HOSTILE = [
    ("angle_brackets", "Nvidia <H20> chips & the <b>export</b> ban"),
    ("ampersand_entities", "AT&T &amp; Intel: &lt;not a tag&gt; &#x3C;script&#x3E;"),
    ("quotes", "Huawei \"Ascend\" chips' 'licence' row"),
    ("emoji", "🚨🇨🇳 Nvidia H200 export approved 🎉👩‍💻"),
    ("rtl", "مصر تحظر تصدير رقائق Nvidia H20 ‏(عاجل)‏"),
    ("chinese", "中国批准首批英伟达H200芯片进口，出口管制松动"),
    ("control_chars", "Nvidia\u200b H20\u202e export ban"),
]


def ago(**kw) -> datetime:
    return datetime.now(timezone.utc) - timedelta(**kw)


def rss(items: list[dict], *, title: str = "Test feed") -> str:
    """An RSS 2.0 document; each item may have title, link, guid, date (datetime), summary,
    source (an aggregator's outlet)."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>"
        f"<description>test</description>"
    ]
    for it in items:
        parts.append("<item>")
        if "title" in it:
            parts.append(f"<title>{escape(it['title'])}</title>")
        if "link" in it:
            parts.append(f"<link>{escape(it['link'])}</link>")
        if "guid" in it:
            parts.append(f'<guid isPermaLink="false">{escape(it["guid"])}</guid>')
        if it.get("date") is not None:
            parts.append(f"<pubDate>{format_datetime(it['date'])}</pubDate>")
        if "summary" in it:
            parts.append(f"<description>{escape(it['summary'])}</description>")
        if "source" in it:  # as aggregators (Google News) name the outlet
            parts.append(f'<source url="https://outlet.example">{escape(it["source"])}</source>')
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts)


def atom(entries: list[dict], *, title: str = "Test Atom feed") -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test:{escape(title)}</id>"
        f"<updated>{datetime.now(timezone.utc).isoformat()}</updated>"
    ]
    for e in entries:
        parts.append(
            f"<entry><title>{escape(e['title'])}</title><id>{escape(e['guid'])}</id>"
            f'<link href="{escape(e["link"])}"/>'
            f"<updated>{e['date'].isoformat()}</updated>"
        )
        if "summary" in e:
            parts.append(f"<summary>{escape(e['summary'])}</summary>")
        parts.append("</entry>")
    parts.append("</feed>")
    return "".join(parts)


def write_config(
    tmp_path: Path,
    feeds: list[tuple[str, str]],
    *,
    extra: str = "",
    watchlists: str = MINIMAL_WATCHLISTS,
    timeout: float = 5,
    ops_listen: str = "",
    database: Path | str = "cw.db",
) -> Path:
    """A config file in ``tmp_path`` polling ``feeds`` [(name, url)] into ``tmp_path/cw.db``
    (or ``database``: a path or a PostgreSQL URL). The ops endpoint is off unless
    ``ops_listen`` is given, so tests never fight over 9108."""
    lines = [
        f"database: {database}",
        f'ops:\n  listen: "{ops_listen}"',
        "poll:",
        f"  timeout_seconds: {timeout}",
        "  max_age_hours: 24",
        "feeds:",
    ]
    for name, url in feeds:
        lines += [f'  - name: "{name}"', f'    url: "{url}"']
    if not feeds:
        lines[-1] = "feeds: []"
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n" + watchlists + extra, encoding="utf-8")
    return path


def run_bot(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """``python bot.py ARGS`` in a new process, as a user would run it."""
    full_env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=cwd or ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True, kw_only=True)
class Ran:
    """What ``cli`` ran, as ``subprocess.CompletedProcess`` would have it."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


_NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler")  # setup_logging sets these


@contextlib.contextmanager
def _as_a_new_process(cwd: Path, env: dict | None) -> Iterator[None]:
    """The environment and working directory ``run_bot`` gives a process; afterwards this
    process's environment, directory and logging as they were."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    os.environ.pop("CHIPWATCH_DATABASE", None)
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, stdin: str | None = None
) -> Ran:
    """``python bot.py ARGS`` in this process: the same ``main``, its exit code, stdout and
    stderr (the log included). For the tests where a real process is not the point: it costs
    no interpreter start and no imports. Not from inside a running event loop."""
    out, err = io.StringIO(), io.StringIO()
    with (
        _as_a_new_process(cwd or ROOT, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(args), stdin=io.StringIO(stdin or ""))
        except SystemExit as exc:  # argparse: --help, --version, bad arguments
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
    return Ran(args=args, returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


class RunningBot:
    """``python bot.py run`` as its own process, logging to a file (or ``argv`` in ``cwd``,
    e.g. the Docker image's entry point)."""

    def __init__(
        self,
        config: Path | None,
        log: Path,
        env: dict[str, str] | None = None,
        *,
        argv: list[str] | None = None,
        cwd: Path = ROOT,
    ):
        self.log = log
        full = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
        full.update(env or {})
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                argv or [sys.executable, str(ROOT / "bot.py"), "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full,
                cwd=cwd,
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def alerting_item(
    guid: str, title: str, *, feed: str, destinations: tuple[str, ...], summary: str = "", **story
) -> NewItem:
    """A new item that alerts (Nvidia, rule chip-trade) and starts a story (``story_id=``); a
    follow-up names the story it follows (``thread=``) and why (``decision=``)."""
    link = f"https://{feed.lower()}.example/{guid}"
    return NewItem(
        item=FeedItem(
            feed=feed,
            guid=guid,
            link=link,
            title=title,
            summary=summary,
            published=datetime.now(timezone.utc),
        ),
        canonical_link=link,
        result=MatchResult(
            matches=(Match("companies", "Nvidia", "Nvidia", "exact", 100.0),),
            rules=("chip-trade",),
        ),
        destinations=tuple(destinations),
        new_story=True,
        **story,
    )


def record(store: Store, feed: str, *items: NewItem) -> list[int]:
    """Record one successful poll of ``feed`` with these new items; the new alert ids."""
    return store.record_poll(
        feed, f"http://127.0.0.1:9/{feed}", list(items), now=datetime.now(timezone.utc)
    )


def deliveries(store, alert_id: int) -> list[dict]:
    """An alert's outbox rows, one per destination."""
    return list(
        store.db.query(
            "SELECT * FROM deliveries WHERE alert_id = ? ORDER BY destination", [alert_id]
        )
    )


async def poll_cycle(
    config: Config,
    store: Store,
    *,
    now: datetime | None = None,
    respect_schedule: bool = False,
    clusterer: Clusterer | None = None,
    coordinator: Coordinator | None = None,
) -> CycleReport:
    """One ``run_cycle`` of the config's feeds with a fresh matcher and fetcher, at ``now``
    (default: the current time)."""
    matcher = compile_matcher(config.watchlists, config.rules)
    async with Fetcher(config.poll) as fetcher:
        return await run_cycle(
            config.feeds,
            PollContext(
                config=config,
                store=store,
                matcher=matcher,
                fetcher=fetcher,
                now=now or datetime.now(timezone.utc),
                respect_schedule=respect_schedule,
                clusterer=clusterer,
                coordinator=coordinator,
            ),
        )


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[None]:
    """Nothing can be created, renamed or removed in ``path`` meanwhile, for this process
    too: by its mode for a user, by the immutable flag for root (whom modes do not bind)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    import array
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("l", [flags[0] | FS_IMMUTABLE_FL]))
        try:
            yield
        finally:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
    finally:
        os.close(fd)
