"""The command line: ``python bot.py COMMAND`` (see ``python bot.py --help``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from . import __version__
from .backtest import backtest, parse_duration
from .cluster import Clusterer, StoryIndex, headline_features
from .config import Config, load_config
from .deliver import Deliverer
from .deliver.console import format_text
from .deliver.sinks import build_sinks
from .errors import ConfigError, StoreError
from .fetch import Fetcher
from .lock import DatabaseLock
from .logs import event, setup_logging
from .match import Matcher, compile_matcher
from .pipeline import CycleReport, run_cycle
from .commands import Commands
from .runtime import Runtime
from .scheduler import Scheduler
from .store import Store, open_store, utcnow

log = logging.getLogger("chipwatch")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bot.py",
                                description="chipwatch: real-time alerts for AI-chip trade news.")
    p.add_argument("--version", action="version", version=f"chipwatch {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="config file (default: ./config.yaml)")
        return sp

    cmd("run", "poll every feed on its schedule and deliver alerts until SIGINT/SIGTERM")
    once = cmd("once", "poll every feed once, deliver everything pending, print a summary")
    once.add_argument("--dry-run", action="store_true",
                      help="print the alerts that would be sent; record and send nothing")
    cmd("demo", "run the whole pipeline on bundled sample feeds served on loopback")
    match = cmd("match", "explain how a headline matches the watchlists and rules")
    match.add_argument("text", nargs="*", help="the headline")
    match.add_argument("--summary", default="", help="an optional summary to match as well")
    match.add_argument("--jsonl", action="store_true",
                       help='read {"title": ..., "summary": ...} lines on stdin, write JSON lines')
    cmd("check-config", "validate the config and print a short summary")
    back = cmd("backtest", "replay stored items through a (candidate) config: what would newly "
                           "alert, what would stop; sends and records nothing")
    back.add_argument("--since", default="7d", help="how far back: 30m, 48h, 7d, 2w (default 7d)")
    story = cmd("cluster", "explain how headlines would group into stories")
    story.add_argument("headlines", nargs="+", metavar="HEADLINE",
                       help="headlines in the order they arrive, each from its own source")
    story.add_argument("--minutes-apart", type=float, default=5.0,
                       help="time between consecutive headlines (default 5)")
    return p


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    stdout = stdout or sys.stdout
    stdin = stdin or sys.stdin
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if args.command == "demo":
            from .demo import run_demo

            if not args.verbose:  # the demo is for reading: alerts on stdout, only problems on stderr
                setup_logging(logging.WARNING)
            return run_demo(args.config, stdout=stdout)
        config = load_config(args.config)
        if args.command == "check-config":
            print(config.summary(), file=stdout)
            return EXIT_OK
        if args.command == "match":
            return _match(config, args, stdout=stdout, stdin=stdin)
        if args.command == "cluster":
            return _cluster(config, args, stdout=stdout)
        if args.command == "backtest":
            return _backtest(config, args, stdout=stdout)
        if args.command == "once":
            return asyncio.run(run_once(config, dry_run=args.dry_run, stdout=stdout))
        if args.command == "run":
            return asyncio.run(run_forever(config))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_FAILURE  # unreachable: argparse requires a known command


# --- match --------------------------------------------------------------------------------


def _match(config: Config, args: argparse.Namespace, *, stdout: TextIO, stdin: TextIO) -> int:
    matcher = compile_matcher(config.watchlists, config.rules)
    if not args.jsonl:
        if not args.text:
            print("match: give a headline, or --jsonl to read JSON lines from stdin",
                  file=sys.stderr)
            return EXIT_FAILURE
        print(matcher.explain(matcher.match(" ".join(args.text), args.summary)), file=stdout)
        return EXIT_OK
    for line in stdin:
        print(json.dumps(match_json_line(matcher, line), ensure_ascii=False), file=stdout,
              flush=True)
    return EXIT_OK


def _backtest(config: Config, args: argparse.Namespace, *, stdout: TextIO) -> int:
    """Print what the config would change over the stored items of the window."""
    try:
        window = parse_duration(args.since)
    except ValueError as exc:
        print(f"backtest: --since: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    matcher = compile_matcher(config.watchlists, config.rules)
    report = backtest(config, since=utcnow() - window)
    for label, changes in (("WOULD NEWLY ALERT", report.newly),
                           ("WOULD STOP ALERTING", report.stopped)):
        if changes:
            print(f"--- {label} ({len(changes)}) ---", file=stdout)
        for change in changes:
            item = change.item
            print(f"{item.seen_at:%Y-%m-%d %H:%M} [{item.feed}] {item.title}", file=stdout)
            print("   " + matcher.explain(change.result).replace("\n", "\n   "), file=stdout)
    print(f"backtest: {report.items} items since {report.since:%Y-%m-%d %H:%M} UTC: "
          f"{len(report.newly)} would newly alert, {len(report.stopped)} would stop alerting, "
          f"{report.kept} alert either way", file=stdout)
    return EXIT_OK


def _cluster(config: Config, args: argparse.Namespace, *, stdout: TextIO) -> int:
    """Run the story clustering on the given headlines and explain every decision."""
    matcher = compile_matcher(config.watchlists, config.rules)
    index = StoryIndex(window=timedelta(hours=config.stories.window_hours),
                       threshold=config.stories.threshold)
    at = utcnow()
    for n, title in enumerate(args.headlines, start=1):
        result = matcher.match(title)
        features = headline_features(title, result.matches)
        index.rarity.observe(features.tokens)
        decision, _ = index.assign(features, at=at, source=f"source {n}", title=title, new_id=n)
        verdict = "alerts" if result.alert else "would not alert (no rule holds)"
        print(f"{n}. {title}\n   {verdict}; {decision.explain()}", file=stdout)
        at += timedelta(minutes=args.minutes_apart)
    return EXIT_OK


def match_json_line(matcher: Matcher, line: str) -> dict:
    """One ``match --jsonl`` answer; bad input gives ``{"error": ...}``, never an exception."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return {"error": f"invalid JSON: {exc}"}
    if not isinstance(obj, dict):
        return {"error": "expected a JSON object"}
    title, summary = obj.get("title"), obj.get("summary", "")
    if not isinstance(title, str):
        return {"error": "'title' must be a string"}
    if summary is None:
        summary = ""
    if not isinstance(summary, str):
        return {"error": "'summary' must be a string when given"}
    return matcher.match(title, summary).to_json()


