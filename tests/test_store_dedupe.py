"""The store on both engines (schema version, migrations, what a poll records), SQLite's
file specifics (WAL), and canonical-link dedupe."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from alerts.dedupe import canonical_url
from alerts.errors import StoreError
from alerts.store import SCHEMA_VERSION, open_store, stored_items
from alerts.types import FeedItem, Match, MatchResult, NewItem

SAME_ARTICLE = [
    ("utm", "https://news.example/a/b?utm_source=rss&utm_medium=feed", "https://news.example/a/b"),
    ("click_ids", "https://news.example/a?fbclid=1&gclid=2&mc_cid=3", "https://news.example/a"),
    ("scheme_host_www", "HTTP://WWW.News.Example/a", "https://news.example/a"),
    ("fragment_port", "https://news.example:443/a#comments", "https://news.example/a"),
    ("trailing_slash", "https://news.example/a/", "https://news.example/a"),
    ("amp_path", "https://news.example/a/amp", "https://news.example/a"),
    ("amp_host", "https://amp.news.example/a", "https://news.example/a"),
    ("amp_query", "https://news.example/a?amp", "https://news.example/a"),
    ("param_order", "https://news.example/a?b=2&a=1", "https://news.example/a?a=1&b=2"),
]
DIFFERENT = [
    ("article_id_kept", "https://news.example/a?id=1", "https://news.example/a?id=2"),
    ("path_differs", "https://news.example/a", "https://news.example/b"),
    ("host_differs", "https://news.example/a", "https://other.example/a"),
]


@pytest.mark.parametrize(
    "url,expected", [c[1:] for c in SAME_ARTICLE], ids=[c[0] for c in SAME_ARTICLE]
)
def test_canonical_url_folds_variants(url, expected):
    assert canonical_url(url) == canonical_url(expected) == expected


@pytest.mark.parametrize("a,b", [c[1:] for c in DIFFERENT], ids=[c[0] for c in DIFFERENT])
def test_canonical_url_keeps_different_articles_apart(a, b):
    assert canonical_url(a) != canonical_url(b)


def test_store_is_wal_versioned_and_reopens(tmp_path):
    path = tmp_path / "cw.db"
    open_store(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"feeds", "items", "alerts", "deliveries"} <= tables
    open_store(path).close()  # migrating an up-to-date database is a no-op


def test_store_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "cw.db"
    open_store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this chipwatch understands"):
        open_store(path)


def test_store_reports_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "cw.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        open_store(path)


# --- both engines ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
RESULT = MatchResult(
    matches=(Match("companies", "Nvidia", "Nvidia", "exact", 100.0),), rules=("chip-trade",)
)


def _new(guid: str, title: str, *, link: str = "", alert: bool = True, **kw) -> NewItem:
    link = link or f"https://w.example/{guid}"
    return NewItem(
        item=FeedItem(
            feed="Wire",
            guid=guid,
            link=link,
            title=title,
            summary="s",
            published=NOW - timedelta(minutes=5),
        ),
        canonical_link=link,
        result=RESULT if alert else None,
        destinations=("telegram", "telegram:-1001234567890") if alert else (),
        **kw,
    )


def _set_version(database, version: int) -> None:
    if isinstance(database, str):
        with psycopg.connect(database, autocommit=True) as db:
            db.execute("UPDATE chipwatch_schema SET version = %s", [version])
    else:
        with sqlite3.connect(database) as db:
            db.execute(f"PRAGMA user_version = {version}")


def test_store_migrates_once_and_refuses_a_newer_schema(database):
    open_store(database).close()
    open_store(database).close()  # migrating an up-to-date database is a no-op
    _set_version(database, SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this chipwatch understands"):
        open_store(database)


@pytest.mark.slow
def test_concurrent_openers_of_a_new_database_migrate_it_once(database):
    # The race lost only about 1 round in 50 on SQLite (two openers switching a new file to
    # WAL at once), so SQLite runs many rounds, each on a new file.
    paths = (
        [database]
        if isinstance(database, str)
        else [database.with_name(f"cw{n}.db") for n in range(60)]
    )
    for path in paths:
        errors: list[BaseException] = []

        def opener(path=path, errors=errors) -> None:
            try:
                open_store(path).close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        store = open_store(path)
        assert store.feed_states() == []
        store.close()


def test_a_poll_is_recorded_and_read_back_the_same_on_both_engines(database):
    store = open_store(database)
    items = [
        _new("1", "US curbs Nvidia H20"),
        _new("2", "Weather", alert=False),
        _new("1", "same guid again: the first one wins"),
    ]
    ids = store.record_poll(
        "Wire",
        "https://w.example/rss",
        items,
        now=NOW,
        etag='"v1"',
        interval_seconds=123.456,
        next_poll_at=NOW + timedelta(minutes=2),
    )
    assert len(ids) == 2 and ids[0] < ids[1], "ids handed out by the database, in order"
    state = store.feed_state("Wire")
    assert (state.etag, state.interval_seconds, state.last_status) == ('"v1"', 123.456, "ok")
    assert state.next_poll_at == NOW + timedelta(minutes=2) and state.first_polled_at == NOW
    assert store.known_items("Wire", [("1", ""), ("9", "https://w.example/2"), ("7", "")]) == {0, 1}
    pending = store.pending("telegram:-1001234567890", now=NOW)
    assert [a.title for a in pending] == [
        "US curbs Nvidia H20",
        "same guid again: the first one wins",
    ]
    assert pending[0].matches == RESULT.matches
    assert pending[0].published == NOW - timedelta(minutes=5)
    store.mark_sent(ids[0], "telegram", message_id="42", now=NOW)
    store.mark_retry(ids[1], "telegram", error="http_500", at=NOW + timedelta(seconds=10))
    assert store.count_pending("telegram") == 1 and store.count_pending() == 3
    assert store.next_attempt_at("telegram") == NOW + timedelta(seconds=10)
    assert sorted(store.recent_titles(limit=5)) == ["US curbs Nvidia H20", "Weather"]

    state = store.record_failure("Wire", "https://w.example/rss", "timeout", now=NOW)
    state = store.record_failure(
        "Wire", "https://w.example/rss", "timeout", now=NOW + timedelta(minutes=1)
    )
    assert (state.consecutive_failures, state.failing_since) == (2, NOW)
    store.update_feed("Wire", "https://w.example/moved", etag="x")
    assert store.feed_state("Wire").etag == "x", "a new URL starts the fetch state afresh"

    assert store.subscribe(-1001234567890, "term", "H20", now=NOW)
    assert not store.subscribe(-1001234567890, "term", "H20", now=NOW)
    assert store.subscriptions() == [(-1001234567890, "term", "H20")]
    assert store.unsubscribe(-1001234567890, "h20")
    store.mute("Huawei", until=NOW + timedelta(hours=1), by_user=2**40)
    store.mute("Huawei", until=NOW + timedelta(hours=2))
    assert store.active_mutes(now=NOW) == {"huawei": NOW + timedelta(hours=2)}
    store.set_setting("paused:telegram", "1")
    store.set_setting("paused:telegram", "2")
    assert store.get_setting("paused:telegram") == "2"
    store.set_setting("paused:telegram", None)
    assert store.get_setting("paused:telegram") is None

    store.mark_sent(ids[0], "telegram:-1001234567890", message_id="43", now=NOW)
    assert store.prune(older_than=timedelta(days=1), now=NOW + timedelta(days=2)) == {
        "items": 2,
        "stories": 0,
        "alerts": 1,
    }, "the alert still pending is kept"
    store.close()


def test_a_failed_poll_transaction_leaves_nothing_behind(database):
    store = open_store(database)
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.NotNullViolation)):
        store.record_poll(
            "Wire",
            "https://w.example/rss",  # the second has no title
            [_new("1", "US curbs Nvidia H20"), _new("1b", None)],
            now=NOW,
        )
    assert store.feed_state("Wire") is None and store.count_pending() == 0
    assert store.known_items("Wire", [("1", "")]) == set()
    store.record_poll("Wire", "https://w.example/rss", [_new("1", "US curbs Nvidia H20")], now=NOW)
    assert store.count_pending() == 2, "the connection is usable after the rollback"
    store.close()


def test_stories_and_backtest_items_read_back_on_both_engines(database):
    store = open_store(database)
    first = _new(
        "1",
        "US curbs Nvidia H20",
        story_id=1,
        new_story=True,
        member=("us", "h20"),
        entities=("Nvidia",),
        story_actions=("curb",),
    )
    [alert_id] = store.record_poll("Wire", "https://w.example/rss", [first], now=NOW)
    store.mark_sent(alert_id, "telegram", message_id="9", now=NOW)
    joined = _new(
        "2",
        "Washington curbs Nvidia H20 sales",
        story_id=1,
        member=("h20",),
        entities=("Nvidia",),
        outlet="other.example",
        source_name="Other",
        report=True,
    )
    store.record_poll("Other", "https://o.example/rss", [joined], now=NOW + timedelta(minutes=1))
    assert store.max_story_id() == 1
    [story] = store.recent_stories(since=NOW - timedelta(hours=1))
    assert story.sources == ("Wire", "Other") and story.members[1] == (("h20",), ("Nvidia",))
    assert [a.id for a, _ in store.edits_due("telegram", now=NOW + timedelta(minutes=2))] == [
        alert_id
    ]
    assert store.story_momentum(1, since=NOW - timedelta(hours=1)) == 2
    store.mark_major(1, now=NOW + timedelta(minutes=1))
    assert store.story_momentum(1, since=NOW - timedelta(hours=1)) is None  # decided already
    assert store.recent_stories(since=NOW - timedelta(hours=1))[0].major
    store.close()
    replay = stored_items(database, since=NOW - timedelta(hours=1))
    assert [(i.feed, i.title, i.alerted) for i in replay] == [
        ("Wire", "US curbs Nvidia H20", True),
        ("Wire", "Washington curbs Nvidia H20 sales", True),
    ]


def test_a_follow_up_is_threaded_under_its_story_on_both_engines(database):
    """A follow-up is a story of its own whose alert names the story it replies to. Recorded
    before its story (another feed of the same cycle), it still finds the story's alert."""
    store = open_store(database)
    follow = _new(
        "f",
        "Nvidia says it will comply with H20 curbs",
        story_id=2,
        new_story=True,
        thread=1,
        decision="follow-up of story 1",
    )
    [follow_id] = store.record_poll("Other", "https://o.example/rss", [follow], now=NOW)
    pending = store.pending("telegram", now=NOW)
    assert [(a.id, a.thread_of, a.thread_title) for a in pending] == [(follow_id, None, "")]
    story = _new("s", "US curbs Nvidia H20", story_id=1, new_story=True, decision="new story")
    [story_id] = store.record_poll("Wire", "https://w.example/rss", [story], now=NOW)
    by_id = {a.id: a for a in store.pending("telegram", now=NOW)}
    assert by_id[follow_id].thread_of == story_id
    assert by_id[follow_id].thread_title == "US curbs Nvidia H20"
    assert by_id[follow_id].decision == "follow-up of story 1"
    assert by_id[story_id].thread_of is None and by_id[story_id].followups == 1
    assert store.message_id(story_id, "telegram") is None  # not sent yet
    store.mark_sent(story_id, "telegram", message_id="41", now=NOW)
    assert store.message_id(story_id, "telegram") == "41"
    assert store.message_id(story_id, "telegram:-1001234567890") is None
    [recorded] = [s for s in store.recent_stories(since=NOW - timedelta(hours=1)) if s.id == 2]
    assert recorded.parent == 1
    store.close()
