"""What the store reports for health, on both engines: the same facts through the running
bot's connection and read-only beside it; operator holds; a subscriber's suspension; the write
probe."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alerts.store import open_store, read_health_facts
from tests.support import alerting_item, deliveries, record

NOW = datetime.now(timezone.utc)


def test_health_facts_are_the_same_live_and_read_only(database):
    store = open_store(database)
    try:
        record(
            store,
            "Wire",
            alerting_item(
                "1", "US curbs Nvidia H20", feed="Wire", destinations=("telegram", "telegram:222")
            ),
        )
        record(
            store,
            "Wire",
            alerting_item("2", "Nvidia H20 orders halted", feed="Wire", destinations=("telegram",)),
        )
        store.record_failure("Gone", "http://127.0.0.1:9/gone", "http_404", now=NOW)
        store.subscribe(222, "term", "H20", now=NOW)
        store.subscribe(333, "term", "H20", now=NOW)
        store.set_held("telegram", True)
        live = store.health_facts(now=NOW)
        assert read_health_facts(database, now=NOW) == live
    finally:
        store.close()
    assert {d: w.count for d, w in live.pending.items()} == {"telegram": 2, "telegram:222": 1}
    assert live.held == {"telegram"}
    assert live.feeds["Gone"].last_status == "error" and live.feeds["Gone"].last_error == "http_404"
    assert live.feeds["Gone"].failing_since is not None
    assert live.last_alert is not None and live.last_alert.title == "Nvidia H20 orders halted"
    assert live.alerts_today == 2
    assert (live.subscribers, live.suspended) == (2, 0)
    assert live.size_bytes > 0


def test_a_suspended_subscriber_is_left_out_until_they_come_back(database):
    store = open_store(database)
    try:
        [alert] = record(
            store,
            "Wire",
            alerting_item(
                "1", "US curbs Nvidia H20", feed="Wire", destinations=("telegram", "telegram:222")
            ),
        )
        store.subscribe(222, "term", "H20", now=NOW)
        store.subscribe(222, "rule", "chip-trade", now=NOW)
        store.subscribe(333, "term", "H20", now=NOW)

        assert store.suspend_subscriber(
            222, "telegram:222", reason="Forbidden: bot was blocked by the user", now=NOW
        ) == (2, 1)
        assert store.suspend_subscriber(222, "telegram:222", reason="again", now=NOW) == (0, 0)
        assert store.subscriptions() == [(333, "term", "H20")]
        rows = {r["destination"]: r for r in deliveries(store, alert)}
        assert rows["telegram"]["status"] == "pending", "the channel's alert is untouched"
        assert rows["telegram:222"]["status"] == "rejected"
        assert rows["telegram:222"]["last_error"] == (
            "subscriber unreachable: Forbidden: bot was blocked by the user"
        )
        facts = store.health_facts(now=NOW)
        assert (facts.subscribers, facts.suspended) == (1, 1)
        assert set(facts.pending) == {"telegram"}

        assert store.resume_subscriber(222) == 2
        assert store.resume_subscriber(222) == 0
        assert len(store.subscriptions(222)) == 2
    finally:
        store.close()


def test_holds_and_the_write_probe(database):
    store = open_store(database)
    try:
        assert store.held() == frozenset()
        store.set_held("telegram", True)
        store.set_held("slack", True)
        store.set_held("slack", False)
        assert store.held() == {"telegram"}
        assert store.probe_write(now=NOW) is None
    finally:
        store.close()


def test_an_older_database_reads_without_the_newer_columns(tmp_path):
    """``status`` reads a file a newer chipwatch has not migrated yet (schema 8: no
    suspension columns, no digests, no WebSub tables) without failing."""
    import sqlite3

    path = tmp_path / "cw.db"
    store = open_store(path)
    store.subscribe(222, "term", "H20", now=NOW)
    store.close()
    with sqlite3.connect(path) as db:
        # What migrations 9 to 11 added, taken away again.
        db.execute("ALTER TABLE subscriptions DROP COLUMN suspended_at")
        db.execute("ALTER TABLE subscriptions DROP COLUMN suspended_reason")
        for table in ("digests", "hubs", "websub"):
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 8")
    facts = read_health_facts(path, now=NOW + timedelta(seconds=1))
    assert (facts.subscribers, facts.suspended) == (1, 0)
