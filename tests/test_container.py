"""The Docker image's layout, without Docker: the application in a read-only directory (as
root-owned ``/app`` is to the image's user), a writable data directory (the ``/data`` volume),
and ``docker-entrypoint.sh`` run as the image runs it, by a process that read-only files bind
(root drops the capabilities that would let it write them anyway)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CHANNEL, ROOT, RunningBot, rss
from tests.test_ops import _wait, _without_root_overrides

ADMIN = 111

CONFIG = """database: unused.db                # the image's CHIPWATCH_DATABASE wins
feeds:
  - name: Wire
    url: "{url}"
watchlists:
  chips: [H20]
  companies: [Nvidia]
  export_terms: [export controls]
destinations:
  telegram:
    chat_id: "{channel}"
    api_base_url: {base_url}
    admins: [{admin}]
"""


def _image(tmp_path: Path, own_config: str | None = None) -> Path:
    """What the Dockerfile copies into /app, made read-only (with ``own.yaml``, a config the
    old image kept there, when given)."""
    app = tmp_path / "app"
    shutil.copytree(ROOT / "alerts", app / "alerts", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("bot.py", "config.yaml", "docker-entrypoint.sh"):
        shutil.copy2(ROOT / name, app / name)
    if own_config is not None:
        (app / "own.yaml").write_text(own_config, encoding="utf-8")
    for path in [app, *app.rglob("*")]:
        path.chmod(0o555 if path.is_dir() or path.name.endswith(".sh") else 0o444)
    return app


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN")
    }
    env.update(
        CHIPWATCH_CONFIG=str(data / "config.yaml"),
        CHIPWATCH_DATABASE=str(data / "chipwatch.db"),
        CHIPWATCH_OPS_LISTEN="",
        PYTHON=sys.executable,  # the image's python (with the locked requirements)
        PYTHONDONTWRITEBYTECODE="1",
        **extra,
    )
    return env


def _entrypoint(app: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_without_root_overrides(), "sh", str(app / "docker-entrypoint.sh"), *args],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.system
def test_item1_the_image_copies_its_config_to_the_volume_and_refuses_a_bad_one(tmp_path):
    app = _image(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    env = _env(data)
    first = _entrypoint(app, "check-config", env=env)
    assert first.returncode == 0, first.stderr
    assert (data / "config.yaml").read_bytes() == (ROOT / "config.yaml").read_bytes()
    assert f"first start: copied the shipped config to {data / 'config.yaml'}" in first.stderr
    again = _entrypoint(app, "check-config", env=env)
    assert "first start" not in again.stderr, "copied once: an edited config is kept"

    (data / "config.yaml").write_text("bogus_key: 1\n", encoding="utf-8")
    bad = _entrypoint(app, "run", env=env)
    assert bad.returncode == 2, bad.stderr
    assert f"config error: {data / 'config.yaml'}:" in bad.stderr
    assert bad.stderr.rstrip().endswith(
        f"chipwatch: not starting: {data / 'config.yaml'} is invalid (the line above says "
        "where); exit 2: fix the file on the data volume, then start again"
    )


class _Run:
    """``docker-entrypoint.sh run`` in the image's layout, driven through the fake Bot API."""

    def __init__(self, app: Path, env: dict[str, str], log: Path, telegram, *args: str):
        self.telegram = telegram
        entrypoint = ["sh", str(app / "docker-entrypoint.sh"), "run", *args]
        self.bot = RunningBot(
            None, log, env, argv=[*_without_root_overrides(), *entrypoint], cwd=app
        )

    def wait_for(self, predicate, what: str):
        return _wait(predicate, f"{what} ({self.bot.text()})", proc=self.bot.proc)

    def ask(self, text: str) -> str:
        before = len([m for m in self.telegram.sent if m["chat_id"] == ADMIN])
        self.telegram.push_message(ADMIN, ADMIN, text)
        replies = self.wait_for(
            lambda: [m for m in self.telegram.sent if m["chat_id"] == ADMIN][before:],
            f"the reply to {text!r}",
        )
        return replies[0]["shown_text"]

    def __enter__(self):
        calls = len(self.telegram.calls_to("getUpdates"))
        self.wait_for(lambda: len(self.telegram.calls_to("getUpdates")) > calls, "commands")
        return self

    def __exit__(self, *exc):
        self.bot.stop()
        assert self.bot.proc.returncode == 0, self.bot.text()


@pytest.mark.system
def test_item1_watch_in_the_image_layout_is_kept_across_a_restart(tmp_path, serve, telegram):
    """Before, /watch in the image failed silently: config.yaml sat in root-owned /app (or a
    :ro mount). Now the config is on the data volume and /watch persists; a config the bot
    cannot write gets a reply that says so."""
    config = CONFIG.format(
        url=serve(rss([])), channel=CHANNEL, base_url=telegram.base_url, admin=ADMIN
    )
    app = _image(tmp_path, own_config=config)
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.yaml").write_text(config, encoding="utf-8")  # your own config
    env = _env(data, TELEGRAM_BOT_TOKEN=telegram.token)

    # The old layout: the config in the read-only application directory.
    with _Run(app, env, tmp_path / "old.log", telegram, "--config", str(app / "own.yaml")) as bot:
        reply = bot.ask("/watch chips B300")
    assert reply.startswith(f"⚠️ {app / 'own.yaml'} could not be written (Permission denied)")

    with _Run(app, env, tmp_path / "run1.log", telegram) as bot:
        assert "added B300 to chips" in bot.ask("/watch chips B300")
    assert "  chips: [H20, B300]\n" in (data / "config.yaml").read_text()
    with _Run(app, env, tmp_path / "run2.log", telegram) as bot:  # a restart
        assert "chips (2): H20, B300" in bot.ask("/watchlist")
    assert (data / "chipwatch.db").exists() and not (app / "unused.db").exists()


def test_the_dockerfile_is_the_layout_simulated_here():
    """The tests above run the entry point as the image does: these lines of the Dockerfile
    are what makes them stand for it."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert "COPY bot.py config.yaml docker-entrypoint.sh ./" in lines
    assert 'ENTRYPOINT ["/app/docker-entrypoint.sh"]' in lines and 'CMD ["run"]' in lines
    assert 'VOLUME ["/data"]' in lines and "USER chipwatch" in lines
    assert "    CHIPWATCH_CONFIG=/data/config.yaml \\" in lines
    assert os.access(ROOT / "docker-entrypoint.sh", os.X_OK)


@pytest.mark.system
def test_a_token_set_for_no_destination_is_run_s_warning_not_the_images_refusal(tmp_path):
    """The README's first `docker run … -e TELEGRAM_BOT_TOKEN=…` on the shipped config (no
    destination yet): the image's pre-check takes the file only, so the bot starts and says
    the token is unused, rather than stopping with exit 2 before you could copy your config in."""
    app = _image(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    token = "123456789:AA" + "x" * 33
    env = _env(data, TELEGRAM_BOT_TOKEN=token)
    entrypoint = ["sh", str(app / "docker-entrypoint.sh"), "run"]
    bot = RunningBot(
        None, tmp_path / "run.log", env, argv=[*_without_root_overrides(), *entrypoint], cwd=app
    )
    try:
        _wait(
            lambda: "bot_running" in bot.text(), f"the bot to start ({bot.text()})", proc=bot.proc
        )
    finally:
        bot.stop()
    assert bot.proc.returncode == 0, bot.text()
    assert "secret_unused" in bot.text() and "not starting" not in bot.text()
    assert token not in bot.text()
