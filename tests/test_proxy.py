"""Feeds through a proxy (``proxy:`` per feed or under ``poll:``): SOCKS5 and HTTP proxies on
loopback, the credentials kept out of every log line, a proxy's failure recorded against the
feed."""

from __future__ import annotations

import sqlite3

import pytest

from alerts.logs import redact_credentials
from tests.fakes.proxies import HttpProxy, Socks5Proxy
from tests.support import ago, cli, rss, write_config

PASSWORD = "s3cret-Pw%21"  # percent-encoded "!": the proxy sees "s3cret-Pw!"


def _news(title: str) -> str:
    return rss(
        [
            {
                "title": title,
                "link": f"https://news.example/{abs(hash(title))}",
                "date": ago(minutes=5),
            }
        ]
    )


@pytest.fixture
def socks():
    with Socks5Proxy(username="alice", password="s3cret-Pw!") as proxy:
        yield proxy


def _with_poll_proxy(path, proxy: str):
    text = path.read_text(encoding="utf-8").replace("poll:\n", f'poll:\n  proxy: "{proxy}"\n', 1)
    path.write_text(text, encoding="utf-8")
    return path


def _feed_proxy(path, url: str, proxy: str):
    text = path.read_text(encoding="utf-8")
    text = text.replace(f'    url: "{url}"', f'    url: "{url}"\n    proxy: "{proxy}"', 1)
    path.write_text(text, encoding="utf-8")
    return path


def _states(tmp_path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(tmp_path / "cw.db") as db:
        rows = db.execute("SELECT name, last_status, last_error FROM feeds").fetchall()
    return {name: (status, error) for name, status, error in rows}


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_a_feed_polls_through_a_socks5_proxy_and_its_password_is_never_logged(
    tmp_path, serve, socks, scheme
):
    url = serve(_news("US widens export controls on Nvidia H20 chips"))
    proxy = f"{scheme}://alice:{PASSWORD}@127.0.0.1:{socks.port}"
    config = _with_poll_proxy(write_config(tmp_path, [("Wire", url)]), proxy)
    # -v: debug logging, where httpcore traces the SOCKS handshake with its credentials.
    ran = cli("-v", "once", "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "summary: feeds ok=1 failed=0" in ran.stdout
    assert "US widens export controls on Nvidia H20 chips" in ran.stdout
    port = int(url.split(":")[2].split("/")[0])
    assert [(r["user"], r["host"], r["port"]) for r in socks.requests] == [
        ("alice", "127.0.0.1", port)
    ]
    assert "setup_socks5_connection" in ran.stderr  # the trace that would have shown it
    for output in (ran.stdout, ran.stderr):
        assert "s3cret-Pw" not in output
    checked = cli("check-config", "--config", str(config))
    assert f"proxy: {scheme}://alice:[REDACTED]@127.0.0.1:{socks.port} for 1 feed(s)" in (
        checked.stdout
    )
    assert "s3cret" not in checked.stdout


def test_a_refused_proxy_is_that_feeds_failure_and_a_direct_feed_still_polls(
    tmp_path, serve, socks
):
    through = serve(_news("US adds SMIC units to entity list over H20 chips"))
    direct = serve(_news("US tightens export controls on Nvidia H20 chips to China"))
    config = write_config(tmp_path, [("Proxied", through), ("Direct", direct)])
    _with_poll_proxy(config, f"socks5://alice:wrong-Password@127.0.0.1:{socks.port}")
    _feed_proxy(config, direct, "")  # this one goes direct
    ran = cli("-v", "once", "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "summary: feeds ok=1 failed=1" in ran.stdout
    assert "US tightens export controls on Nvidia H20 chips to China" in ran.stdout
    states = _states(tmp_path)
    assert states["Direct"][0] == "ok"
    status, error = states["Proxied"]
    assert status == "error" and error.startswith("proxy: ") and "username/password" in error
    assert {"refused": "alice"} in socks.requests
    assert "wrong-Password" not in ran.stdout + ran.stderr


def test_a_feed_polls_through_an_http_proxy_of_its_own(tmp_path, serve):
    with HttpProxy() as proxy:
        url = serve(_news("China approves first imports of Nvidia H200 AI chips"))
        other = serve(_news("Huawei Ascend 910C export curbs tighten"))
        config = write_config(tmp_path, [("Proxied", url), ("Direct", other)])
        _feed_proxy(config, url, f"http://bob:hunter2-pw@127.0.0.1:{proxy.port}")
        ran = cli("once", "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "summary: feeds ok=2 failed=0" in ran.stdout
    assert [r["target"] for r in proxy.requests] == [url]  # only the feed that names it
    assert "hunter2" not in ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("ftp://carol:pw-ftp-1@127.0.0.1:21", "starts with http://, https://, socks5:// or"),
        ("socks5://carol:pw-noport@127.0.0.1", "names a host and a port"),
        ("socks5://127.0.0.1:99999", "not a proxy URL"),
        ("http://127.0.0.1:3128/path", "nothing after"),
    ],
)
def test_a_bad_proxy_is_a_config_error_with_its_line_and_no_password(tmp_path, proxy, message):
    config = _with_poll_proxy(
        write_config(tmp_path, [("Wire", "https://example.com/f.xml")]), proxy
    )
    ran = cli("check-config", "--config", str(config))
    assert ran.returncode == 2
    assert "config.yaml:5: poll.proxy: " in ran.stderr and message in ran.stderr
    assert "pw-" not in ran.stderr


def test_any_urls_password_is_redacted_and_nothing_else():
    assert redact_credentials("via socks5h://u:p%40ss@proxy:1080 ok") == (
        "via socks5h://u:[REDACTED]@proxy:1080 ok"
    )
    assert redact_credentials("postgresql://me:pw@db/x") == "postgresql://me:[REDACTED]@db/x"
    for untouched in ("https://medium.com/feed/@chips", "https://host:443/feed/@user"):
        assert redact_credentials(untouched) == untouched
