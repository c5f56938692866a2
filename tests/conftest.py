"""Shared fixtures: a session-wide loopback feed server and per-test routes on it; a
session-wide throw-away PostgreSQL and, per test, a fresh database on either engine.

And the tiers (``pytest.ini`` registers the marks): ``make test-fast`` runs the tests marked
neither ``system`` (starts a real process) nor ``postgres`` (uses the PostgreSQL server). A test
is in the fast tier unless marked, and the marks cannot rot: the PostgreSQL fixtures mark the
tests that use them, and a test not marked ``system`` that starts a process fails."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Iterator

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
    with contextlib.ExitStack() as stack:
        with _processes.allowed():  # initdb and pg_ctl: the server is this fixture's point
            server = stack.enter_context(pg_server.PgServer())
        yield server


@pytest.fixture
def pg_database(request, postgres) -> str:
    """The URL of a fresh, empty PostgreSQL database."""
    if request.node.get_closest_marker("postgres") is None:  # asked for by name at run time
        pytest.fail(
            f"{request.node.nodeid} uses PostgreSQL: mark it (or its parameter) postgres",
            pytrace=False,
        )
    return postgres.new_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path):
    """A fresh database on each engine in turn: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "cw.db"
    return request.getfixturevalue("pg_database")


# --- tiers ---------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
    # The tests that wait longest first, so that under xdist none starts near the end.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("system") is None,
            item.get_closest_marker("slow") is None,
        )
    )


# What Python reports (sys.addaudithook) when a process is started, by any means.
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork"}
)


class _ProcessGuard:
    """Fails a test not marked ``system`` that starts a process, even one whose error the
    code under test would swallow."""

    def __init__(self) -> None:
        self.test: str | None = None  # the running test, while it may start no process
        self.started: list[str] = []
        self._allowed = 0

    def __call__(self, name: str, args: tuple) -> None:
        if name not in _PROCESS_EVENTS or self.test is None or self._allowed:
            return
        what = f"{name}{args[:2]!r}"[:200]
        self.started.append(what)
        raise RuntimeError(f"{self.test} started a process, {what}: {self._advice}")

    _advice = (
        "mark it @pytest.mark.system (make test-fast runs no processes), or test the same "
        "thing in this process"
    )

    @contextlib.contextmanager
    def allowed(self) -> Iterator[None]:
        self._allowed += 1
        try:
            yield
        finally:
            self._allowed -= 1

    @contextlib.contextmanager
    def watching(self, item: pytest.Item) -> Iterator[None]:
        if item.get_closest_marker("system") is not None:
            yield
            return
        self.test, self.started = item.nodeid, []
        try:
            yield
        finally:
            self.test = None
        if self.started:
            pytest.fail(f"{item.nodeid} started a process, {self.started[0]}: {self._advice}")


_processes = _ProcessGuard()
sys.addaudithook(_processes)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _processes.watching(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _processes.watching(item):
        return (yield)
