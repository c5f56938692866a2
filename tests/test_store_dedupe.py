"""SQLite store (schema version, migrations, WAL) and canonical-link dedupe."""

from __future__ import annotations

import sqlite3

import pytest

from alerts.dedupe import canonical_url
from alerts.errors import StoreError
from alerts.store import SCHEMA_VERSION, open_store

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


@pytest.mark.parametrize("url,expected", [c[1:] for c in SAME_ARTICLE], ids=[c[0] for c in SAME_ARTICLE])
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
