"""Structured events and secret redaction at the log handler."""

from __future__ import annotations

import io
import logging

import httpx

from alerts.logs import REDACTED, event, setup_logging
from alerts.loopback import FeedServer, Route

TOKEN = "123456789:AAExampleExampleExampleExampleExample1"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/abcdefSECRET"


def test_event_formats_key_values_and_quotes_spaces():
    stream = io.StringIO()
    handler = setup_logging(logging.INFO, stream=stream)
    try:
        event(logging.getLogger("chipwatch.test"), "feed_polled", status="not_modified",
              feed="Tom's Hardware", skipped=None)
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
    assert logged.count(REDACTED) >= 3
