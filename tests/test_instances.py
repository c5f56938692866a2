"""Several instances on one PostgreSQL database: each feed polled by one instance per
interval, story placement as one instance would decide it, one sender per destination, one
instance answering commands, and failover when an instance is killed."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from ruamel.yaml import YAML

from alerts.config import load_config
from alerts.coordinate import Coordinator, feed_lease
from alerts.loopback import Route
from alerts.status import read_status
from alerts.store import open_store
from alerts.stories import Clusterer
from alerts.types import utcnow
from tests.pg_server import SECRET_PASSWORD, SECRET_USER
from tests.support import (
    CHANNEL,
    ROOT,
    RunningBot,
    ago,
    poll_cycle,
    rss,
    run_bot,
    write_config,
)

WATCH = """watchlists:
  chips: [H20, H200]
  companies: [Nvidia]
  export_terms: [entity list, export controls, import approval]
"""


def _item(n: int, title: str, *, minutes: int = 5, host: str = "w.example") -> dict:
    return {
        "title": title,
        "guid": f"g{n}",
        "link": f"https://{host}/{n}",
        "date": ago(minutes=minutes),
    }


# --- in one process, two instances' worth of state on one database ---------------------------


def test_a_due_feed_is_claimed_by_exactly_one_instance(pg_database, tmp_path, serve):
    config = load_config(write_config(tmp_path, [("Wire", serve(rss([])))], database=pg_database))
    feed = config.feeds[0]
    stores = [open_store(pg_database) for _ in range(6)]
    try:
        coordinators = [Coordinator(s, command="run") for s in stores]
        now = utcnow()
        until = now + timedelta(seconds=60)
        barrier = threading.Barrier(len(coordinators))
        won: list[bool] = [False] * len(coordinators)

        def claim(i: int) -> None:
            barrier.wait()
            won[i] = coordinators[i].claim_feed(feed, now=now, until=until, due_by=now)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(coordinators))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(won) == 1
        winner = won.index(True)
        other = coordinators[(winner + 1) % len(coordinators)]
        assert not other.claim_feed(feed, now=now, until=until, due_by=None)
        # A lease that lapsed (its holder died mid-poll) is taken by the next claimant.
        later = until + timedelta(seconds=1)
        assert other.claim_feed(feed, now=later, until=later + timedelta(seconds=60), due_by=None)
        assert not coordinators[winner].still_holds(feed)
        # Released, then polled: not due again before its next poll time.
        other.release_feed(feed)
        stores[0].update_feed(feed.name, feed.url, next_poll_at=now + timedelta(seconds=300))
        assert not other.claim_feed(feed, now=now, until=until, due_by=now)
        assert other.claim_feed(feed, now=now, until=until, due_by=now + timedelta(seconds=301))
    finally:
        for s in stores:
            s.close()


async def test_a_poll_that_lost_its_lease_records_nothing(pg_database, tmp_path, serve, caplog):
    """Instance A's fetch outlives its lease and B takes the feed meanwhile: A's poll must not
    record the items (B will), or both would alert."""
    thief = open_store(pg_database)
    b = Coordinator(thief, command="run")
    body = rss([_item(1, "US adds 3 Nvidia H20 buyers to entity list")]).encode()

    def slow_body() -> bytes:
        # During A's fetch: A's lease has lapsed and B claims the feed.
        future = utcnow() + timedelta(hours=1)
        feed = config.feeds[0]
        assert b.claim_feed(feed, now=future, until=future + timedelta(minutes=5), due_by=None)
        return body

    url = serve(Route(body=slow_body))
    config = load_config(
        write_config(tmp_path, [("Wire", url)], watchlists=WATCH, database=pg_database)
    )
    store = open_store(pg_database)
    try:
        a = Coordinator(store, command="run")
        with caplog.at_level(logging.WARNING, logger="chipwatch.pipeline"):
            report = await poll_cycle(config, store, coordinator=a)
        assert [o.status for o in report.outcomes] == ["skipped"]
        assert "feed_lease_lost feed=Wire" in caplog.text
        assert store.count_pending() == 0
        assert store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
        assert b.still_holds(config.feeds[0]), "A's release must not free B's lease"
    finally:
        store.close()
        thief.close()


async def test_story_placement_knows_what_the_other_instance_recorded(pg_database, tmp_path, serve):
    """Two outlets carry one story; each is polled by a different instance, whose clusterers
    were both built before either poll. One alert, and the second outlet joins its story."""
    # two outlets: the articles are on two sites (an outlet is named by its site)
    first = serve(
        rss([_item(1, "US tightens export controls on Nvidia H20 chips", host="one.example")])
    )
    second = serve(
        rss(
            [
                _item(
                    2,
                    "US tightens export controls on Nvidia's H20 chips, sources say",
                    host="two.example",
                )
            ]
        )
    )
    third = serve(rss([_item(3, "US adds 14 Chinese firms to entity list over Nvidia H20")]))
    base = load_config(
        write_config(
            tmp_path,
            [("One", first), ("Two", second), ("Three", third)],
            watchlists=WATCH,
            database=pg_database,
            extra="destinations:\n  console: {}\n",
        )
    )
    stores = [open_store(pg_database), open_store(pg_database)]
    try:
        coordinators = [Coordinator(s, command="run") for s in stores]
        clusterers = [
            Clusterer(s, base.stories, now=utcnow(), watchlists=base.watchlists) for s in stores
        ]
        for i, feed in enumerate(base.feeds):
            k = i % 2  # One and Three on instance 0, Two on instance 1
            await poll_cycle(
                replace(base, feeds=(feed,)),
                stores[k],
                clusterer=clusterers[k],
                coordinator=coordinators[k],
            )
        alerts = stores[0].recent_alerts()
        assert sorted(a.title for a in alerts) == [
            "US adds 14 Chinese firms to entity list over Nvidia H20",
            "US tightens export controls on Nvidia H20 chips",
        ]
        story = {a.title: a for a in alerts}["US tightens export controls on Nvidia H20 chips"]
        assert story.sources == ("one.example", "two.example")
        ids = [r[0] for r in stores[0].db.execute("SELECT id FROM stories ORDER BY id")]
        assert len(ids) == len(set(ids)) == 2
    finally:
        for s in stores:
            s.close()


def test_one_sender_per_destination_and_a_clean_stop_hands_over(pg_database):
    stores = [open_store(pg_database), open_store(pg_database)]
    try:
        a, b = (Coordinator(s, command="run") for s in stores)
        assert a.may_send("telegram") and a.may_send("telegram")
        assert not b.may_send("telegram")
        assert b.may_send("slack"), "destinations are claimed one by one"
        assert a.lead() and not b.lead()
        a.close()
        assert b.may_send("telegram") and b.lead()
    finally:
        for s in stores:
            s.close()


def test_instances_with_different_watchlists_warn(pg_database, tmp_path, caplog):
    one = load_config(write_config(tmp_path, [], watchlists=WATCH, database=pg_database))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    two = load_config(write_config(other_dir, [], database=pg_database))
    stores = [open_store(pg_database), open_store(pg_database)]
    try:
        a, b = (Coordinator(s, command="run") for s in stores)
        now = utcnow()
        assert a.heartbeat(one, now=now) == []
        with caplog.at_level(logging.WARNING, logger="chipwatch.coordinate"):
            others = b.heartbeat(one, now=now)
            assert [o["id"] for o in others] == [a.id]
            assert "config_mismatch" not in caplog.text
            b.heartbeat(two, now=now)
            b.heartbeat(two, now=now)
        assert caplog.text.count("config_mismatch") == 1, "once per pair of hashes"
        assert f"instance={a.id}" in caplog.text
        status = read_status(one, now=now)
        assert sorted(i["id"] for i in status.instances) == sorted([a.id, b.id])
        assert any("instances run different watchlists" in p for p in status.problems)
        b.heartbeat(one, now=now)
        assert read_status(one, now=now).healthy
    finally:
        for s in stores:
            s.close()


# --- whole processes ---------------------------------------------------------------------------


def _wait(predicate, what: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


# Every lease taken, as the database saw it (a poll is leased first; see Coordinator).
LEASE_LOG = """
CREATE TABLE test_leases (feed text, lease_until text);
CREATE FUNCTION test_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.lease_owner IS NOT NULL AND NEW.lease_until IS DISTINCT FROM OLD.lease_until THEN
    INSERT INTO test_leases VALUES (NEW.name, NEW.lease_until);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_lease AFTER UPDATE ON feeds FOR EACH ROW EXECUTE FUNCTION test_lease();
