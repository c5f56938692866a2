"""The ops endpoint of ``run`` (/healthz, /metrics) over real HTTP, the config key behind it,
and the Docker HEALTHCHECK command run verbatim against a running ``run``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.config import OpsConfig, load_config, parse_config
from alerts.errors import ConfigError
from alerts.health import DestinationLive, Live, assess
from alerts.healthcheck import url_from_env
from alerts.loopback import Route
from alerts.ops import HealthCheck, healthz_json
from alerts.runtime import Runtime
from alerts.scheduler import Scheduler
from alerts.store import open_store
from alerts.store.health import HealthFacts
from alerts.store.schema import _iso
from alerts.types import utcnow
from tests.fakes.telegram_api import FakeTelegram
from tests.support import MINIMAL_WATCHLISTS, ROOT, ago, cli, rss, run_bot, write_config

CHANNEL = "@chipwatch_ops"
CHANNEL_ID = -1009876543210
FIRST = "US adds Nvidia H20 buyers to entity list"
SECOND = "Huawei hit by new export controls on Blackwell parts"


# --- helpers ------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "TELEGRAM_BOT_TOKEN",
            "SLACK_WEBHOOK_URL",
            "CHIPWATCH_DATABASE",
            "CHIPWATCH_OPS_LISTEN",
        )
    }
    env.update(extra)
    return env


def _wait(predicate, what: str, timeout: float = 40.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run exited with {proc.returncode} while waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _health(base: str) -> tuple[int, dict]:
    status, body = _get(base + "/healthz")
    return status, json.loads(body)


def _until(
    base: str, status: int, what: str, proc: subprocess.Popen, timeout: float = 40.0
) -> dict:
    """Poll /healthz until it answers ``status``; its body."""

    def answered() -> dict | None:
        code, body = _health(base)
        return body if code == status else None

    return _wait(answered, what, timeout=timeout, proc=proc)


def _sent(base: str, n: int) -> dict | None:
    """The metrics once ``n`` alerts were counted as sent to telegram."""
    m = _metrics(base)
    return (
        m
        if m.get(("chipwatch_deliveries_total", (("destination", "telegram"), ("result", "sent"))))
        == n
        else None
    )


def _metrics(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    _, text = _get(base + "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _listening(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "ops_listening address=" in line:
            return "http://" + line.split("ops_listening address=")[1].split()[0]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(config: Path, log: Path, env: dict, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [*prefix, sys.executable, str(ROOT / "bot.py"), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


def _stop(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()


def _config(tmp_path: Path, url: str, *, extra: str = "", listen: str = "127.0.0.1:0") -> Path:
    """A quick config: one feed polled every 10 s, no adaptive slow-down."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f'database: cw.db\nops:\n  listen: "{listen}"\n  paused_after_minutes: 0\n'
        f"poll:\n  interval_seconds: 10\n  adaptive: false\n  timeout_seconds: 5\n"
        f'feeds:\n  - name: Wire\n    url: "{url}"\n'
        + MINIMAL_WATCHLISTS
        + "stories:\n  edit_delay_seconds: 0\n"
        + extra,
        encoding="utf-8",
    )
    return path


# --- config ------------------------------------------------------------------------------------


def _ops(text: str) -> OpsConfig:
    return parse_config(MINIMAL_WATCHLISTS + text, path="config.yaml").ops


def test_ops_listen_defaults_parses_and_turns_off():
    assert _ops("").address == ("127.0.0.1", 9108)
    assert _ops('ops:\n  listen: "0.0.0.0:9200"\n').address == ("0.0.0.0", 9200)
    assert _ops('ops:\n  listen: "[::1]:9108"\n').address == ("::1", 9108)
    assert _ops('ops:\n  listen: ":9108"\n').address == ("0.0.0.0", 9108)
    assert _ops('ops:\n  listen: ""\n').address is None
    assert _ops("ops:\n  paused_after_minutes: 5\n").paused_after_minutes == 5


@pytest.mark.parametrize(
    "value, message",
    [
        ('"localhost"', "must be host:port"),
        ('"127.0.0.1:http"', "must be host:port"),
        ('"127.0.0.1:70000"', "port must be 0..65535"),
        ('"::1:9108"', "an IPv6 address goes in brackets"),
        ("9108", "must be host:port"),
        ("[9108]", "must be a string"),
    ],
)
def test_bad_ops_listen_names_file_line_and_key(value, message):
    text = MINIMAL_WATCHLISTS + f"ops:\n  listen: {value}\n"
    line = text.count("\n", 0, text.index("  listen:")) + 1
    with pytest.raises(ConfigError) as err:
        parse_config(text, path="config.yaml")
    assert str(err.value).startswith(f"config.yaml:{line}: ops.listen: ")
    assert message in str(err.value)