PRUNE_EVERY_SECONDS = 6 * 3600
RELOAD_CHECK_SECONDS = 2.0


def prune(store: Store, config: Config) -> None:
    """Retention: forget what is older than ``stories.retention_days``."""
    removed = store.prune(older_than=timedelta(days=config.stories.retention_days), now=utcnow())
    if any(removed.values()):
        event(log, "pruned", **removed)


def _on_termination(callback) -> None:  # noqa: ANN001
    """Call ``callback`` on SIGINT/SIGTERM instead of dying mid-send."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass


# --- once ---------------------------------------------------------------------------------


def summary_line(report: CycleReport, *, sent: int, pending: int, dry_run: bool = False) -> str:
    failed = report.failed
    parts = [f"feeds ok={report.ok} failed={len(failed)}"]
    if report.disabled:
        parts.append(f"disabled={len(report.disabled)}")
    parts += [f"new_items={report.new_items}", f"alerts={report.alerts}"]
    parts.append("dry_run=yes (nothing recorded or sent)" if dry_run
                 else f"sent={sent} pending={pending}")
    line = "summary: " + " ".join(parts)
    if failed:
        line += " | failed: " + "; ".join(
            f"{o.feed} ({o.error}{', FAILING SINCE ' + o.failing_since.strftime('%Y-%m-%d %H:%M') if o.flagged and o.failing_since else ''})"
            for o in failed)
    if report.disabled:
        line += " | disabled: " + "; ".join(f"{o.feed} ({o.error})" for o in report.disabled)
    return line


async def run_once(config: Config, *, dry_run: bool = False, stdout: TextIO,
                   sinks: Sequence | None = None, drain_wait: float = 120.0) -> int:
    """One cycle of every feed, then deliver everything pending; prints a summary line."""
    lock = DatabaseLock(config.database, command="once")
    lock.acquire()  # before anything else: a refusal must not leave half-built sinks behind
    try:
        return await _run_once(config, dry_run=dry_run, stdout=stdout, sinks=sinks,
                               drain_wait=drain_wait)
    finally:
        lock.release()


async def _run_once(config: Config, *, dry_run: bool, stdout: TextIO, sinks: Sequence | None,
                    drain_wait: float) -> int:
    sinks = list(sinks) if sinks is not None else build_sinks(config)
    store = open_store(config.database)
    store.edit_delay = timedelta(0)  # one cycle: every story update is in before delivery
    try:
        matcher = compile_matcher(config.watchlists, config.rules)
        now = utcnow()
        clusterer = Clusterer(store, config.stories, now=now, watchlists=config.watchlists)
        async with Fetcher(config.poll) as fetcher:
            report = await run_cycle(config.feeds, config=config, store=store, matcher=matcher,
                                     fetcher=fetcher, now=now, dry_run=dry_run,
                                     clusterer=clusterer)
        sent = 0
        deliverer = Deliverer(store, sinks)
        _on_termination(deliverer.stop.set)
        if dry_run:
            previews = [a for o in report.outcomes for a in o.previews]
            waiting = [a for name in config.destinations.names()
                       for a in store.pending(name, now=utcnow())]
            for alert in [*waiting, *previews]:
                print(format_text(alert) + "\n", file=stdout)
        else:
            delivery = await deliverer.drain(max_wait=drain_wait)
            sent = delivery.sent
            for name in delivery.paused:
                print(f"destination {name} is unavailable: its alerts stay pending (see log)",
                      file=stdout)
        if not dry_run:
            prune(store, config)
        print(summary_line(report, sent=sent, pending=store.count_pending(), dry_run=dry_run),
              file=stdout)
        return EXIT_OK
    finally:
        for sink in sinks:
            await sink.aclose()
        store.close()


# --- run ----------------------------------------------------------------------------------


async def run_forever(config: Config, *, stop: asyncio.Event | None = None,
                      reload_every: float = RELOAD_CHECK_SECONDS) -> int:
    """Poll on schedule, deliver, answer bot commands and follow config edits, until
    SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    with DatabaseLock(config.database, command="run"):
        return await _run_forever(config, stop=stop, reload_every=reload_every)


