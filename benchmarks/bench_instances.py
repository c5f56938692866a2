"""Benchmark several ``run`` instances sharing one PostgreSQL database (issue #15, part 6).

3,000 feeds on a loopback server, polled by 1, 2 and 3 ``python bot.py run`` processes on one
throw-away PostgreSQL 15 server (``tests/pg_server.py``, ``fsync`` off); each configuration
gets a fresh database. Every feed serves a 20-item RSS document that never changes (no
validators, so each poll downloads it and chipwatch recognises the unchanged body); one feed
in 100 carries one item that alerts (to the console). The feed server runs in this process and
records the time of every request, which is how polls are counted.

Per configuration, measured in the same run so that the ratios against 1 instance hold on a
noisy machine:

- **cycle 1**: from launching the processes until every feed has been polled once (every item
  is new: 20 per feed go into the database), and until all those items are recorded (a poll
  waits for the placement lock before it writes);
- **cycle 2**: from the end of cycle 1 until every feed has been polled again;
- **steady state**: a window of ``--steady`` intervals starting one interval after cycle 1:
  polls a second, and the gap between two requests for one feed;
- **database load**: committed transactions (``pg_stat_database``), statements
  (``pg_stat_statements``, loaded by one restart of the throw-away server) and tuples written
  to chipwatch's tables (``pg_stat_user_tables``): cycle 1 in full, the steady window scaled
  to one poll of every feed;
- **duplicates**: a trigger on ``feeds.lease_owner`` records every lease taken; two leases of
  one feed decided less than an interval apart (less the scheduler's jitter, ``interval //
  10``) are a duplicate, and must not happen. Requests that come closer than that without
  such a lease are shown apart: a poll that waited for a fetch slot reaches the server late;
- **CPU**: of the instances, of the PostgreSQL server processes and of the feed server.

The interval is 10 s, the floor the config allows, with ``adaptive: false``: a steady cycle
cannot be shorter than the interval, so the floor asks the most of the instances (3,000 feeds
every 10 s is 300 polls a second) and shows whether a configuration keeps up; cycle 1, where
every feed is due at once, shows the throughput.

    python benchmarks/bench_instances.py [--feeds 3000] [--instances 1,2,3] [--steady 3]
        [--concurrency 16] [--runs 1] [--keep-logs DIR] [--quick]

About 4 minutes a run on a 2-core machine; ``--runs 3`` repeats the configurations in turn
and reports medians (each ratio the median of the ratios within a run).

``--quick`` is a smoke run: 300 feeds, 1 and 2 instances, a steady window of one interval.
The machine's cores are shared by the instances, PostgreSQL and the feed server.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_poll import FILLER  # noqa: E402  (the same ordinary news in both benchmarks)

from alerts.config import PollConfig  # noqa: E402
from alerts.coordinate import feed_lease  # noqa: E402
from alerts.loopback import FeedServer, Route  # noqa: E402

INTERVAL = 10  # seconds: the floor of poll.interval_seconds
JITTER = INTERVAL // 10  # FeedConfig.jitter_seconds: a feed may be polled this much early
TIMEOUT = 30  # poll.timeout_seconds: generous, the machine is loaded on purpose
ITEMS = 20
ALERT_EVERY = 100  # one feed in this many carries one alerting item
CLK_TCK = os.sysconf("SC_CLK_TCK")

WATCHLISTS = """watchlists:
  chips: [H20, H200]
  companies: [Nvidia]
  export_terms: [entity list, export controls, import approval]