"""


def _leases(url: str, lease: timedelta) -> dict[str, list[datetime]]:
    """Per feed, the times its claimants decided to poll it (a lease runs from then)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT feed, lease_until FROM test_leases").fetchall()
    taken: dict[str, list[datetime]] = {}
    for feed, until in rows:
        taken.setdefault(feed, []).append(datetime.fromisoformat(until) - lease)
    return {feed: sorted(times) for feed, times in taken.items()}


@pytest.mark.system
@pytest.mark.alone  # 1,800 polls a minute keep two cores busy: other tests would slow them
def test_three_instances_poll_each_of_600_feeds_once_per_interval(
    pg_database, tmp_path, feed_server
):
    """Each feed is leased once per interval, by the claimants' own clocks (when the feeds'
    server sees the requests also depends on how busy the machine is): never twice within an
    interval, and never a whole interval without a lease (consecutive leases under two
    intervals apart) until it has had two; every request was leased."""
    interval, feeds = 10, 600
    hits: dict[str, list[float]] = {}
    body = rss([_item(0, "Weather report", minutes=60)]).encode()

    def recorder(name: str):
        times = hits.setdefault(name, [])

        def answer() -> bytes:
            times.append(time.monotonic())
            return body

        return answer

    urls = [
        (f"f{i}", feed_server.route(f"/many{i}-{id(hits)}.xml", Route(body=recorder(f"f{i}"))))
        for i in range(feeds)
    ]
    config = write_config(tmp_path, urls, database=pg_database)
    text = config.read_text().replace(
        "poll:\n", f"poll:\n  interval_seconds: {interval}\n  adaptive: false\n  concurrency: 64\n"
    )
    config.write_text(text)
    open_store(pg_database).close()  # the schema, as the first instance would make it
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(LEASE_LOG)
    instances = [RunningBot(config, tmp_path / f"run{i}.log", {}) for i in range(3)]
    try:
        _wait(lambda: all("bot_running" in i.text() for i in instances), "three instances")
        started = time.monotonic()
        _wait(lambda: all(hits.values()), "every feed's first poll", timeout=30)
        # An interval after the first polls, every feed has had two; the window closes as soon
        # as they have. Its deadline is generous (a loaded machine stretches every gap a
        # little); a skipped interval is caught by the gaps below, not by the deadline.
        deadline = time.monotonic() + 3 * interval + 4
        while time.monotonic() < deadline and not all(len(ts) >= 2 for ts in hits.values()):
            time.sleep(0.1)
        window_end, window_end_at = time.monotonic(), datetime.now(timezone.utc)
    finally:
        for i in instances:
            i.stop()
    loaded = load_config(config)
    # The window, not the shutdown after it: an instance stopped cancels its polls in flight
    # (they record nothing), so another may lease those feeds again at once.
    leases = {
        n: [t for t in ts if t <= window_end_at]
        for n, ts in _leases(pg_database, feed_lease(loaded.poll, 1)).items()
    }
    # A feed is due jitter_seconds before its next poll time, which is one interval after the
    # last poll was decided (and after its wait for a free slot, in whole seconds).
    jitter = loaded.feeds[0].jitter_seconds
    too_close = {
        n: [(b - a).total_seconds() for a, b in zip(ts, ts[1:], strict=False)]
        for n, ts in leases.items()
    }
    too_close = {n: gaps for n, gaps in too_close.items() if min(gaps) < interval - jitter}
    assert not too_close, f"leased twice within an interval: {dict(list(too_close.items())[:5])}"
    polls = {name: [t for t in times if t <= window_end] for name, times in hits.items()}
    unleased = {n: (len(ts), len(leases.get(n, []))) for n, ts in polls.items()}
    unleased = {n: counts for n, counts in unleased.items() if counts[0] > counts[1]}
    assert not unleased, f"(requests, leases) of feeds polled unleased: {unleased}"
    missed = {n: [round(t - window_end, 1) for t in ts] for n, ts in polls.items() if len(ts) < 2}
    assert not missed, f"fewer than two polls: {dict(list(missed.items())[:5])}"
    gaps = {
        n: [(b - a).total_seconds() for a, b in zip(ts, ts[1:], strict=False)][:1]
        for n, ts in leases.items()
    }
    skipped = {n: g for n, g in gaps.items() if max(g) >= 2 * interval}
    assert not skipped, f"an interval without a lease: {dict(list(skipped.items())[:5])}"
    assert all(ts[0] >= started - 10 for ts in polls.values())
    # The work was shared: every instance polled feeds.
    for i in instances:
        assert i.text().count("feed_polled") > feeds // 10, i.log.name


