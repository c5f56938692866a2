"""Shared fixtures: a session-wide loopback feed server and per-test routes on it."""

from __future__ import annotations

import itertools

import pytest

from alerts.loopback import FeedServer, Route
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
        route = content if isinstance(content, Route) else Route(
            body=content.encode() if isinstance(content, str) else content)
        return feed_server.route(f"/t{next(_paths)}{suffix}", route)

    return _serve


@pytest.fixture
def telegram():
    """A strict fake Bot API on loopback that knows the test channel."""
    with FakeTelegram(chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel",
                                       "title": "chipwatch test"}}) as fake:
        yield fake
