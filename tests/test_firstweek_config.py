"""Issue #23, items 4 and 7: configs that cannot run, or that mean something other than they
say, are refused by ``check-config`` (exit 2, file:line: key), and never with a secret in the
message."""

from __future__ import annotations

import pytest

from alerts.config.edit import EditRefused, clean_term
from tests.support import MINIMAL_WATCHLISTS, ROOT, cli

TOKEN = "123456789:AAExampleExampleExampleExampleExample1"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/abcdefSECRET"
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
SECRETS = (TOKEN, WEBHOOK, SLACK_TOKEN, "abcdefSECRET", "notaurl", "xoxp-")
TELEGRAM = 'destinations:\n  telegram:\n    chat_id: "@chipwatch"\n'
NO_ENV = {"TELEGRAM_BOT_TOKEN": "", "SLACK_WEBHOOK_URL": "", "SLACK_BOT_TOKEN": ""}


def _check(tmp_path, text: str, env: dict[str, str] | None = None, *args: str):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path, cli("check-config", "--config", str(path), *args, env={**NO_ENV, **(env or {})})


def _refused(result, path, line: int, key: str, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{path}:{line}: {key}: " in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout


# --- item 4: check-config checks what run needs -----------------------------------------------


def test_item4_check_config_refuses_telegram_without_token(tmp_path):
    path, result = _check(tmp_path, MINIMAL_WATCHLISTS + TELEGRAM)
    line = MINIMAL_WATCHLISTS.count("\n") + 2
    _refused(result, path, line, "destinations.telegram", "TELEGRAM_BOT_TOKEN is not set")
    # …and run/once say the same, at the same place, before polling anything
    once = cli("once", "--config", str(path), env=NO_ENV)
    assert once.returncode == 2 and f"{path}:{line}: destinations.telegram: " in once.stderr


def test_item4_check_config_refuses_a_malformed_telegram_token(tmp_path):
    path, result = _check(
        tmp_path, MINIMAL_WATCHLISTS + TELEGRAM, {"TELEGRAM_BOT_TOKEN": "AAExample:123xoxp-"}
    )
    line = MINIMAL_WATCHLISTS.count("\n") + 2
    _refused(result, path, line, "destinations.telegram", "does not look like a bot token")


def test_item4_check_config_accepts_a_well_formed_token(tmp_path):
    path, result = _check(tmp_path, MINIMAL_WATCHLISTS + TELEGRAM, {"TELEGRAM_BOT_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert "destinations: telegram" in result.stdout


def test_item4_check_config_refuses_a_slack_webhook_that_is_not_a_url(tmp_path):
    text = MINIMAL_WATCHLISTS + "destinations:\n  slack: {}\n"
    line = MINIMAL_WATCHLISTS.count("\n") + 2
    path, result = _check(tmp_path, text, {"SLACK_WEBHOOK_URL": "notaurl"})
    _refused(result, path, line, "destinations.slack", "not an incoming webhook URL")
    # once refuses at once, instead of retrying it as a network error for a minute
    once = cli("once", "--config", str(path), env={**NO_ENV, "SLACK_WEBHOOK_URL": "notaurl"})
    assert once.returncode == 2 and "SLACK_WEBHOOK_URL is not an incoming webhook" in once.stderr
    other = "https://example.com/services/T000/B000/abcdefSECRET"
    path, result = _check(tmp_path, text, {"SLACK_WEBHOOK_URL": other})
    _refused(result, path, line, "destinations.slack", "its host is example.com")
    path, result = _check(tmp_path, text, {"SLACK_WEBHOOK_URL": WEBHOOK})
    assert result.returncode == 0, result.stderr


def test_item4_check_config_takes_a_webhook_on_the_configured_host(tmp_path):
    text = MINIMAL_WATCHLISTS + 'destinations:\n  slack: {webhook_host: "127.0.0.1:8099"}\n'
    path, result = _check(
        tmp_path, text, {"SLACK_WEBHOOK_URL": "http://127.0.0.1:8099/services/T/B/X"}
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "section",
    ["  telegram: {}\n", "  telegram:\n    admins: [42]\n", "  telegram:\n"],
    ids=["empty", "admins_without_chat_id", "null"],
)
def test_item4_check_config_refuses_telegram_without_chat_id(tmp_path, section):
    path, result = _check(tmp_path, MINIMAL_WATCHLISTS + "destinations:\n" + section)
    line = MINIMAL_WATCHLISTS.count("\n") + 2
    _refused(result, path, line, "destinations.telegram", "missing required key 'chat_id'")


@pytest.mark.parametrize(
    "name,value,key",
    [
        ("TELEGRAM_BOT_TOKEN", TOKEN, "destinations.telegram"),
        ("SLACK_WEBHOOK_URL", WEBHOOK, "destinations.slack"),
        ("SLACK_BOT_TOKEN", SLACK_TOKEN, "destinations.slack.channel"),
    ],
)
def test_item4_check_config_refuses_a_token_without_its_destination(tmp_path, name, value, key):
    # the docker-compose path as shipped: a token in the environment, no destination in the file
    text = MINIMAL_WATCHLISTS + "destinations:\n  # telegram:\n  #   chat_id: '@x'\n"
    path, result = _check(tmp_path, text, {name: value})
    line = MINIMAL_WATCHLISTS.count("\n") + 1
    _refused(result, path, line, key, f"{name} is set", "alerts go to console only")


def test_item4_a_token_without_its_destination_is_a_warning_when_running(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        f"database: {tmp_path / 'cw.db'}\nfeeds: []\n" + MINIMAL_WATCHLISTS, encoding="utf-8"
    )
    result = cli("once", "--config", str(path), env={**NO_ENV, "TELEGRAM_BOT_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert "WARNING chipwatch secret_unused " in result.stderr
    assert "TELEGRAM_BOT_TOKEN is set, but the config has no" in result.stderr
    assert TOKEN not in result.stderr


@pytest.mark.parametrize(
    "env,fragment",
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-1234567890-0987654321"}, "does not look like a Slack bot"),
        ({"SLACK_BOT_TOKEN": "not a token"}, "does not look like a Slack bot"),
    ],
    ids=["missing", "user_token", "malformed"],
)
def test_item4_check_config_refuses_a_slack_app_without_a_bot_token(tmp_path, env, fragment):
    text = MINIMAL_WATCHLISTS + "destinations:\n  slack:\n    channel: '#chip-news'\n"
    path, result = _check(tmp_path, text, env)
    line = MINIMAL_WATCHLISTS.count("\n") + 3
    _refused(result, path, line, "destinations.slack.channel", fragment)


def test_item4_check_config_offline_skips_the_environment(tmp_path):
    text = MINIMAL_WATCHLISTS + TELEGRAM
    path, result = _check(tmp_path, text, {}, "--offline")
    assert result.returncode == 0, result.stderr
    # the file itself is still checked
    path, result = _check(tmp_path, MINIMAL_WATCHLISTS + "destinations:\n  telegram: {}\n")
    assert result.returncode == 2
    path.write_text(MINIMAL_WATCHLISTS + "destinations:\n  telegram: {}\n", encoding="utf-8")
    assert cli("check-config", "--offline", "--config", str(path)).returncode == 2


def test_item4_the_shipped_config_passes_offline_and_with_no_secrets():
    for args in (("--offline",), ()):
        result = cli("check-config", "--config", str(ROOT / "config.yaml"), *args, env=NO_ENV)
        assert result.returncode == 0, result.stderr


# --- item 7: mistakes that used to pass validation ------------------------------------------

FEEDS = "feeds:\n  - name: A\n    url: {a}\n  - name: B\n    url: {b}\n"
GOOD_A, GOOD_B = "https://a.example/feed.xml", "https://b.example/feed.xml"


@pytest.mark.parametrize(
    "text,line,key,fragment",
    [
        (
            "watchlists:\n  chips:\n    - H20\n      - H200\n  companies: [Nvidia]\n",
            3,
            "watchlists.chips[0]",
            "looks like two list items run together",
        ),
        (
            "watchlists:\n  chips:\n    - term: H20\n      aliases:\n        - H20E\n"
            "          - H20X\n",
            5,
            "watchlists.chips[0].aliases[0]",
            "looks like two list items run together",
        ),
        (
            "watchlists:\n  chips:\n    - H20\n    - '!!!'\n",
            4,
            "watchlists.chips[1]",
            "needs a letter or a digit",
        ),
        (
            "watchlists:\n  chips:\n    - term: H20\n      exclude: ['--']\n",
            4,
            "watchlists.chips[0].exclude[0]",
            "needs a letter or a digit",
        ),
        (
            'watchlists:\n  chips:\n    - "H20\\nH200"\n',
            3,
            "watchlists.chips[0]",
            "line break",
        ),
    ],
    ids=["over_indented_item", "over_indented_alias", "no_letter", "no_letter_exclude", "newline"],
)
def test_item7_check_config_refuses_terms_that_match_nothing_meant(
    tmp_path, text, line, key, fragment
):
    path, result = _check(tmp_path, text)
    _refused(result, path, line, key, fragment)


@pytest.mark.parametrize(
    "a,b,key,fragment",
    [
        ("http://exa mple.com/feed.xml", GOOD_B, "feeds[0].url", "must not contain spaces"),
        ("https://a.example:99999/feed.xml", GOOD_B, "feeds[0].url", "bad port"),
        ("https://a.example:0/feed.xml", GOOD_B, "feeds[0].url", "not a valid host or port"),
        ("https://a_b!.example/feed.xml", GOOD_B, "feeds[0].url", "not a valid host"),
        (GOOD_A, GOOD_A, "feeds[1].url", "the same URL as feed 'A'"),
        (GOOD_A, "HTTPS://A.example:443/feed.xml/", "feeds[1].url", "the same URL as feed 'A'"),
    ],
    ids=["space", "port_99999", "port_0", "bad_host", "same_url", "same_url_spelt_otherwise"],
)
def test_item7_check_config_refuses_feed_urls_that_cannot_be_polled(tmp_path, a, b, key, fragment):
    path, result = _check(tmp_path, FEEDS.format(a=a, b=b) + MINIMAL_WATCHLISTS)
    line = 3 if key.startswith("feeds[0]") else 5
    _refused(result, path, line, key, fragment)


def test_item7_watch_and_the_config_share_one_term_rule(tmp_path):
    for raw, fragment in (("!!!", "needs a letter or a digit"), ("x" * 61, "at most 60")):
        with pytest.raises(EditRefused, match=fragment):
            clean_term(raw)
        path, result = _check(tmp_path, f"watchlists:\n  chips:\n    - H20\n    - '{raw}'\n")
        _refused(result, path, 4, "watchlists.chips[1]", fragment)
    assert clean_term("  Ascend   910C ") == "Ascend 910C"
