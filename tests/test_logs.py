"""Structured events and secret redaction at the log handler."""

from __future__ import annotations

import io
import logging

import httpx

from alerts.logs import REDACTED, event, setup_logging
from alerts.loopback import FeedServer, Route

TOKEN = "123456789:AAExampleExampleExampleExampleExample1"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/abcdefSECRET"
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"


def test_event_formats_key_values_and_quotes_spaces():
    stream = io.StringIO()
    handler = setup_logging(logging.INFO, stream=stream)
    try:
        event(
            logging.getLogger("chipwatch.test"),
            "feed_polled",
            status="not_modified",
            feed="Tom's Hardware",
            skipped=None,
        )
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().strip()
    assert line.endswith('feed_polled status=not_modified feed="Tom\'s Hardware"')
    assert "skipped" not in line


def test_tokens_in_httpx_debug_logs_are_redacted(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", WEBHOOK)
    stream = io.StringIO()
    handler = setup_logging(logging.DEBUG, stream=stream)
    try:
        with FeedServer() as server:
            url = server.route(f"/bot{TOKEN}/getMe", Route(body=b"{}"))
            httpx.get(url)
        logging.getLogger("chipwatch.test").error("webhook %s failed", WEBHOOK)
        logging.getLogger("slack_sdk").debug("headers: {'Authorization': 'Bearer %s'}", SLACK_TOKEN)
        try:
            raise RuntimeError(f"boom at {url}")
        except RuntimeError:
            logging.getLogger("chipwatch.test").exception("crash")
    finally:
        logging.getLogger().removeHandler(handler)
    logged = stream.getvalue()
    assert "HTTP Request: GET" in logged, "httpx logged the request at DEBUG"
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged
    assert WEBHOOK not in logged and "abcdefSECRET" not in logged
    assert SLACK_TOKEN not in logged and "AbCdEfGhIjKlMnOp" not in logged
    assert logged.count(REDACTED) >= 4


def test_json_logs_carry_the_same_events_and_redaction(tmp_path, serve, monkeypatch):
    """`--log-format json` (or `log_format: json` in the config): one JSON object a line, the
    same event names and fields, secrets redacted in messages and tracebacks alike."""
    import json as _json

    from tests.support import cli, rss, write_config

    token_url = serve(rss([]), suffix=f"-{TOKEN}.xml")
    config = write_config(
        tmp_path,
        [("Missing", token_url.replace(".xml", "-gone.xml")), ("Tom's Hardware", serve(rss([])))],
    )
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": WEBHOOK}
    # -v: httpx then logs every request URL, and one of them carries the token.
    for args, path in (
        (["-v", "--log-format", "json", "once", "--config", str(config)], config),
        (["-v", "once", "--config", str(config)], None),
    ):
        if path is None:  # the same, asked for in the config file
            config.write_text(config.read_text() + "log_format: json\n")
        out = cli(*args, env=env)
        assert out.returncode == 0, out.stderr
        lines = [_json.loads(line) for line in out.stderr.splitlines() if line.strip()]
        polled = {r["feed"]: r for r in lines if r.get("event") == "feed_polled"}
        assert polled["Missing"]["status"] == "error" and polled["Missing"]["error"] == "http_404"
        assert polled["Tom's Hardware"]["status"] in ("ok", "unchanged", "not_modified")
        assert all({"time", "level", "logger"} <= r.keys() for r in lines)
        assert TOKEN not in out.stderr
        assert any("[REDACTED]" in r.get("message", "") for r in lines), "httpx's line, redacted"