def test_check_config_exits_2_on_a_bad_listen_and_on_a_bad_environment(tmp_path):
    config = write_config(tmp_path, [], ops_listen="127.0.0.1:99999")
    out = cli("check-config", "--config", str(config))
    assert out.returncode == 2
    assert f"{config}:3: ops.listen: port must be 0..65535, got 99999" in out.stderr

    config = write_config(tmp_path, [])
    out = cli("check-config", "--config", str(config), env={"CHIPWATCH_OPS_LISTEN": "nowhere"})
    assert (
        out.returncode == 2 and "CHIPWATCH_OPS_LISTEN: ops.listen: must be host:port" in out.stderr
    )
    assert load_config(config, environ={"CHIPWATCH_OPS_LISTEN": ""}).ops.address is None
    assert (
        load_config(config, environ={"CHIPWATCH_OPS_LISTEN": "0.0.0.0:9"}).ops.listen == "0.0.0.0:9"
    )


def test_healthcheck_asks_the_listen_address_on_loopback():
    assert url_from_env({}) == "http://127.0.0.1:9108/healthz"
    assert url_from_env({"CHIPWATCH_OPS_LISTEN": "0.0.0.0:9200"}) == "http://127.0.0.1:9200/healthz"
    assert url_from_env({"CHIPWATCH_OPS_LISTEN": "[::]:9200"}) == "http://[::1]:9200/healthz"
    assert url_from_env({"CHIPWATCH_OPS_LISTEN": "10.0.0.5:9200"}) == "http://10.0.0.5:9200/healthz"
    assert url_from_env({"CHIPWATCH_OPS_LISTEN": ""}) is None


# --- the verdict, from state --------------------------------------------------------------------


def _assess(tmp_path, *, destinations=None, tick_age=1.0, now=None):
    """The verdict on an empty database, with the given live state."""
    config = load_config(
        write_config(
            tmp_path,
            [],
            extra='destinations:\n  telegram:\n    chat_id: "@c"\n',  # paused after 60 min
        )
    )
    facts = HealthFacts(
        feeds={},
        pending={},
        held=frozenset(),
        last_alert=None,
        alerts_today=0,
        subscribers=0,
        suspended=0,
        instances=(),
        size_bytes=0,
    )
    live = Live(
        tick_age=tick_age,
        tick_every=5.0,
        database_error=None,
        destinations=destinations or {"telegram": DestinationLive(state="ok")},
    )
    return assess(config, facts, now=now or utcnow(), live=live)


def test_destination_down_counts_only_after_paused_after(tmp_path):
    now = utcnow()

    def down(minutes, state="failing"):
        return {"telegram": DestinationLive(state=state, since=now - timedelta(minutes=minutes))}

    assert _assess(tmp_path, destinations=down(59), now=now).healthy
    late = _assess(tmp_path, destinations=down(61, "paused"), now=now)
    assert not late.healthy
    assert late.reasons[0].startswith("destination telegram is paused since")
    held = _assess(tmp_path, destinations={"telegram": DestinationLive(state="held")}, now=now)
    assert held.healthy and held.warnings == (
        "destination telegram is paused (/resume to release it)",
    )
    stalled = _assess(tmp_path, tick_age=11.0)
    assert stalled.reasons == ("scheduler stalled: last tick 11s ago (it ticks every 5s)",)
    assert _assess(tmp_path, tick_age=9.0).healthy


async def test_every_feed_failing_longer_than_failing_after_is_unhealthy(tmp_path):
    config = load_config(
        write_config(tmp_path, [("A", "http://127.0.0.1:9/a"), ("B", "http://127.0.0.1:9/b")])
    )
    store = open_store(config.database)
    runtime = Runtime(config, store)
    scheduler = Scheduler(poll=runtime.poll, deliver=runtime.deliver)
    scheduler.last_tick = time.monotonic()
    check = HealthCheck(runtime, scheduler)
    try:
        now = utcnow()
        store.record_failure("A", "http://127.0.0.1:9/a", "http_404", now=now - timedelta(days=2))
        store.record_failure("B", "http://127.0.0.1:9/b", "http_404", now=now - timedelta(hours=1))
        health = check()
        assert health.healthy and health.count("failing") == 2, "B has failed for an hour only"
        assert health.warnings == (
            f"feed A failing since {(now - timedelta(days=2)):%Y-%m-%d %H:%M} UTC (http_404)",
        )
        # B has now been failing for a day and a minute as well.
        store.db.execute(
            "UPDATE feeds SET failing_since = ? WHERE name = 'B'",
            [_iso(now - timedelta(days=1, minutes=1))],
        )
        health = check()
        assert health.reasons == ("every feed is failing, for over 24h",)
        assert healthz_json(health)["status"] == "unhealthy"
    finally:
        await runtime.aclose()
        store.close()


# --- over HTTP, against a running `run` ------------------------------------------------------


