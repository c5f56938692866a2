"""The services behind the command line: one poll cycle (`once`), the long-running bot (`run`)
and retention. ``cli`` only parses arguments and calls these."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .bot.handlers import Services
from .bot.telegram import RETRY_FIRST_SECONDS, TelegramCommands
from .config import Config, is_postgres_url, unused_secrets
from .coordinate import HEARTBEAT_SECONDS, LEADER_CHECK_SECONDS, Coordinator
from .deliver import Deliverer
from .deliver.console import format_text
from .deliver.sinks import build_sinks
from .digest import DIGEST_CHECK_SECONDS, queue_due, trigger
from .fetch import Fetcher
from .lock import DatabaseLock
from .logs import event, json_logging
from .match import compile_matcher
from .ops import HealthCheck, start_ops
from .pipeline import CycleReport, FeedOutcome, PollContext, run_cycle
from .runtime import Runtime
from .scheduler import (
    DELIVER_EVERY_SECONDS,
    FIRST_RUN_SPREAD_SECONDS,
    STOP_GRACE_SECONDS,
    Scheduler,
)
from .store import Store, copy_database, open_store
from .stories import Clusterer
from .types import utcnow
from .websub import Subscriber, SubscriptionCollector, callback_routes, start_callback

log = logging.getLogger("chipwatch")

EXIT_OK = 0


PRUNE_EVERY_SECONDS = 6 * 3600
RELOAD_CHECK_SECONDS = 2.0
WEBSUB_EVERY_SECONDS = 10.0  # subscribe to hubs polls found, renew leases, retry


def prune(store: Store, config: Config) -> None:
    """Retention: forget what is older than ``stories.retention_days``."""
    removed = store.prune(older_than=timedelta(days=config.stories.retention_days), now=utcnow())
    if any(removed.values()):
        event(log, "pruned", **removed)


def warn_unused_secrets(config: Config) -> None:
    """A secret set for a destination the config lacks: say so at start (``check-config``
    refuses it), since the alerts then go elsewhere without a word."""
    for problem in unused_secrets(config):
        event(log, "secret_unused", logging.WARNING, problem=str(problem))


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
    if report.elsewhere:
        parts.append(f"elsewhere={report.elsewhere}")  # polled by another instance
    parts += [f"new_items={report.new_items}", f"alerts={report.alerts}"]
    parts.append(
        "dry_run=yes (nothing recorded or sent)" if dry_run else f"sent={sent} pending={pending}"
    )
    line = "summary: " + " ".join(parts)
    if failed:
        line += " | failed: " + "; ".join(f"{o.feed} ({o.error}{_failing_note(o)})" for o in failed)
    if report.disabled:
        line += " | disabled: " + "; ".join(f"{o.feed} ({o.error})" for o in report.disabled)
    return line


def _failing_note(o: FeedOutcome) -> str:
    if o.flagged and o.failing_since:
        return ", FAILING SINCE " + o.failing_since.strftime("%Y-%m-%d %H:%M")
    return ""


@contextlib.contextmanager
def progress(feeds: int) -> Iterator[Callable[[], object]]:
    """``once``'s progress line (``polling feeds: 3/10``) on a terminal, so a slow feed is not
    silence; yields what to call as each feed is done. Only when stdout and stderr are both a
    terminal and the log is text: a pipe, a file and a JSON log never see it."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()) or json_logging() or feeds < 1:
        yield lambda: None
        return
    bar = tqdm(total=feeds, desc="polling feeds", unit="feed", leave=False, file=sys.stderr)
    try:
        with logging_redirect_tqdm():  # log lines print above the bar, not through it
            yield bar.update
    finally:
        bar.close()


async def run_once(
    config: Config,
    *,
    dry_run: bool = False,
    stdout: TextIO,
    sinks: Sequence | None = None,
    drain_wait: float = 120.0,
) -> int:
    """One cycle of every feed, then deliver everything pending; prints a summary line. A dry
    run works on a throw-away copy of the database, so it creates and changes nothing."""
    warn_unused_secrets(config)
    if dry_run and not is_postgres_url(config.database):
        with tempfile.TemporaryDirectory(prefix="chipwatch-dry-run-") as scratch:
            copy = Path(scratch) / "dry-run.db"
            copy_database(Path(config.database), copy)
            return await _run_once(
                replace(config, database=copy),
                dry_run=True,
                stdout=stdout,
                sinks=sinks,
                drain_wait=drain_wait,
            )
    lock = DatabaseLock(config.database, command="once")
    lock.acquire()  # before anything else: a refusal must not leave half-built sinks behind
    try:
        return await _run_once(
            config, dry_run=dry_run, stdout=stdout, sinks=sinks, drain_wait=drain_wait
        )
    finally:
        lock.release()