def _burst(n: int) -> list[dict]:
    # Distinct numbers keep the events apart: none joins another's story.
    return [
        _item(k, f"US adds {k + 2} Nvidia H20 buyers to entity list", minutes=40 - k)
        for k in range(n)
    ]


def _telegram_extra(telegram, admins: str = "") -> str:
    return (
        f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
        f"    api_base_url: {telegram.base_url}\n{admins}"
    )


@pytest.mark.system
def test_a_sender_killed_mid_burst_loses_nothing_and_repeats_one_message(
    pg_database, tmp_path, serve, telegram
):
    n = 30
    feed = serve(rss(_burst(n)))
    config = write_config(
        tmp_path,
        [("Wire", feed)],
        watchlists=WATCH,
        database=pg_database,
        extra=_telegram_extra(telegram),
    )
    held = telegram.hold_next("sendMessage")
    env = {"TELEGRAM_BOT_TOKEN": telegram.token}
    instances = [RunningBot(config, tmp_path / f"run{i}.log", env) for i in range(2)]
    outbox = open_store(pg_database)
    try:
        assert held.wait(60), "a first message in flight"
        sender = next(
            i for i in instances if "destination_claimed destination=telegram" in i.text()
        )
        sender.kill()  # mid-send: the message is in the channel, its answer never arrives
        telegram.release_held()
        survivor = next(i for i in instances if i is not sender)
        titles = [f"US adds {k + 2} Nvidia H20 buyers to entity list" for k in range(n)]

        def shown() -> list[str]:
            return [m["shown_text"] for m in list(telegram.sent)]

        _wait(lambda: all(any(t in m for m in shown()) for t in titles), "every alert shown")
        # Nothing more can be sent once nothing is pending (the one in flight when the sender
        # died stays pending until the survivor sends it again).
        _wait(lambda: outbox.count_pending() == 0, "an empty outbox")
        assert "destination_claimed destination=telegram" in survivor.text()
    finally:
        outbox.close()
        for i in instances:
            i.stop()
    messages = shown()
    first, rest = messages[0], messages[1:]
    seen: set[str] = set()
    repeated_messages = 0
    for text in [first, *rest]:
        inside = {t for t in titles if t in text}
        if inside & seen:
            repeated_messages += 1
            assert inside & seen <= {t for t in titles if t in first}, "only the one in flight"
        seen |= inside
    assert seen == set(titles), "nothing lost"
    assert repeated_messages <= 1