@pytest.mark.system
def test_healthz_turns_503_while_the_bot_api_is_gone_then_recovers(tmp_path, serve):
    # The feed answers only once the Bot API is gone: the first alert is the one that cannot
    # be sent (no waiting for a second poll, ten seconds on).
    gone = threading.Event()

    def feed() -> bytes:
        gone.wait(30)
        return rss(
            [{"title": FIRST, "link": "https://n.example/1", "guid": "1", "date": ago(minutes=3)}]
        ).encode()

    url = serve(Route(body=feed))
    fake = FakeTelegram(
        chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "ops"}},
        per_chat_interval=0.05,
    ).start()
    config = _config(
        tmp_path,
        url,
        extra=(
            f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
            f"    api_base_url: {fake.base_url}\n"
        ),
    )
    log = tmp_path / "run.log"
    proc = _start(config, log, _env(TELEGRAM_BOT_TOKEN=fake.token))
    try:
        base = _wait(lambda: _listening(log), "the ops endpoint", proc=proc)
        _wait(lambda: "commands_started" in log.read_text(), "commands (getMe)", proc=proc)
        health = _until(base, 200, "a healthy answer", proc)
        assert health["status"] == "ok" and health["reasons"] == []
        assert health["destinations"] == {"telegram": {"state": "ok"}}
        assert health["database"]["writable"] is True

        port = fake.port
        fake.close()  # the Bot API goes away
        gone.set()
        health = _until(base, 503, "503 while telegram cannot be reached", proc)
        assert health["status"] == "unhealthy"
        assert health["destinations"]["telegram"]["state"] == "failing"
        assert [r for r in health["reasons"] if r.startswith("destination telegram is failing")]
        m = _metrics(base)
        assert m[("chipwatch_outbox_pending", (("destination", "telegram"),))] == 1
        assert (
            m[("chipwatch_outbox_oldest_pending_age_seconds", (("destination", "telegram"),))] > 0
        )
        assert (
            m[("chipwatch_deliveries_total", (("destination", "telegram"), ("result", "retry")))]
            >= 1
        )
        assert m[("chipwatch_destination_down_seconds", (("destination", "telegram"),))] > 0

        fake = FakeTelegram(
            chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "ops"}},
            per_chat_interval=0.05,
            port=port,
        ).start()  # it comes back
        health = _until(base, 200, "recovery", proc, timeout=60)
        assert health["destinations"] == {"telegram": {"state": "ok"}}
        assert [m["shown_text"].split("\n")[0] for m in fake.sent] == [FIRST]
        m = _wait(lambda: _sent(base, 1), "the delivery counted", proc=proc)
        assert m[("chipwatch_polls_total", (("status", "ok"),))] >= 1
        assert m[("chipwatch_poll_duration_seconds_count", ())] >= 1
        assert m[("chipwatch_new_items_total", ())] == 1
        assert m[("chipwatch_alerts_total", ())] == 1
        assert m[("chipwatch_story_reports_total", (("placement", "new_story"),))] == 1
        assert m[("chipwatch_outbox_pending", (("destination", "telegram"),))] == 0
        assert m[("chipwatch_feeds_failing", ())] == 0
        assert (
            "chipwatch_build_info",
            (("python", sys.version.split()[0]), ("version", "0.1.0")),
        ) in m
    finally:
        gone.set()
        try:
            _stop(proc, log)
        finally:
            fake.close()
    assert fake.token not in log.read_text()


