"""Shared fixtures: a session-wide loopback feed server and per-test routes on it; a
session-wide throw-away PostgreSQL and, per test, a fresh database on either engine."""

from __future__ import annotations

import itertools

import pytest

from alerts.loopback import FeedServer, Route
from tests import pg_server
from tests.fakes.telegram_api import FakeTelegram
from tests.support import CHANNEL, CHANNEL_ID

_paths = itertools.count()


@pytest.fixture(scope="session")
def feed_server():
    with FeedServer() as server:
        yield server


@pytest.fixture
def serve(feed_server):
    """``serve(body_or_route) -> url`` on a path no other test uses."""

    def _serve(content: bytes | str | Route, *, suffix: str = ".xml") -> str:
        route = (
            content
            if isinstance(content, Route)
            else Route(body=content.encode() if isinstance(content, str) else content)
        )
        return feed_server.route(f"/t{next(_paths)}{suffix}", route)

    return _serve


@pytest.fixture
def telegram():
    """A strict fake Bot API on loopback that knows the test channel."""
    with FakeTelegram(
        chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "chipwatch test"}}
    ) as fake:
        yield fake


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 for the session (skipped only when ``CHIPWATCH_TEST_PG=0``)."""
    if not pg_server.enabled():
        pytest.skip("CHIPWATCH_TEST_PG=0")
    with pg_server.PgServer() as server:
        yield server


@pytest.fixture
def pg_database(postgres) -> str:
    """The URL of a fresh, empty PostgreSQL database."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A fresh database on each engine in turn: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "cw.db"
    return request.getfixturevalue("pg_database")