@pytest.mark.system
def test_the_command_leader_killed_another_instance_answers_within_30s(
    pg_database, tmp_path, telegram
):
    config = write_config(
        tmp_path, [], watchlists=WATCH, database=pg_database, extra=_telegram_extra(telegram)
    )
    env = {"TELEGRAM_BOT_TOKEN": telegram.token}
    instances = [RunningBot(config, tmp_path / f"run{i}.log", env) for i in range(2)]
    user = 4242

    def answers() -> int:
        return sum(1 for m in list(telegram.sent) if m.get("chat_id") == user)

    try:
        _wait(lambda: all("bot_running" in i.text() for i in instances), "two instances")
        telegram.push_message(user, user, "/help")
        _wait(lambda: answers() == 1, "an answer from the leader", timeout=30)
        leaders = [i for i in instances if "leader_elected" in i.text()]
        assert len(leaders) == 1
        conflicts = [
            c for c in telegram.calls if c["method"] == "getUpdates" and c["status"] == 409
        ]
        assert not conflicts, "one getUpdates poller at a time"
        leader, follower = leaders[0], next(i for i in instances if i is not leaders[0])
        leader.kill()
        killed_at = time.monotonic()
        telegram.push_message(user, user, "/help")
        took = _wait(lambda: answers() == 2, "an answer after failover", timeout=45)
        assert time.monotonic() - killed_at < 30, f"answered {took:.1f}s after the kill"
        assert "leader_elected" in follower.text()
    finally:
        for i in instances:
            i.stop()