def _without_root_overrides() -> tuple[str, ...]:
    """As root, file modes bind only without CAP_DAC_OVERRIDE and CAP_FOWNER: drop them for
    the bot, so a read-only file is read-only to it as it would be to any service user."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file would not bind root")
    caps = "-dac_override,-fowner"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def _healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, as written there."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    [line] = [ln for ln in lines if ln.startswith("HEALTHCHECK ")]
    command = line.split(" CMD ", 1)[1].strip()
    return json.loads(command) if command.startswith("[") else shlex.split(command)


@pytest.mark.system
def test_dockerfile_healthcheck_and_a_read_only_database(tmp_path, serve):
    prefix = _without_root_overrides()
    command = _healthcheck_command()
    assert command[:3] == ["python", "-m", "alerts.healthcheck"]
    command[0] = sys.executable  # the image's python; the module needs the standard library only
    url = serve(
        rss([{"title": FIRST, "link": "https://n.example/r", "guid": "r", "date": ago(minutes=2)}])
    )
    config = _config(tmp_path, url, listen="")  # the environment sets it, as in the image
    env = _env(CHIPWATCH_OPS_LISTEN=f"127.0.0.1:{_free_port()}")
    log = tmp_path / "run.log"

    def healthcheck() -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
        )

    down = healthcheck()
    assert down.returncode == 1 and "Connection refused" in down.stderr, "nothing listens yet"
    proc = _start(config, log, env, prefix)
    database = tmp_path / "cw.db"
    try:
        base = _wait(lambda: _listening(log), "the ops endpoint", proc=proc)
        assert base == "http://" + env["CHIPWATCH_OPS_LISTEN"]
        _wait(lambda: "🔔 " + FIRST in log.read_text(), "the alert", proc=proc)
        ok = healthcheck()
        assert ok.returncode == 0, ok.stderr

        database.chmod(0o444)
        health = _until(base, 503, "503 with a read-only database", proc)
        assert health["database"]["writable"] is False
        assert health["reasons"] == [
            f"database not writable: {database} is read-only for this process"
        ]
        bad = healthcheck()
        assert bad.returncode == 1
        assert f"503 database not writable: {database} is read-only" in bad.stderr

        database.chmod(0o644)
        assert _health(base)[0] == 200
        assert healthcheck().returncode == 0
    finally:
        database.chmod(0o644)
        _stop(proc, log)


@pytest.mark.system
def test_a_taken_address_is_logged_and_run_goes_on(tmp_path, serve):
    url = serve(
        rss([{"title": FIRST, "link": "https://n.example/t", "guid": "t", "date": ago(minutes=2)}])
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = _config(tmp_path, url, listen=address)
        log = tmp_path / "run.log"
        proc = _start(config, log, _env())
        try:
            _wait(lambda: "🔔 " + FIRST in log.read_text(), "the alert anyway", proc=proc)
        finally:
            _stop(proc, log)
        text = log.read_text()
        assert f"WARNING chipwatch.ops ops_listen_failed listen={address}" in text
        assert "ops_listening" not in text

        once = run_bot("once", "--config", str(config))
        assert once.returncode == 0, once.stderr
        assert "ops_listen" not in once.stderr, "once never opens the endpoint"


async def test_a_rate_limit_is_no_outage_but_a_refusal_is_until_a_send_succeeds(tmp_path):
    from alerts.deliver import Deliverer
    from alerts.deliver.telegram import TelegramSink
    from tests.test_delivery import UNPACED, Clock, _queue

    with FakeTelegram(chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "o"}}) as fake:
        store = open_store(tmp_path / "cw.db")
        _queue(store, ["Nvidia export controls widen"])
        clock = Clock()
        sink = TelegramSink(
            token=fake.token, chat_id=CHANNEL, base_url=fake.base_url, per_chat=UNPACED
        )
        deliverer = Deliverer(store, [sink], now=clock, sleep=clock.sleep)
        try:
            fake.fail_next(1, status=429, retry_after=1)
            report = await deliverer.deliver_due()
            assert report.results == {("telegram", "retry"): 1}
            assert deliverer.down_since("telegram") is None, "a stated wait is no failure"

            clock.now += timedelta(seconds=2)
            fake.kick(CHANNEL_ID)
            report = await deliverer.deliver_due()
            assert report.results == {("telegram", "unavailable"): 1}
            assert deliverer.down_since("telegram") == clock.now

            fake.unkick(CHANNEL_ID)
            clock.now += timedelta(seconds=61)
            report = await deliverer.deliver_due()
            assert report.results == {("telegram", "sent"): 1}
            assert deliverer.down_since("telegram") is None
        finally:
            await sink.aclose()
            store.close()


async def test_config_reloads_are_counted_by_result(tmp_path):
    path = write_config(tmp_path, [])
    store = open_store(tmp_path / "cw.db")
    runtime = Runtime(load_config(path), store)

    def reloads(result: str) -> float:
        return runtime.metrics.registry.get_sample_value(
            "chipwatch_config_reloads_total", {"result": result}
        )

    try:
        path.write_text(path.read_text() + "bogus_key: 1\n", encoding="utf-8")
        assert (await runtime.reload_if_changed()).status == "invalid"
        path.write_text(
            path.read_text().replace("bogus_key: 1\n", "log_format: json\n"), encoding="utf-8"
        )
        assert (await runtime.reload_if_changed()).status == "applied"
        assert (reloads("invalid"), reloads("applied")) == (1, 1)
    finally:
        await runtime.aclose()
        store.close()


def test_follow_ups_are_counted_beside_new_stories_and_joins():
    """A poll's alerts include its follow-ups (quiet replies): they are counted apart."""
    from prometheus_client.parser import text_string_to_metric_families

    from alerts.metrics import Metrics

    metrics = Metrics()
    metrics.poll(status="ok", seconds=0.1, new_items=6, alerts=3, story_joins=2, story_followups=1)
    body, _ = metrics.render()
    placements = {
        s.labels["placement"]: s.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == "chipwatch_story_reports"
        for s in family.samples
    }
    assert placements == {"new_story": 2, "followup": 1, "joined": 2}