"""


def feed_body(n: int, now: datetime) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>http://127.0.0.1/{n}</link><description>bench"
        "</description>"
    ]
    for i in range(ITEMS):
        title = FILLER[(n + i) % len(FILLER)].format(p=f"region {n}-{i}")
        if i == 0 and n % ALERT_EVERY == 0:  # distinct numbers: distinct stories
            title = f"US adds {n + 2} Nvidia H20 buyers to entity list"
        when = format_datetime(now - timedelta(minutes=10 + 37 * i + n % 30))
        parts.append(
            f"<item><title>{title}</title><link>https://news{n}.example/{i}</link>"
            f"<guid>f{n}-i{i}</guid><pubDate>{when}</pubDate>"
            f"<description>Item {i} of feed {n}: {title}.</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def config_text(database: str, urls: list[str], concurrency: int) -> str:
    # Every feed is on one loopback host: the per-host limit is raised to the global one, as
    # bench_poll.py does; against real servers it stays at 2.
    lines = [
        f"database: {database}",
        'ops:\n  listen: ""',
        "poll:",
        f"  interval_seconds: {INTERVAL}",
        "  adaptive: false",
        f"  timeout_seconds: {TIMEOUT}",
        "  max_age_hours: 24",
        f"  concurrency: {concurrency}",
        f"  per_host_concurrency: {concurrency}",
        "destinations:\n  console: {}",
        "feeds:",
    ]
    for n, url in enumerate(urls):
        lines += [f'  - name: "f{n}"', f'    url: "{url}"']
    return "\n".join(lines) + "\n" + WATCHLISTS


# --- what the processes cost ------------------------------------------------------------------


def _proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process (and of its reaped children), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def pg_cpu(data_dir: Path) -> float:
    """The PostgreSQL server's CPU seconds: the postmaster, its live children (backends,
    background workers), and the children that have exited (reaped into the postmaster)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(postmaster, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == postmaster:  # ppid
            total += _proc_cpu(int(stat.parent.name))
    return total


@dataclass
class Sample:
    at: float  # time.monotonic()
    xacts: int
    tuples: int
    statements: dict[str, int]  # calls by statement text (pg_stat_statements), if enabled
    pg_cpu: float
    instances_cpu: float
    server_cpu: float


CLAIMS_LOG = """
CREATE TABLE bench_claims (feed text, owner text, previous text, at timestamptz,
                           lease_until text);
CREATE FUNCTION bench_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.lease_owner IS NOT NULL AND NEW.lease_owner IS DISTINCT FROM OLD.lease_owner THEN
    INSERT INTO bench_claims VALUES (NEW.name, NEW.lease_owner, OLD.lease_owner,
                                     clock_timestamp(), NEW.lease_until);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER bench_claim AFTER UPDATE OF lease_owner ON feeds
  FOR EACH ROW EXECUTE FUNCTION bench_claim();
"""


def prepare(url: str) -> None:
    """Create the schema (as the first instance would) and a trigger that logs every lease
    taken: the leases' own record, independent of request times."""
    import psycopg

    from alerts.store import open_store

    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CLAIMS_LOG)


@dataclass
class Claim:
    feed: str
    owner: str
    previous: str | None  # the owner it was taken from: only when that lease had lapsed
    executed: float  # epoch seconds: when the server ran the claim
    decided: float  # epoch seconds: the claimant's "now" (lease_until less the lease length)