async def _run_once(
    config: Config, *, dry_run: bool, stdout: TextIO, sinks: Sequence | None, drain_wait: float
) -> int:
    sinks = list(sinks) if sinks is not None else build_sinks(config)
    store = open_store(config.database)
    coordinator = Coordinator.for_store(store, command="once")
    # One cycle: every story update is in before delivery, so edits need not wait.
    config = replace(config, stories=replace(config.stories, edit_delay_seconds=0))
    try:
        matcher = compile_matcher(config.watchlists, config.rules, config.learned)
        now = utcnow()
        clusterer = Clusterer(store, config.stories, now=now, watchlists=config.watchlists)
        with progress(len(config.feeds)) as done:
            async with Fetcher(config.poll) as fetcher:
                report = await run_cycle(
                    config.feeds,
                    PollContext(
                        config=config,
                        store=store,
                        matcher=matcher,
                        fetcher=fetcher,
                        now=now,
                        clusterer=clusterer,
                        dry_run=dry_run,
                        coordinator=coordinator,
                        on_feed_done=done,
                    ),
                )
        sent = 0
        if not dry_run:  # a digest that fell due goes out with this run, once
            queue_due(config, store, now=utcnow())
        deliverer = Deliverer(
            store, sinks, may_send=coordinator.may_send if coordinator is not None else None
        )
        _on_termination(deliverer.stop.set)
        if dry_run:
            previews = [a for o in report.outcomes for a in o.previews]
            waiting = [
                a for name in config.destinations.names() for a in store.pending(name, now=utcnow())
            ]
            for alert in [*waiting, *previews]:
                print(format_text(alert) + "\n", file=stdout)
        else:
            delivery = await deliverer.drain(max_wait=drain_wait)
            sent = delivery.sent
            for name in delivery.paused:
                print(
                    f"destination {name} is unavailable: its alerts stay pending (see log)",
                    file=stdout,
                )
            for name in sorted(deliverer.elsewhere):
                print(
                    f"destination {name} is served by another instance: it sends these alerts",
                    file=stdout,
                )
        if not dry_run:
            prune(store, config)
        print(
            summary_line(report, sent=sent, pending=store.count_pending(), dry_run=dry_run),
            file=stdout,
        )
        return EXIT_OK
    finally:
        for sink in sinks:
            await sink.aclose()
        if coordinator is not None:
            coordinator.close()
        store.close()


# --- run ----------------------------------------------------------------------------------


async def _deliver_on_push(runtime: Runtime) -> None:
    """A push that queued alerts delivers them at once, not at the next delivery tick."""
    while True:
        await runtime.deliver_soon.wait()
        runtime.deliver_soon.clear()
        try:
            await runtime.deliver()
        except Exception:  # the delivery tick retries
            log.exception("deliver_on_push_failed")


async def run_forever(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    reload_every: float = RELOAD_CHECK_SECONDS,
    first_run_spread: float = FIRST_RUN_SPREAD_SECONDS,
    deliver_every: float = DELIVER_EVERY_SECONDS,
    commands_retry: float = RETRY_FIRST_SECONDS,
    stop_grace: float = STOP_GRACE_SECONDS,
    websub_every: float = WEBSUB_EVERY_SECONDS,
) -> int:
    """Poll on schedule, deliver, answer bot commands and follow config edits, until
    SIGINT/SIGTERM (or ``stop`` is set): then polls in flight are cancelled and a delivery in
    flight gets ``stop_grace`` seconds. The timings are the scheduler's, the command
    poller's first retry and the WebSub subscriber's round (tests shorten them)."""
    stop = stop or asyncio.Event()
    warn_unused_secrets(config)
    with DatabaseLock(config.database, command="run"):
        return await _run_forever(
            config,
            stop=stop,
            reload_every=reload_every,
            first_run_spread=first_run_spread,
            deliver_every=deliver_every,
            commands_retry=commands_retry,
            stop_grace=stop_grace,
            websub_every=websub_every,
        )


