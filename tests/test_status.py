"""``python bot.py status``: health from the database alone, for scripts and cron."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from alerts.store import open_store
from alerts.types import FeedItem, Match, MatchResult, NewItem
from tests.support import cli, write_config

WATCH = "watchlists:\n  chips: [H20]\n  companies: [Nvidia]\n  export_terms: [export controls]\n"
TELEGRAM = 'destinations:\n  telegram:\n    chat_id: "@chipwatch_test"\n'


def _state(tmp_path, database, *, stale_alert: bool, failing_days: float):
    config = write_config(
        tmp_path,
        [("Wire", "http://127.0.0.1:9/wire.xml"), ("Missing", "http://127.0.0.1:9/missing.xml")],
        watchlists=WATCH,
        database=database,
        extra=TELEGRAM,
    )
    now = datetime.now(timezone.utc)
    store = open_store(database)
    queued = now - (timedelta(hours=2) if stale_alert else timedelta(minutes=1))
    result = MatchResult(
        matches=(Match("companies", "Nvidia", "Nvidia", "exact", 100.0),), rules=("chip-trade",)
    )
    store.record_poll(
        "Wire",
        "http://127.0.0.1:9/wire.xml",
        [
            NewItem(
                item=FeedItem(
                    feed="Wire",
                    guid="1",
                    link="https://w.example/1",
                    summary="",
                    title="US widens export controls on Nvidia",
                    published=queued,
                ),
                canonical_link="https://w.example/1",
                result=result,
                destinations=("telegram",),
            )
        ],
        now=queued,
    )
    store.record_failure(
        "Missing",
        "http://127.0.0.1:9/missing.xml",
        "http_404",
        now=now - timedelta(days=failing_days),
    )
    store.record_failure(
        "Missing",
        "http://127.0.0.1:9/missing.xml",
        "http_404",
        now=now,
        next_poll_at=now + timedelta(minutes=10),
    )
    store.close()
    return config


def test_status_names_what_is_wrong_and_exits_1(tmp_path, database):
    config = _state(tmp_path, database, stale_alert=True, failing_days=2)
    out = cli("status", "--config", str(config))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "feeds: 1 ok, 1 failing" in out.stdout
    assert "FAILING       Missing  since" in out.stdout and "(http_404)" in out.stdout
    assert "pending: telegram 1 (oldest" in out.stdout
    assert "last alert:" in out.stdout and "US widens export controls on Nvidia" in out.stdout
    assert "status: UNHEALTHY:" in out.stdout
    assert "feed Missing failing since" in out.stdout and "1 alert(s) for telegram" in out.stdout
    report = json.loads(cli("status", "--json", "--config", str(config)).stdout)
    assert report["healthy"] is False and report["pending"] == {"telegram": 1}
    assert {f["name"]: f["state"] for f in report["feeds"]} == {"Wire": "ok", "Missing": "failing"}
    assert report["database_bytes"] > 0
    assert report["database"] == str(database)


def test_a_fresh_failure_and_a_fresh_alert_are_healthy(tmp_path, database):
    config = _state(tmp_path, database, stale_alert=False, failing_days=0)
    out = cli("status", "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("status: healthy")


def test_status_without_a_database(tmp_path, database):
    config = write_config(tmp_path, [], watchlists=WATCH, database=database)
    out = cli("status", "--config", str(config))
    assert out.returncode == 1 and "(run the bot first)" in out.stderr