def claims(url: str, lease: float) -> list[Claim]:
    """Every lease taken, in the order the server ran the claims."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT feed, owner, previous, extract(epoch FROM at)::float8, lease_until "
            "FROM bench_claims ORDER BY at"
        ).fetchall()
    return [
        Claim(f, o, p, at, datetime.fromisoformat(until).timestamp() - lease)
        for f, o, p, at, until in rows
    ]


def enable_statements(pg) -> bool:
    """pg_stat_statements needs a restart to load; the throw-away server gets one (about 1 s).
    False (and no statement counts) if the extension is not installed."""
    try:
        pg.admin("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        pg._run("pg_ctl", "-D", str(pg.data), "-l", str(pg.dir / "server.log"), "-w", "restart")
        pg.admin("CREATE EXTENSION pg_stat_statements")
        return True
    except Exception as exc:  # noqa: BLE001 - the benchmark runs on without statement counts
        print(f"(no statement counts: {exc})", file=sys.stderr)
        return False


def _items(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


def sample(pg, url: str, database: str, pids: list[int], statements: bool) -> Sample:
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        xacts = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()[0]
        calls: dict[str, int] = {}
        if statements:
            for query, n in conn.execute(
                "SELECT query, sum(calls) FROM pg_stat_statements s JOIN pg_database d "
                "ON d.oid = s.dbid WHERE d.datname = %s GROUP BY query",
                [database],
            ):
                calls[query] = int(n)
    with psycopg.connect(url, autocommit=True) as conn:
        tuples = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM "
            "pg_stat_user_tables WHERE relname != 'bench_claims'"
        ).fetchone()[0]
    return Sample(
        at=time.monotonic(),
        xacts=xacts,
        tuples=int(tuples),
        statements=calls,
        pg_cpu=pg_cpu(pg.data),
        instances_cpu=sum(_proc_cpu(p) for p in pids),
        server_cpu=time.process_time(),
    )


# --- one configuration ------------------------------------------------------------------------


class Instance:
    """``python bot.py run`` as its own process, logging to a file."""

    def __init__(self, config: Path, log: Path):
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bot.py"), "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def stop_all(instances: list[Instance], grace: float = 30.0) -> None:
    """SIGTERM to every instance, then SIGKILL to any still running after ``grace``."""
    for i in instances:
        if i.proc.poll() is None:
            i.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for i in instances:
        try:
            i.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            i.proc.kill()
            i.proc.wait(10)


@dataclass
class Result:
    instances: int
    startup: float = 0.0  # until every instance logged bot_running
    cycle1: float = 0.0  # every feed requested once
    recorded1: float = 0.0  # every item of cycle 1 in the database
    cycle2: float = 0.0
    steady_window: float = 0.0
    steady_polls: int = 0
    gap_median: float = 0.0
    gap_max: float = 0.0
    polls_total: int = 0
    claims_total: int = 0
    duplicates: int = 0  # leases taken less than an interval (less jitter) apart
    duplicate_feeds: int = 0
    takeovers: int = 0  # a lease taken from another owner (it lapsed)
    close_claims: int = 0  # claims the server ran less than an interval apart
    duplicate_examples: list[str] = field(default_factory=list)
    close_requests: int = 0  # requests less than an interval apart (queueing, not leases)
    close_request_feeds: int = 0
    close_request_min: float = 0.0
    errors: int = 0
    start: Sample | None = None
    end1: Sample | None = None  # cycle 1 done
    steady0: Sample | None = None  # one interval later: the steady window starts
    end2: Sample | None = None
    per_instance: list[int] = field(default_factory=list)
    lease_lost: int = 0
    ticks_skipped: int = 0  # APScheduler: a tick while the feed's previous poll still ran
    ticks_missed: int = 0  # APScheduler: a tick that fired too late
    alerts_sent: int = 0
    warnings: dict[str, int] = field(default_factory=dict)


def run_config(
    server: FeedServer,
    pg,
    key: int,
    n_instances: int,
    *,
    feeds: int,
    bodies: list[bytes],
    steady: int,
    concurrency: int,
    workdir: Path,
    statements: bool,
) -> Result:
    hits: list[list[float]] = [[] for _ in range(feeds)]

    def recorder(n: int):
        times, body = hits[n], bodies[n]

        def answer() -> bytes:
            times.append(time.monotonic())
            return body

        return answer

    urls = [server.route(f"/c{key}/f{n}.xml", Route(body=recorder(n))) for n in range(feeds)]
    url = pg.new_database()
    database = url.rsplit("/", 1)[1]
    prepare(url)
    config = workdir / f"config{key}.yaml"
    config.write_text(config_text(url, urls, concurrency), encoding="utf-8")

    result = Result(instances=n_instances)
    instances: list[Instance] = []
    try:
        result.start = sample(pg, url, database, [], statements)
        t0 = time.monotonic()
        for i in range(n_instances):  # one by one: the finally stops those already started
            instances.append(Instance(config, workdir / f"c{key}-run{i}.log"))
        pids = [i.proc.pid for i in instances]

        def check(what: str, deadline: float) -> None:
            for i in instances:
                if i.proc.poll() is not None:
                    raise RuntimeError(
                        f"{i.log.name} exited ({i.proc.returncode}) during {what}:\n"
                        + "\n".join(i.text().splitlines()[-30:])
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out during {what}")

        deadline = t0 + 600
        ready = None
        while True:  # cycle 1: until every feed has been polled once
            time.sleep(0.1)
            check("cycle 1", deadline)
            if ready is None and all("bot_running" in i.text() for i in instances):
                ready = time.monotonic()
            if all(hits):
                break
        # Polled is not recorded: a poll waits for the placement lock before its items are
        # written, so cycle 1 ends when every item is in the database.
        while _items(url) < feeds * ITEMS:
            time.sleep(0.2)
            check("recording cycle 1", deadline)
        result.recorded1 = time.monotonic() - t0
        result.end1 = sample(pg, url, database, pids, statements)
        t1 = result.end1.at
        deadline = t1 + 600
        while time.monotonic() < t1 + INTERVAL:  # one interval to settle after the rush
            time.sleep(0.1)
            check("the interval after cycle 1", deadline)
        result.steady0 = sample(pg, url, database, pids, statements)
        w0 = result.steady0.at
        w1 = w0 + steady * INTERVAL
        while True:  # the steady window: every feed polled again, and `steady` intervals
            time.sleep(0.1)
            check("the steady window", deadline)
            now = time.monotonic()
            if now >= w1 and all(ts[-1] >= t1 for ts in hits):
                break
        result.end2 = sample(pg, url, database, pids, statements)
    finally:
        stop_all(instances)

    w1 = result.end2.at
    first = [ts[0] for ts in hits]
    result.startup = (ready or t0) - t0
    result.cycle1 = max(first) - t0
    result.cycle2 = max(next(t for t in ts if t >= t1) for ts in hits) - t1
    result.steady_window = w1 - w0
    result.steady_polls = sum(1 for ts in hits for t in ts if w0 <= t < w1)
    # A steady poll's distance from the one before it (which may be cycle 1's).
    gaps = [b - a for ts in hits for a, b in zip(ts, ts[1:], strict=False) if w0 <= b < w1]
    result.gap_median = statistics.median(gaps) if gaps else 0.0
    result.gap_max = max(gaps) if gaps else 0.0
    result.polls_total = sum(len(ts) for ts in hits)
    close = [
        [b - a for a, b in zip(ts, ts[1:], strict=False) if b - a < INTERVAL - JITTER]
        for ts in hits
    ]
    result.close_requests = sum(len(c) for c in close)
    result.close_request_feeds = sum(1 for c in close if c)
    result.close_request_min = min((min(c) for c in close if c), default=0.0)
    # The lease check: when each feed's leases were taken, by whom, from whom. A claim is
    # decided at the claimant's "now" (the scheduler's tick), which is what the due check and
    # the next poll time count from; the server runs it a little later (later still when the
    # statement waits for a row lock or a CPU).
    lease = feed_lease(PollConfig(timeout_seconds=TIMEOUT, concurrency=concurrency), 1)
    taken: dict[str, list[Claim]] = {}
    for c in claims(url, lease.total_seconds()):
        taken.setdefault(c.feed, []).append(c)
        result.takeovers += c.previous is not None
    result.claims_total = sum(len(cs) for cs in taken.values())
    for cs in taken.values():
        pairs = list(zip(cs, cs[1:], strict=False))
        decided = [(a, b) for a, b in pairs if b.decided - a.decided < INTERVAL - JITTER]
        executed = [(a, b) for a, b in pairs if b.executed - a.executed < INTERVAL - JITTER]
        result.duplicates += len(decided)
        result.duplicate_feeds += bool(decided)
        result.close_claims += len(executed)
        result.duplicate_examples += [
            f"{a.feed}: {a.owner.rsplit(':', 2)[1]} then {b.owner.rsplit(':', 2)[1]}, decided "
            f"{b.decided - a.decided:.2f} s apart, run {b.executed - a.executed:.2f} s apart"
            for a, b in (decided or executed)[:1]
        ]
    for i in instances:
        text = i.text().split("shutdown_requested", 1)[0]  # what happened while measured
        result.per_instance.append(text.count("feed_polled"))
        result.errors += text.count("feed_polled status=error")
        result.lease_lost += text.count("feed_lease_lost")
        result.ticks_skipped += text.count("maximum number of running instances reached")
        result.ticks_missed += text.count("was missed by")
        result.alerts_sent += text.count("🔔 ")
        for line in text.splitlines():
            parts = line.split(" ", 4)
            if len(parts) >= 4 and parts[1] in ("WARNING", "ERROR", "CRITICAL"):
                if "maximum number of running instances" in line:
                    continue  # counted as ticks_skipped
                name = f"{parts[1]} {parts[2]} {parts[3]}"[:90]
                result.warnings[name] = result.warnings.get(name, 0) + 1
    for path in urls:
        server.routes.pop(path.split(str(server.port), 1)[1], None)
    return result


# --- the report -------------------------------------------------------------------------------


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base else "–"


def _delta(a: Sample, b: Sample) -> dict[str, int]:
    return {q: n - a.statements.get(q, 0) for q, n in b.statements.items()}


def _top(calls: dict[str, int], scale: float, k: int) -> str:
    shown = {q: n for q, n in calls.items() if q.strip().upper() not in ("BEGIN", "COMMIT")}
    top = sorted(shown.items(), key=lambda kv: -kv[1])[:k]
    return "; ".join(f"{n * scale:,.0f} × {' '.join(q.split())[:60]}" for q, n in top if n)


def figures(r: Result, feeds: int) -> dict[str, float]:
    """One configuration's figures; the steady ones scaled to one poll of every feed."""
    a, b = r.steady0, r.end2
    scale = feeds / max(1, r.steady_polls)
    inst = (b.instances_cpu - a.instances_cpu) * scale
    pg = (b.pg_cpu - a.pg_cpu) * scale
    srv = (b.server_cpu - a.server_cpu) * scale
    xacts = (b.xacts - a.xacts) * scale
    return {
        "startup": r.startup,
        "cycle1": r.cycle1,
        "recorded1": r.recorded1,
        "cycle2": r.cycle2,
        "rate": r.steady_polls / r.steady_window,
        "gap_med": r.gap_median,
        "gap_max": r.gap_max,
        "xacts_c1": r.end1.xacts - r.start.xacts,
        "stmts_c1": sum(_delta(r.start, r.end1).values()),
        "xacts": xacts,
        "per_poll": xacts / feeds,
        "stmts": sum(_delta(a, b).values()) * scale,
        "tuples": (b.tuples - a.tuples) * scale,
        "inst": inst,
        "pg": pg,
        "srv": srv,
        "cpu": inst + pg + srv,
    }