async def _run_forever(
    config: Config,
    *,
    stop: asyncio.Event,
    reload_every: float,
    first_run_spread: float,
    deliver_every: float,
    commands_retry: float,
    stop_grace: float,
    websub_every: float,
) -> int:
    _on_termination(stop.set)
    store: Store = open_store(config.database)
    coordinator = Coordinator.for_store(store, command="run")
    try:
        runtime = Runtime(config, store, coordinator=coordinator)
    except BaseException:
        if coordinator is not None:
            coordinator.close()
        store.close()
        raise
    scheduler = Scheduler(
        poll=runtime.poll,
        deliver=runtime.deliver,
        first_run_spread=first_run_spread,
        deliver_every=deliver_every,
    )
    check = HealthCheck(runtime, scheduler)
    commands: TelegramCommands | None = None
    starting: asyncio.Task | None = None

    async def lead() -> None:
        """Answer commands when this instance leads (always, with one instance); until
        Telegram is reached, the poller retries in the background."""
        nonlocal commands, starting
        if commands is not None or runtime.telegram is None:
            return
        if coordinator is not None and not coordinator.lead():
            runtime.commands = "elsewhere"
            return
        commands = TelegramCommands(
            Services(runtime=runtime, health=check),
            client=runtime.telegram,
            retry_first=commands_retry,
        )
        starting = asyncio.create_task(commands.run(stop), name="commands")

    async def heartbeat() -> None:
        assert coordinator is not None
        coordinator.heartbeat(runtime.config, now=utcnow())

    async def maintain() -> None:
        prune(store, runtime.config)

    async def digests() -> None:
        queue_due(runtime.config, store, now=utcnow())

    def schedule_digests() -> None:
        scheduler.set_digests(
            {d.name: trigger(d.digest) for d in runtime.config.destinations.digests if d.digest},
            digests,
        )

    async def watch_config() -> None:
        reload = await runtime.reload_if_changed()
        if reload.status == "applied":
            scheduler.set_feeds(runtime.config.feeds)
            schedule_digests()
        elif reload.status == "invalid" and not reload.repeated and runtime.commands == "up":
            # From the instance that answers commands only: one notice, not one per instance.
            await runtime.notify_admins(
                f"⚠️ config not applied: {reload.error}\n"
                f"chipwatch keeps running on the last good config."
            )

    await lead()
    scheduler.start(config.feeds)
    scheduler.every(PRUNE_EVERY_SECONDS, maintain, name="prune")
    scheduler.every(reload_every, watch_config, name="config-watch")
    # A digest that fell due while the bot was down goes out now, once; then each at its time
    # (its cron job), and subscribers' digests (their own times) within a minute of theirs.
    try:
        await digests()
    except Exception:  # the check every minute tries again; polling must start regardless
        log.exception("digest_check_failed")
    schedule_digests()
    scheduler.every(DIGEST_CHECK_SECONDS, digests, name="digests")
    if coordinator is not None:
        await heartbeat()
        scheduler.every(HEARTBEAT_SECONDS, heartbeat, name="heartbeat")
        # Telegram allows one getUpdates poller per token: the others wait for the lead.
        scheduler.every(LEADER_CHECK_SECONDS, lead, name="leader")
    websub = config.websub
    callback = callback_routes(runtime, websub) if websub is not None else None
    shared = websub is not None and websub.address == config.ops.address
    ops = await start_ops(runtime, check, also=callback if shared else None)
    hub_calls = await start_callback(runtime, callback) if callback and not shared else None
    pushes: asyncio.Task | None = None
    if websub is not None:
        runtime.metrics.add_collector(SubscriptionCollector(store))
        scheduler.every(websub_every, Subscriber(runtime, websub).maintain, name="websub")
        pushes = asyncio.create_task(_deliver_on_push(runtime), name="deliver-on-push")
    callback_at = hub_calls.address if hub_calls else ops.address if shared and ops else "off"
    event(
        log,
        "bot_running",
        feeds=len(config.feeds),
        destinations=",".join(config.destinations.names()),
        database=config.database,
        commands=runtime.commands,
        ops=ops.address if ops else "off",
        websub=callback_at if websub else None,
        instance=coordinator.id if coordinator else None,
    )
    try:
        await stop.wait()
        event(log, "shutdown_requested")
        for server in (ops, hub_calls):
            if server is not None:
                await server.aclose()
        ops = hub_calls = None
        runtime.deliverer.stop.set()
        await scheduler.stop(grace_seconds=stop_grace)
    finally:
        for server in (ops, hub_calls):
            if server is not None:
                await server.aclose()
        if pushes is not None:
            pushes.cancel()
            await asyncio.gather(pushes, return_exceptions=True)
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        if commands is not None:
            await commands.stop()
        await runtime.aclose()
        if coordinator is not None:
            coordinator.close()  # hands feeds, destinations and the lead over at once
        store.close()
    event(log, "bot_stopped")
    return EXIT_OK