async def _run_forever(config: Config, *, stop: asyncio.Event, reload_every: float) -> int:
    _on_termination(stop.set)
    store: Store = open_store(config.database)
    try:
        runtime = Runtime(config, store)
    except BaseException:
        store.close()
        raise
    scheduler = Scheduler(poll=runtime.poll, deliver=runtime.deliver)
    runtime.on_feeds_changed = scheduler.set_feeds
    commands = await _start_commands(runtime)

    async def maintain() -> None:
        prune(store, runtime.config)

    scheduler.start(config.feeds)
    scheduler.every(PRUNE_EVERY_SECONDS, maintain, name="prune")
    scheduler.every(reload_every, runtime.reload_if_changed, name="config-watch")
    event(log, "bot_running", feeds=len(config.feeds),
          destinations=",".join(config.destinations.names()), database=config.database,
          commands="on" if commands else "off")
    try:
        await stop.wait()
        event(log, "shutdown_requested")
        runtime.deliverer.stop.set()
        await scheduler.stop()  # waits for the poll or send in flight
    finally:
        if commands is not None:
            await commands.stop()
        await runtime.aclose()
        store.close()
    event(log, "bot_stopped")
    return EXIT_OK


async def _start_commands(runtime: Runtime) -> Commands | None:
    """Bot commands run when Telegram is configured; a failure to start them is logged and the
    bot goes on delivering (commands are retried at the next start)."""
    telegram = runtime.config.destinations.telegram
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if telegram is None or not token:
        return None
    commands = Commands(runtime, token=token, base_url=telegram.api_base_url)
    try:
        await commands.start()
    except Exception as exc:  # noqa: BLE001 - delivery must go on without commands
        event(log, "commands_unavailable", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
        await commands.stop()
        return None
    runtime.notify_admins = commands.notify_admins
    return commands