def report(runs: list[list[Result]], *, feeds: int, concurrency: int, steady: int) -> None:
    """``runs``: one list of results per run, configurations in the same order. Each figure
    is the median over the runs; each ratio is the median of the ratios within a run."""
    n = len(runs)
    table = [[figures(r, feeds) for r in run] for run in runs]
    configs = [r.instances for r in runs[0]]

    def med(k: int, key: str) -> float:
        return statistics.median(t[k][key] for t in table)

    def rat(k: int, key: str) -> str:
        values = [t[k][key] / t[0][key] for t in table if t[0][key]]
        return f"{statistics.median(values):.2f}×" if values else "–"

    def spread(k: int, key: str) -> str:
        values = [t[k][key] for t in table]
        return f"{min(values):.1f}–{max(values):.1f}" if n > 1 else ""

    base = configs[0]
    print(
        f"{feeds:,} loopback feeds × {ITEMS} items (bodies never change; {feeds // ALERT_EVERY} "
        f"alerting items), interval {INTERVAL} s (adaptive off), concurrency {concurrency} per "
        f"instance; PostgreSQL 15 on loopback (fsync off), a fresh database per row; "
        f"{os.cpu_count()} cores shared by the instances, PostgreSQL and the feed server. "
        f"{n} run{'s' if n > 1 else ''}: "
        f"{'medians; ' if n > 1 else ''}ratios against {base} instance{'s' if base > 1 else ''}"
        f" in the same run{' (median of the runs)' if n > 1 else ''}.\n"
    )
    print("Cycle time (s)")
    print(
        f"{'instances':>9} {'startup':>8} {'cycle 1':>8} {'range':>10} {'ratio':>6} "
        f"{'feeds/s':>8} {'recorded':>9} {'ratio':>6} {'cycle 2':>8} {'ratio':>6} {'steady polls/s':>15} {'ratio':>6} "
        f"{'gap med':>8} {'gap max':>8}"
    )
    for k, count in enumerate(configs):
        print(
            f"{count:>9} {med(k, 'startup'):8.1f} {med(k, 'cycle1'):8.1f} "
            f"{spread(k, 'cycle1'):>10} {rat(k, 'cycle1'):>6} {feeds / med(k, 'cycle1'):8.0f} "
            f"{med(k, 'recorded1'):9.1f} {rat(k, 'recorded1'):>6} "
            f"{med(k, 'cycle2'):8.1f} {rat(k, 'cycle2'):>6} {med(k, 'rate'):15.0f} "
            f"{rat(k, 'rate'):>6} {med(k, 'gap_med'):8.1f} {med(k, 'gap_max'):8.1f}"
        )
    print(
        f"(needed to keep up: {feeds / INTERVAL:.0f} polls/s. cycle 1: from launching the "
        "processes, startup included, until every feed was polled once; recorded: until every "
        "item of cycle 1 was in the database; cycle 2: from the end of cycle 1 "
        "until every feed was polled again; steady: a window of "
        f"{steady} intervals starting one interval after cycle 1; gap: between two requests "
        "for one feed in it)"
    )
    print()
    print(
        "Database load (pg_stat_database, pg_stat_statements, pg_stat_user_tables) and CPU "
        f"seconds; cycle 1 in full, steady scaled to {feeds:,} polls (one cycle)"
    )
    print(
        f"{'instances':>9} {'xacts c1':>9} {'stmts c1':>9} {'xacts/cycle':>12} {'ratio':>6} "
        f"{'per poll':>9} {'stmts/cycle':>12} {'tuples/cycle':>13} {'CPU: inst':>10} {'PG':>6} "
        f"{'server':>7} {'ratio':>6} {'dups':>5}"
    )
    for k, count in enumerate(configs):
        dups = sum(run[k].duplicates for run in runs)
        print(
            f"{count:>9} {med(k, 'xacts_c1'):>9,.0f} {med(k, 'stmts_c1'):>9,.0f} "
            f"{med(k, 'xacts'):>12,.0f} {rat(k, 'xacts'):>6} {med(k, 'per_poll'):>9.2f} "
            f"{med(k, 'stmts'):>12,.0f} {med(k, 'tuples'):>13,.0f} {med(k, 'inst'):>10.1f} "
            f"{med(k, 'pg'):>6.1f} {med(k, 'srv'):>7.1f} {rat(k, 'cpu'):>6} {dups:>5}"
        )
    print(
        f"(dups: leases of one feed taken less than {INTERVAL - JITTER} s apart, by the "
        "claimants' clocks, recorded by a trigger on feeds.lease_owner, over all runs: must be "
        "0. CPU ratio: instances + PostgreSQL + feed server)"
    )
    for i, run in enumerate(runs):
        print(f"\nRun {i + 1}:" if n > 1 else "")
        for r in run:
            details(r, feeds)
    bad = sum(r.duplicates for run in runs for r in run)
    print(f"\n{'PASS' if not bad else 'FAIL'}  no feed's lease taken twice within an interval")