@pytest.mark.system
def test_once_beside_run_on_postgresql_works_through_the_same_claims(pg_database, tmp_path, serve):
    n = 30
    config = write_config(
        tmp_path,
        [("Wire", serve(rss(_burst(n))))],
        watchlists=WATCH,
        database=pg_database,
        extra="destinations:\n  console: {}\n",
    )
    run = RunningBot(config, tmp_path / "run.log", {})
    outbox = open_store(pg_database)
    try:
        _wait(lambda: "bot_running" in run.text(), "run")
        once = run_bot("once", "--config", str(config), timeout=120)
        assert once.returncode == 0, once.stderr
        _wait(lambda: (run.text() + once.stdout).count("🔔 ") >= n, f"{n} alerts between them")
        _wait(lambda: outbox.count_pending() == 0, "an empty outbox: nothing more to print")
    finally:
        outbox.close()
        run.stop()
    both = run.text() + once.stdout
    for k in range(n):
        assert both.count(f"🔔 US adds {k + 2} Nvidia H20 buyers to entity list\n") == 1, k


# --- the compose file ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


@pytest.mark.system
def test_the_compose_files_instances_share_one_database(postgres, tmp_path, serve):
    """``docker-compose.yml``'s two chipwatch services, run as their environment says (there
    is no Docker here): the same PostgreSQL URL, the password from ``PGPASSWORD``, each with
    its own /healthz; both healthy, and the shared roles taken by exactly one of them."""
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:15")
    assert "healthcheck" in services["db"]
    apps = {k: v for k, v in services.items() if k != "db"}
    assert len(apps) >= 2
    urls = {v["environment"]["CHIPWATCH_DATABASE"] for v in apps.values()}
    assert len(urls) == 1, "every instance on the same database"
    (url,) = urls
    assert url.startswith("postgresql://") and ":" not in url.split("//")[1].split("@")[0], (
        "no password in the URL: it comes from PGPASSWORD"
    )
    published = [v["ports"][0] for v in apps.values()]
    assert all(p.startswith("127.0.0.1:") for p in published)
    assert len({p.split(":")[1] for p in published}) == len(apps), "one /healthz port each"
    for v in apps.values():
        assert v["depends_on"]["db"]["condition"] == "service_healthy"
        assert v["environment"]["PGPASSWORD"].startswith("${"), "secrets from the environment"
        # The config on a volume they share and may write (/watch), not a read-only mount.
        assert v["volumes"] == ["chipwatch-config:/data"]
    assert "chipwatch-config" in compose["volumes"]

    database = postgres.new_database().rsplit("/", 1)[1]
    here = url.replace("@db:5432/chipwatch", f"@127.0.0.1:{postgres.port}/{database}")
    here = here.replace("//chipwatch@", f"//{SECRET_USER}@")
    config = write_config(
        tmp_path, [("Wire", serve(rss([])))], watchlists=WATCH, database="unused.db"
    )
    ports = [_free_port() for _ in apps]
    instances = []
    try:
        for i, (name, service) in enumerate(apps.items()):
            env = {
                k: v
                for k, v in service["environment"].items()
                if not str(v).startswith("${")  # secrets: from the test's environment
            }
            env.update(
                CHIPWATCH_DATABASE=here,
                PGPASSWORD=SECRET_PASSWORD,
                CHIPWATCH_OPS_LISTEN=f"127.0.0.1:{ports[i]}",
            )
            instances.append(RunningBot(config, tmp_path / f"{name}.log", env))
        _wait(
            lambda: all((_healthz(p) or {}).get("status") == "ok" for p in ports),
            "both instances healthy",
        )
        _wait(
            lambda: sum("deliver:console" in _healthz(p)["instance"]["roles"] for p in ports) == 1,
            "one instance sending to the console",
        )
        ids = {_healthz(p)["instance"]["id"] for p in ports}
        assert len(ids) == len(apps)
        status = run_bot(
            "status",
            "--config",
            str(config),
            env={"CHIPWATCH_DATABASE": here, "PGPASSWORD": SECRET_PASSWORD},
        )
        listed = [line for line in status.stdout.splitlines() if line.startswith("instance: ")]
        assert sorted(line.split()[1] for line in listed) == sorted(ids), status.stdout
        assert sum("deliver:console" in line for line in listed) == 1
    finally:
        for i in instances:
            i.stop()
    assert not (tmp_path / "unused.db").exists(), "CHIPWATCH_DATABASE won over the config"
    for i in instances:
        assert SECRET_PASSWORD not in i.text()
