"""The command line: ``python bot.py COMMAND`` (see ``python bot.py --help``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from . import __version__
from .app import run_forever, run_once
from .backtest import backtest
from .config import Config, check_environment, load_config, parse_duration
from .config.edit import EditRefused, add_feeds
from .errors import ConfigError, OpmlError, StoreError
from .explain import explain_headline, match_json_line, place_headlines
from .logs import setup_logging
from .match import compile_matcher
from .parse.opml import OpmlFeed, read_opml, write_opml
from .status import format_status, read_status
from .types import utcnow

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
EXIT_USAGE = 2  # a command used wrongly, as argparse exits for its own usage errors


def _parser() -> argparse.ArgumentParser:
    # The installed console script is `chipwatch`; from a checkout it is `python bot.py`.
    prog = "chipwatch" if Path(sys.argv[0]).name == "chipwatch" else "python bot.py"
    p = argparse.ArgumentParser(
        prog=prog, description="chipwatch: real-time alerts for AI-chip trade news."
    )
    p.add_argument("--version", action="version", version=f"chipwatch {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines as text (default) or one JSON object a line; overrides "
        "the config's log_format",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument(
            "--config",
            type=Path,
            default=Path("config.yaml"),
            help="config file (default: ./config.yaml)",
        )
        return sp

    cmd("run", "poll every feed on its schedule and deliver alerts until SIGINT/SIGTERM")
    once = cmd("once", "poll every feed once, deliver everything pending, print a summary")
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="print the alerts that would be sent; record and send nothing",
    )
    cmd("demo", "run the whole pipeline on bundled sample feeds served on loopback")
    match = cmd("match", "explain how a headline matches the watchlists and rules")
    match.add_argument("text", nargs="*", help="the headline")
    match.add_argument("--summary", default="", help="an optional summary to match as well")
    match.add_argument(
        "--feed",
        default=None,
        help="match it as an item of this configured feed (its tags count; shows its routes)",
    )
    match.add_argument(
        "--jsonl",
        action="store_true",
        help='read {"title": ..., "summary": ...} lines on stdin, write JSON lines',
    )
    check = cmd(
        "check-config",
        "validate the config and what run needs from the environment (secrets); print a "
        "short summary",
    )
    check.add_argument(
        "--offline",
        action="store_true",
        help="check the file only, not the environment (for CI, where no secrets are set)",
    )
    back = cmd(
        "backtest",
        "replay stored items through a (candidate) config: what would newly "
        "alert, what would stop; sends and records nothing",
    )
    back.add_argument("--since", default="7d", help="how far back: 30m, 48h, 7d, 2w (default 7d)")
    status = cmd(
        "status",
        "feeds, pending deliveries, last alert and pauses, read from the "
        "database; exit 0 when healthy, 1 when not",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    story = cmd("cluster", "explain how headlines would group into stories")
    story.add_argument(
        "headlines",
        nargs="+",
        metavar="HEADLINE",
        help="headlines in the order they arrive, each from its own source",
    )
    story.add_argument(
        "--minutes-apart",
        type=float,
        default=5.0,
        help="time between consecutive headlines (default 5)",
    )
    feeds = cmd(
        "feeds",
        "import feeds from an OPML file into the config (keeping its comments), or export "
        "the config's feeds as OPML 2.0",
    )
    feeds.add_argument("action", choices=("import", "export"))
    feeds.add_argument(
        "file", nargs="?", type=Path, help="import: the OPML file; export: where (default stdout)"
    )
    feeds.add_argument(
        "--dry-run", action="store_true", help="import: say what would be added; write nothing"
    )
    return p


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool ended by SIGPIPE


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Run one command; its exit status."""
    try:
        return _main(argv, stdout=stdout, stdin=stdin)
    except BrokenPipeError:
        # The reader went away (`… | head -1`): stop quietly, as Unix tools do. Later writes,
        # and the interpreter's last flush, go nowhere instead of raising again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None, *, stdout: TextIO | None, stdin: TextIO | None) -> int:
    args = _parser().parse_args(argv)
    stdout = stdout or sys.stdout
    stdin = stdin or sys.stdin
    level = logging.DEBUG if args.verbose else logging.INFO
    setup_logging(level, json_lines=args.log_format == "json")
    try:
        if args.command == "demo":
            from .demo import run_demo

            # the demo is for reading: alerts on stdout, only problems on stderr
            if not args.verbose:
                setup_logging(logging.WARNING, json_lines=args.log_format == "json")
            return run_demo(args.config, stdout=stdout)
        offline = args.command == "check-config" and args.offline
        config = load_config(args.config, environ={} if offline else None)
        if args.log_format is None and config.log_format == "json":
            setup_logging(level, json_lines=True)
        if args.command == "check-config":
            if not offline:
                check_environment(config)
            print(config.summary(), file=stdout)
            return EXIT_OK
        if args.command == "match":
            return _match(config, args, stdout=stdout, stdin=stdin)
        if args.command == "cluster":
            return _cluster(config, args, stdout=stdout)
        if args.command == "backtest":
            return _backtest(config, args, stdout=stdout)
        if args.command == "feeds":
            return _feeds(config, args, stdout=stdout)
        if args.command == "status":
            report = read_status(config, now=utcnow())
            print(
                json.dumps(report.to_json(), ensure_ascii=False)
                if args.json
                else format_status(report),
                file=stdout,
            )
            return EXIT_OK if report.healthy else EXIT_FAILURE
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
    except OpmlError as exc:
        print(f"opml error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_FAILURE  # unreachable: argparse requires a known command


# --- match --------------------------------------------------------------------------------


def _match(config: Config, args: argparse.Namespace, *, stdout: TextIO, stdin: TextIO) -> int:
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    if not args.jsonl:
        if not args.text:
            print(
                "match: give a headline, or --jsonl to read JSON lines from stdin", file=sys.stderr
            )
            return EXIT_USAGE
        text = explain_headline(config, matcher, " ".join(args.text), args.summary, feed=args.feed)
        print(text, file=stdout)
        return EXIT_OK
    for line in stdin:
        print(
            json.dumps(match_json_line(matcher, line), ensure_ascii=False), file=stdout, flush=True
        )
    return EXIT_OK


def _backtest(config: Config, args: argparse.Namespace, *, stdout: TextIO) -> int:
    """Print what the config would change over the stored items of the window."""
    try:
        window = parse_duration(args.since)
    except ValueError as exc:
        print(f"backtest: --since: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    report = backtest(config, since=utcnow() - window, matcher=matcher)
    for label, changes in (
        ("WOULD NEWLY ALERT", report.newly),
        ("WOULD STOP ALERTING", report.stopped),
    ):
        if changes:
            print(f"--- {label} ({len(changes)}) ---", file=stdout)
        for change in changes:
            item = change.item
            only = " [learned only]" if change.learned_only else ""
            print(f"{item.seen_at:%Y-%m-%d %H:%M} [{item.feed}]{only} {item.title}", file=stdout)
            print("   " + matcher.explain(change.result).replace("\n", "\n   "), file=stdout)
    print(
        f"backtest: {report.items} items since {report.since:%Y-%m-%d %H:%M} UTC: "
        f"{len(report.newly)} would newly alert, {len(report.stopped)} would stop alerting, "
        f"{report.kept} alert either way; {report.learned_only} of the new by the learned opinion"
        " alone",
        file=stdout,
    )
    return EXIT_OK


def _cluster(config: Config, args: argparse.Namespace, *, stdout: TextIO) -> int:
    """Run the story clustering on the given headlines and explain every decision."""
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    for n, placed in enumerate(
        place_headlines(
            args.headlines,
            matcher=matcher,
            stories=config.stories,
            at=utcnow(),
            apart=timedelta(minutes=args.minutes_apart),
            watchlists=config.watchlists,
        ),
        start=1,
    ):
        verdict = "alerts" if placed.alerts else "would not alert (no rule holds)"
        print(f"{n}. {placed.title}\n   {verdict}; {placed.decision.explain()}", file=stdout)
    return EXIT_OK


# --- feeds import / export -----------------------------------------------------------------


def _feeds(config: Config, args: argparse.Namespace, *, stdout: TextIO) -> int:
    if args.action == "export":
        feeds = [OpmlFeed(name=f.name, url=f.url) for f in config.feeds]
        data = write_opml(feeds, now=utcnow())
        if args.file is None:
            stdout.write(data.decode("utf-8"))
        else:
            args.file.write_bytes(data)
            print(f"feeds export: {len(feeds)} feeds written to {args.file}", file=stdout)
        return EXIT_OK
    if args.file is None:
        print("feeds import: give the OPML file to import", file=sys.stderr)
        return EXIT_FAILURE
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"feeds import: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    found = read_opml(data)
    try:
        report = add_feeds(args.config, [(f.name, f.url) for f in found], write=not args.dry_run)
    except EditRefused as exc:
        print(f"feeds import: nothing written: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    verb = "would add" if args.dry_run else "added"
    for name in report.added:
        print(f"  + {name}", file=stdout)
    for name, url, why in report.skipped:
        print(f"  - {name or url}: {why}", file=stdout)
    present = sum(why == "already present" for _, _, why in report.skipped)
    print(
        f"feeds import: {len(found)} feeds in {args.file}: {verb} {len(report.added)}, "
        f"{present} already present, {len(report.skipped) - present} refused"
        + ("" if args.dry_run or not report.added else f"; {args.config} written"),
        file=stdout,
    )
    return EXIT_OK