def details(r: Result, feeds: int) -> None:
    seconds = r.end1.pg_cpu - r.start.pg_cpu
    extras = [
        f"cycle 1 {r.cycle1:.1f} s",
        f"{r.polls_total:,} requests, {r.claims_total:,} leases taken "
        f"({r.takeovers} from another owner)",
        f"polls by instance {'/'.join(map(str, r.per_instance))}",
        f"steady window {r.steady_window:.1f} s with {r.steady_polls:,} polls",
        f"cycle 1 CPU: instances {r.end1.instances_cpu:.1f} s, PostgreSQL {seconds:.1f} s",
        f"poll errors {r.errors}",
        f"leases lost mid-poll {r.lease_lost}",
        f"ticks skipped (the feed's poll still running) {r.ticks_skipped:,}",
        f"alerts printed {r.alerts_sent}",
    ]
    close = INTERVAL - JITTER
    shown_when_they_happen = [
        (r.ticks_missed, f"ticks that fired late (event loop busy) {r.ticks_missed}"),
        (
            r.close_requests,
            f"requests less than {close} s after the previous one for that feed: "
            f"{r.close_requests:,} on {r.close_request_feeds:,} feeds "
            f"(closest {r.close_request_min:.1f} s)",
        ),
        (r.duplicates, f"DUPLICATE LEASES {r.duplicates} on {r.duplicate_feeds} feeds"),
        (
            r.close_claims,
            f"claims run by the server less than {close} s apart (decided further apart): "
            f"{r.close_claims}",
        ),
    ]
    extras += [text for count, text in shown_when_they_happen if count]
    print(f"{r.instances} instance(s): " + "; ".join(extras))
    others = {k: v for k, v in r.warnings.items() if "maximum number of running" not in k}
    if others:
        print("   warnings/errors logged: " + ", ".join(f"{k} ×{v}" for k, v in others.items()))
    for example in r.duplicate_examples[:3]:
        print(f"   e.g. {example}")
    if r.end1.statements:
        print("   top statements, cycle 1: " + _top(_delta(r.start, r.end1), 1, 4))
        scale = feeds / max(1, r.steady_polls)
        print("   top statements, steady cycle: " + _top(_delta(r.steady0, r.end2), scale, 4))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=3000)
    ap.add_argument(
        "--instances", default="1,2,3", help="comma-separated; the first is the baseline"
    )
    ap.add_argument("--steady", type=int, default=3, help="intervals in the steady window")
    ap.add_argument("--concurrency", type=int, default=16, help="poll.concurrency per instance")
    ap.add_argument("--runs", type=int, default=1, help="repeat every configuration; medians")
    ap.add_argument("--quick", action="store_true", help="300 feeds, 1 and 2 instances, 1 interval")
    ap.add_argument("--keep-logs", type=Path, help="copy the instances' logs into this directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.feeds, args.instances, args.steady = 300, "1,2", 1
    counts = [int(n) for n in args.instances.split(",")]

    # SIGTERM (as from `timeout`) unwinds like Ctrl-C: the finally blocks stop the instances
    # and the PostgreSQL server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from tests.pg_server import PgServer

    now = datetime.now(timezone.utc)
    bodies = [feed_body(n, now) for n in range(args.feeds)]
    runs: list[list[Result]] = []
    with tempfile.TemporaryDirectory(prefix="bench-instances-") as tmp, FeedServer() as server:
        with PgServer() as pg:
            statements = enable_statements(pg)
            key = 0
            for run in range(args.runs):
                runs.append([])
                for n in counts:  # in turn within a run: every configuration sees the noise
                    print(f"… run {run + 1}: {n} instance(s)", file=sys.stderr, flush=True)
                    runs[-1].append(
                        run_config(
                            server,
                            pg,
                            key,
                            n,
                            feeds=args.feeds,
                            bodies=bodies,
                            steady=args.steady,
                            concurrency=args.concurrency,
                            workdir=Path(tmp),
                            statements=statements,
                        )
                    )
                    key += 1
        if args.keep_logs:
            import shutil

            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    report(runs, feeds=args.feeds, concurrency=args.concurrency, steady=args.steady)
    return 1 if any(r.duplicates for run in runs for r in run) else 0


if __name__ == "__main__":
    sys.exit(main())
