"""Issue #23, item 8: the smaller things a user meets (the command-line and operator ones; the
bot-command ones are another change's)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from alerts.config import load_config
from alerts.logs import event, setup_logging
from alerts.match import compile_matcher
from alerts.runtime import Runtime
from alerts.store import open_store
from tests.support import (
    CHANNEL,
    ROOT,
    ago,
    cli,
    rss,
    shipped_config,
    shipped_watchlists,
    write_config,
)
from tests.test_commands import Bot

SHIPPED = shipped_config()
H200 = "China approves first imports of Nvidia H200 AI chips"


# --- /watchlist: every rule says what it is ---------------------------------------------------


async def test_item8_watchlist_describes_every_rule_relation_rules_too(
    tmp_path, serve, telegram, monkeypatch
):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", telegram.token)
    path = write_config(
        tmp_path,
        [("Wire", serve(rss([])))],
        watchlists=shipped_watchlists()
        + f'\ndestinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
        f"    api_base_url: {telegram.base_url}\n",
    )
    async with Bot(path, telegram) as bot:
        reply = await bot.ask(424242, "/watchlist")
    lines = {line.split(":", 1)[0]: line for line in reply.split("\n") if line.startswith("• ")}
    # (shipped_watchlists() leaves out the rules limited to feed tags: these feeds have none)
    untagged = [rule for rule in SHIPPED.rules if not rule.tags]
    assert set(lines) == {f"• {rule.name}" for rule in untagged}
    for rule in untagged:
        line = lines[f"• {rule.name}"]
        assert rule.description and rule.description in line, rule.name
        if rule.relation:  # the conditions too, which were the empty part
            assert f"within {rule.within} words" in line, line
    assert lines["• chip-sale"] == (
        '• chip-sale: a chip traded with China or another party of concern ("Nvidia can sell '
        'H200 to China") — chips · trade_actions · china_parties or jurisdictions or '
        "chip_buyers, within 8 words"
    )


def test_item8_a_rule_without_description_is_described_by_its_conditions(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "watchlists:\n  chips: [H20]\n  companies: [Nvidia]\n"
        "rules:\n  - name: pair\n    relation: [chips, companies]\n    within: 3\n",
        encoding="utf-8",
    )
    [rule] = load_config(path).rules
    assert rule.describe() == "chips · companies, within 3 words"


# --- plurals of short terms ------------------------------------------------------------------


def test_item8_terms_of_three_letters_match_their_plurals(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "watchlists:\n  export_terms: [ban, GPU]\n  chips: [H20]\n"
        "  companies:\n    - term: Arm\n      case_sensitive: true\n  governments: [US]\n",
        encoding="utf-8",
    )
    config = load_config(path)
    matcher = compile_matcher(config.watchlists, config.rules)

    def terms(text: str) -> set[str]:
        return {m.term for m in matcher.match(text).matches}

    assert terms("US bans Nvidia H20 exports") == {"ban", "H20", "US"}
    assert terms("Nvidia GPUs") == {"GPU"}
    assert terms("Arm unveils chip") == {"Arm"}
    # a case-sensitive name has no plural: a title-case headline's "Arms" is not the company
    assert terms("US Arms Sales") == {"US"}
    assert terms("arms race") == set()
    assert terms("USS Enterprise") == set(), "two-letter terms have no plural"


# --- once --dry-run ----------------------------------------------------------------------------


def _feed(serve, *titles: str) -> str:
    return serve(
        rss(
            [
                {
                    "title": t,
                    "link": f"https://n.example/{i}",
                    "guid": str(i),
                    "date": ago(minutes=5),
                }
                for i, t in enumerate(titles)
            ]
        )
    )


def test_item8_a_dry_run_creates_no_database_and_no_lock(tmp_path, serve):
    config = write_config(tmp_path, [("Wire", _feed(serve, H200))])
    dry = cli("once", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert H200 in dry.stdout and "dry_run=yes (nothing recorded or sent)" in dry.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"], "nothing created"


def test_item8_a_dry_run_reads_an_existing_database_and_changes_nothing(tmp_path, serve):
    config = write_config(tmp_path, [("Wire", _feed(serve, H200))])
    assert cli("once", "--config", str(config)).returncode == 0

    def files() -> dict[str, bytes]:
        # SQLite's own -wal and -shm may appear beside a file read read-only; its content, the
        # lock and every other file stay as they were
        return {
            p.name: p.read_bytes()
            for p in tmp_path.iterdir()
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        }

    before = files()
    dry = cli("once", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert H200 not in dry.stdout, "it knows the item is seen: it read the database"
    # and it did fetch the feed: a dry run that fetched nothing is quiet too
    assert "summary: feeds ok=1 failed=0 new_items=0 alerts=0 dry_run=yes" in dry.stdout
    assert files() == before


# --- a closed pipe -------------------------------------------------------------------------------


@pytest.mark.system
def test_item8_a_closed_pipe_ends_quietly_without_a_traceback(tmp_path):
    """``… | head -1``: the reader goes after one line."""
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"title": "Nvidia H20 export controls"}\n' * 20_000, encoding="utf-8")
    # stdin from a file, not a pipe we write: a full stdout pipe must not stall our own writes
    with lines.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py"), "match", "--jsonl"],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b'{"alert": true')
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 141  # as a shell reports a tool ended by SIGPIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --- usage errors exit 2 -------------------------------------------------------------------------


def test_item8_match_without_a_headline_is_a_usage_error_exit_2():
    result = cli("match", "--config", str(ROOT / "config.yaml"))
    assert result.returncode == 2
    assert "match: give a headline" in result.stderr


# --- the progress line of once ---------------------------------------------------------------


def _once_on_a_terminal(config, *extra: str) -> tuple[int, str]:
    """``once`` with stdout and stderr on a terminal (a pseudo-terminal): its exit status and
    everything the terminal showed."""
    controller, terminal = pty.openpty()
    # a terminal 100 columns wide, as a real one is (a new pseudo-terminal has no size)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), *extra, "once", "--config", str(config)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    shown = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    return proc.wait(10), shown.decode(errors="replace")


@pytest.mark.system
def test_item8_once_shows_its_progress_on_a_terminal(tmp_path, serve):
    config = write_config(
        tmp_path, [("Wire", _feed(serve, H200)), ("Other", _feed(serve, "Farm exports surge"))]
    )
    code, shown = _once_on_a_terminal(config)
    assert code == 0, shown
    assert "polling feeds" in shown and "2/2" in shown, shown
    assert "summary: feeds ok=2" in shown
    # JSON logs: not a line of it, even on a terminal
    code, shown = _once_on_a_terminal(config, "--log-format", "json")
    assert code == 0, shown
    assert "polling feeds" not in shown, shown
    for line in shown.splitlines():
        if line.startswith("{"):
            json.loads(line)


def test_item8_once_shows_no_progress_when_not_on_a_terminal(tmp_path, serve):
    config = write_config(tmp_path, [("Wire", _feed(serve, H200))])
    result = cli("once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "polling feeds" not in result.stdout + result.stderr


# --- JSON logs keep their types ------------------------------------------------------------------


def test_item8_json_logs_keep_numbers_and_booleans_typed(capsys):
    handler = setup_logging(logging.INFO, sys.stderr, json_lines=True)
    try:
        event(
            logging.getLogger("chipwatch.test"),
            "feed_polled",
            feed="Wire",
            new=3,
            seconds=0.25,
            first_poll=True,
            code="007",
            token="123456789:AAExampleExampleExampleExampleExample1",
        )
    finally:
        logging.getLogger().removeHandler(handler)
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["event"] == "feed_polled"
    assert (record["new"], record["seconds"], record["first_poll"]) == (3, 0.25, True)
    assert record["feed"] == "Wire" and record["code"] == "007", "strings stay strings"
    assert record["token"] == "[REDACTED]"


# --- a deleted config while running ------------------------------------------------------------


async def test_item8_a_deleted_config_is_said_once_and_the_last_good_one_kept(tmp_path, caplog):
    path = write_config(tmp_path, [])
    store = open_store(tmp_path / "cw.db")
    runtime = Runtime(load_config(path), store)
    try:
        text = path.read_text()
        path.unlink()
        with caplog.at_level(logging.WARNING, logger="chipwatch"):
            first = await runtime.reload_if_changed()
            again = await runtime.reload_if_changed()
        assert first.status == "invalid" and "the config file is gone" in first.error
        assert again.status == "unchanged"
        assert caplog.text.count("config_missing") == 1
        assert 'keeping="the last good config"' in caplog.text
        assert runtime.config.path == path and runtime.matcher is not None
        path.write_text(text.replace('listen: ""', 'listen: ""\nlog_format: json'))
        assert (await runtime.reload_if_changed()).status == "applied"
        assert runtime.config.log_format == "json"
    finally:
        await runtime.aclose()
        store.close()


# --- match explains a vetoed term ----------------------------------------------------------------


def test_item8_match_says_a_term_was_vetoed_by_its_exclude_list():
    result = cli("match", "--config", str(ROOT / "config.yaml"), "Hyundai", "H200", "minivan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "no alert: the terms found were vetoed by their exclude lists"
    assert "  chips: H200 ← 'H200' vetoed: 'hyundai' is on its exclude list" in lines
