"""PostgreSQL as the database: the URL in the config or the environment, the password from the
URL, ``PGPASSWORD`` or ``PGPASSFILE`` and never shown, and the whole bot
(``once``, ``status``, ``backtest``) against a real server."""

from __future__ import annotations

import io
import logging
import socket

import pytest

from alerts.config import POSTGRES_SCHEMES, load_config
from alerts.errors import ConfigError, StoreError
from alerts.logs import REDACTED, RedactingFilter, redact_credentials
from alerts.store import open_store
from tests.pg_server import SECRET_PASSWORD, SECRET_USER
from tests.support import CHANNEL, ago, cli, rss, write_config

WATCH = "watchlists:\n  chips: [H20]\n  companies: [Nvidia]\n  export_terms: [export controls]\n"


def _secret_url(postgres, database: str, password: str | None = SECRET_PASSWORD) -> str:
    auth = f"{SECRET_USER}:{password}" if password is not None else SECRET_USER
    return f"postgresql://{auth}@127.0.0.1:{postgres.port}/{database}"


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


# --- config ------------------------------------------------------------------------------------


def test_database_url_in_the_config_and_the_environment(tmp_path):
    config = write_config(tmp_path, [], database="postgresql://cw@db.example:5433/chipwatch")
    assert load_config(config, environ={}).database == "postgresql://cw@db.example:5433/chipwatch"
    assert (
        load_config(config, environ={"CHIPWATCH_DATABASE": "postgres://h/cw"}).database
        == "postgres://h/cw"
    )
    assert (
        load_config(config, environ={"CHIPWATCH_DATABASE": "other.db"}).database.name == "other.db"
    ), "a path in the environment is still a SQLite file"
    assert load_config(write_config(tmp_path, []), environ={}).database == tmp_path / "cw.db"


@pytest.mark.parametrize(
    "value,message",
    [
        ("mysql://cw@db/chipwatch", "must be a SQLite file or a postgresql:// URL, got a mysql://"),
        ("postgresql://cw:hunter22@db:99999/chipwatch", "bad port"),
        # libpq reads only lower-case schemes; the store would have taken this for a file name
        ("PostgreSQL://cw:hunter22@db/chipwatch", "got a PostgreSQL:// URL"),
    ],
)
def test_a_bad_database_url_names_file_line_and_key_without_the_password(tmp_path, value, message):
    config = write_config(tmp_path, [], database=value)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(config, environ={})
    assert f"{config}:1" in str(err.value) and "database" in str(err.value)
    assert "hunter22" not in str(err.value)
    out = cli("check-config", "--config", str(config))
    assert out.returncode == 2 and "database" in out.stderr and "hunter22" not in out.stderr
    with pytest.raises(ConfigError, match="CHIPWATCH_DATABASE"):
        load_config(write_config(tmp_path, []), environ={"CHIPWATCH_DATABASE": value})


@pytest.mark.parametrize("scheme", POSTGRES_SCHEMES)
def test_every_scheme_the_config_takes_has_its_password_redacted(tmp_path, scheme):
    url = f"{scheme}://cw:hunter22@db.example/chipwatch"
    assert load_config(write_config(tmp_path, [], database=url), environ={}).database == url
    assert redact_credentials(f"cannot open {url}") == (
        f"cannot open {scheme}://cw:{REDACTED}@db.example/chipwatch"
    )


def test_check_config_shows_the_database_url_without_its_password(tmp_path):
    config = write_config(tmp_path, [], database="postgresql://cw:hunter22@db.example/chipwatch")
    out = cli("check-config", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert f"database: postgresql://cw:{REDACTED}@db.example/chipwatch" in out.stdout
    assert "hunter22" not in out.stdout + out.stderr


# --- redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,shown",
    [
        (
            "cannot open postgresql://cw:hunter22@db:5432/x now",
            f"cannot open postgresql://cw:{REDACTED}@db:5432/x now",
        ),
        ("POSTGRES://cw:p%40ss@db/x", f"POSTGRES://cw:{REDACTED}@db/x"),
        (
            "host=db user=cw password=hunter22 dbname=x",
            f"host=db user=cw password={REDACTED} dbname=x",
        ),
        ("postgresql://cw@db/x?password=hunter22", f"postgresql://cw@db/x?password={REDACTED}"),
        ("postgresql://cw@db/x", "postgresql://cw@db/x"),  # no password: nothing to hide
    ],
)
def test_database_passwords_are_redacted(text, shown):
    assert redact_credentials(text) == shown


