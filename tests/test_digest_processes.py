"""Scheduled digests with real processes (``python bot.py run``): a digest that fell due while
the bot was stopped is sent once when it starts, and never again after a crash and a restart;
two instances on one PostgreSQL database send it once between them.

The processes run on the wall clock, so the digest's time is set an hour before now, and the
period's alerts are recorded (through the store, with their times) before the bot starts: as
a bot stopped before the digest's time would have left them.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from alerts.store import open_store
from tests.support import CHANNEL, CHANNEL_ID, RunningBot, alerting_item, write_config

TITLES = ("Nvidia H20 export controls tightened", "Nvidia H200 buyers face new export rules")


def _wait(predicate, what: str, timeout: float = 60.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _setup(tmp_path, telegram, database) -> tuple:
    """A config whose daily digest fell due an hour ago (Berlin time), and two alerts recorded
    in the period it closed."""
    now = datetime.now(timezone.utc)
    at = (now - timedelta(hours=1)).astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")
    config = write_config(
        tmp_path,
        [],
        database=database,
        extra=(
            "destinations:\n  - name: exec\n"
            f'    telegram: {{chat_id: "{CHANNEL}", api_base_url: "{telegram.base_url}"}}\n'
            f'    digest: {{every: day, at: "{at}", timezone: Europe/Berlin}}\n'
            "    instant: false\n"
        ),
    )
    store = open_store(database)
    try:
        for i, title in enumerate(TITLES):
            store.record_poll(
                "Wire",
                "http://127.0.0.1:9/wire.xml",
                [alerting_item(f"g{i}", title, feed="Wire", destinations=())],
                now=now - timedelta(hours=3),
            )
    finally:
        store.close()
    return config, {"TELEGRAM_BOT_TOKEN": telegram.token}


def _digests(telegram) -> list[str]:
    return [m["shown_text"] for m in list(telegram.sent) if m["chat_id"] == CHANNEL_ID]


def _rows(database) -> list[tuple]:
    store = open_store(database)
    try:
        return [tuple(r) for r in store.db.execute("SELECT destination, status FROM digests")]
    finally:
        store.close()


@pytest.mark.system
def test_a_digest_due_while_stopped_is_sent_once_at_start_and_never_after_a_crash(
    tmp_path, telegram
):
    database = tmp_path / "cw.db"
    config, env = _setup(tmp_path, telegram, database)
    first = RunningBot(config, tmp_path / "run1.log", env)
    try:
        _wait(lambda: _digests(telegram), "the digest that fell due while stopped")
        _wait(lambda: "scheduled_digest_sent" in first.text(), "its delivery recorded")
    finally:
        first.kill()  # a crash: no clean shutdown
    [digest] = _digests(telegram)
    assert all(t in digest for t in TITLES)
    assert "Daily digest · exec" in digest
    second = RunningBot(config, tmp_path / "run2.log", env)
    try:
        # bot_running comes after the start's digest check; a delivery tick follows at once.
        _wait(lambda: "bot_running" in second.text(), "the restart")
        _wait(lambda: "scheduler_started" in second.text(), "its scheduler")
    finally:
        second.stop()
    assert len(_digests(telegram)) == 1, "not twice"
    assert "scheduled_digest_queued" not in second.text()
    assert _rows(database) == [("exec", "sent")]


@pytest.mark.system
def test_two_instances_on_postgresql_send_a_digest_once_between_them(
    pg_database, tmp_path, telegram
):
    config, env = _setup(tmp_path, telegram, pg_database)
    instances = [RunningBot(config, tmp_path / f"run{i}.log", env) for i in range(2)]
    try:
        _wait(lambda: all("bot_running" in i.text() for i in instances), "two instances")
        _wait(lambda: _digests(telegram), "the digest")
        _wait(lambda: _rows(pg_database) == [("exec", "sent")], "the digest recorded as sent")
    finally:
        for i in instances:
            i.stop()
    [digest] = _digests(telegram)
    assert all(t in digest for t in TITLES)
    queued = sum(i.text().count("scheduled_digest_queued") for i in instances)
    assert queued == 1, "one instance queued it; the other found it queued"