def test_the_log_filter_hides_database_passwords_in_messages_and_tracebacks(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "from-the-environment")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("chipwatch.test_postgres")
    log.addHandler(handler)
    try:
        log.warning("connecting to %s", "postgresql://cw:hunter22@db/x")
        try:
            raise RuntimeError("bad postgresql://cw:hunter22@db/x, PGPASSWORD=from-the-environment")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "hunter22" not in text and "from-the-environment" not in text
    assert text.startswith(f"connecting to postgresql://cw:{REDACTED}@db/x\n")
    assert f"RuntimeError: bad postgresql://cw:{REDACTED}@db/x, PGPASSWORD={REDACTED}" in text


# --- passwords ---------------------------------------------------------------------------------


def test_password_from_the_url_the_environment_or_a_passfile(postgres, tmp_path, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    database = _name(postgres.new_database())
    open_store(_secret_url(postgres, database)).close()

    with pytest.raises(StoreError) as err:
        open_store(_secret_url(postgres, database, password="wrong-one"))
    assert "password authentication failed" in str(err.value)
    assert "wrong-one" not in str(err.value) and REDACTED in str(err.value)

    without = _secret_url(postgres, database, password=None)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "missing"))
    with pytest.raises(StoreError, match="password"):
        open_store(without)
    monkeypatch.setenv("PGPASSWORD", SECRET_PASSWORD)
    open_store(without).close()
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:{database}:{SECRET_USER}:{SECRET_PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    open_store(without).close()


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    config = write_config(
        tmp_path,
        [],
        watchlists=WATCH,
        database=f"postgresql://cw:hunter22@127.0.0.1:{port}/chipwatch",
    )
    out = cli("status", "--config", str(config))
    assert out.returncode == 1 and "cannot connect" in out.stderr
    assert "hunter22" not in out.stderr


# --- the whole bot -----------------------------------------------------------------------------


def test_once_status_and_backtest_end_to_end_on_postgresql(postgres, tmp_path, serve, telegram):
    url = _secret_url(postgres, _name(postgres.new_database()))
    feed = serve(
        rss(
            [
                {
                    "title": "Nvidia H20 export controls tightened",
                    "guid": "p1",
                    "link": "https://n.example/p1",
                    "date": ago(minutes=3),
                },
                {
                    "title": "Chip fab opens in Ohio",
                    "guid": "p2",
                    "link": "https://n.example/p2",
                    "date": ago(minutes=2),
                },
            ]
        )
    )
    config = write_config(
        tmp_path,
        [("Wire", feed)],
        watchlists=WATCH,
        extra=(
            f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
            f"    api_base_url: {telegram.base_url}\n"
        ),
    )
    env = {"CHIPWATCH_DATABASE": url, "TELEGRAM_BOT_TOKEN": telegram.token}

    first = cli("-v", "once", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    assert "new_items=2 alerts=1 sent=1 pending=0" in first.stdout
    assert [m["shown_text"].split("\n")[0] for m in telegram.sent] == [
        "Nvidia H20 export controls tightened"
    ]
    again = cli("once", "--config", str(config), env=env)
    assert "new_items=0 alerts=0 sent=0 pending=0" in again.stdout, again.stderr
    assert len(telegram.sent) == 1, "seen items are remembered in PostgreSQL"
    assert not (tmp_path / "cw.db").exists(), "nothing went to the SQLite file"

    status = cli("status", "--config", str(config), env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "feeds: 1 ok" in status.stdout
    assert "Nvidia H20 export controls tightened" in status.stdout
    backtest = cli("backtest", "--config", str(config), "--since", "1d", env=env)
    assert backtest.returncode == 0, backtest.stderr
    for out in (first, again, status, backtest):
        assert SECRET_PASSWORD not in out.stdout + out.stderr
