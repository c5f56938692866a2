"""OPML: import feeds into config.yaml (comments kept, nothing twice), export OPML 2.0, and
round trips through files other readers wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.config import load_config
from alerts.errors import OpmlError
from alerts.parse.opml import OpmlFeed, read_opml, write_opml
from alerts.types import utcnow
from tests.support import MINIMAL_WATCHLISTS, ROOT, cli

OPML = ROOT / "tests" / "data" / "opml"

CONFIG = f"""\
# Our team's feeds: keep this note.
feeds:
  - name: Ars Technica   # the one we started with
    url: https://feeds.arstechnica.com/arstechnica/index
{MINIMAL_WATCHLISTS}
# the end
"""


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _feeds(path: Path) -> list[tuple[str, str]]:
    return [(f.name, f.url) for f in load_config(path).feeds]


def _import(config: Path, opml: Path, *more: str):
    return cli("feeds", "import", str(opml), "--config", str(config), *more)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "feedly.opml",
            [
                ("SemiAnalysis", "https://www.semianalysis.com/feed", ("Semiconductors",)),
                ("AnandTech", "https://www.anandtech.com/rss/", ("Semiconductors",)),
                (
                    "Federal Register: Industry and Security Bureau",
                    "https://www.federalregister.gov/api/v1/documents.rss?conditions%5Bagencies%5D"
                    "%5B%5D=industry-and-security-bureau",
                    ("Policy",),
                ),
            ],
        ),
        (
            "netnewswire.opml",
            [
                ("Tom's Hardware", "https://www.tomshardware.com/feeds/all", ("Tech", "Chips")),
                ("The Verge", "https://www.theverge.com/rss/index.xml", ("Tech",)),
                ("Daring Fireball", "https://daringfireball.net/feeds/main", ()),
            ],
        ),
    ],
)
def test_outlines_nested_in_folders_are_read_as_other_readers_write_them(name, expected):
    feeds = read_opml((OPML / name).read_bytes())
    assert [(f.name, f.url, f.folders) for f in feeds] == expected
    assert all(f.html_url.startswith("https://") for f in feeds)


def test_import_adds_new_feeds_keeps_comments_and_skips_what_is_there(config):
    before = config.read_text(encoding="utf-8")
    ran = _import(config, OPML / "netnewswire.opml")
    assert ran.returncode == 0, ran.stderr
    assert "added 3, 0 already present, 0 refused" in ran.stdout
    after = config.read_text(encoding="utf-8")
    for comment in (
        "# Our team's feeds: keep this note.",
        "# the one we started with",
        "# the end",
    ):
        assert comment in after
    assert after.startswith(before.split("watchlists:")[0].rstrip("\n"))
    assert _feeds(config) == [
        ("Ars Technica", "https://feeds.arstechnica.com/arstechnica/index"),
        ("Tom's Hardware", "https://www.tomshardware.com/feeds/all"),
        ("The Verge", "https://www.theverge.com/rss/index.xml"),
        ("Daring Fireball", "https://daringfireball.net/feeds/main"),
    ]
    # Inoreader's file carries Tom's Hardware again, in another folder and under another name.
    ran = _import(config, OPML / "inoreader.opml")
    assert "added 2, 1 already present" in ran.stdout
    assert "- Tom's Hardware (dup in another folder): already present" in ran.stdout
    assert len(_feeds(config)) == 6


def test_two_hundred_feeds_in_nested_folders_import_once(config):
    outlines, urls = [], []
    for folder in range(10):
        inner = []
        for sub in range(4):
            items = []
            for k in range(5):
                n = folder * 20 + sub * 5 + k
                url = f"https://news{n}.example.com/feed.xml"
                urls.append(url)
                items.append(f'<outline type="rss" text="News {n}" xmlUrl="{url}"/>')
            inner.append(f'<outline text="Sub {sub}">{"".join(items)}</outline>')
        outlines.append(f'<outline text="Folder {folder}">{"".join(inner)}</outline>')
    big = config.parent / "big.opml"
    big.write_text(
        f'<?xml version="1.0"?><opml version="2.0"><head/><body>{"".join(outlines)}</body></opml>',
        encoding="utf-8",
    )
    ran = _import(config, big)
    assert "200 feeds in" in ran.stdout and "added 200," in ran.stdout
    feeds = _feeds(config)
    assert [u for _, u in feeds[1:]] == urls
    written = config.read_text(encoding="utf-8")
    ran = _import(config, big)
    assert "added 0, 200 already present" in ran.stdout
    assert config.read_text(encoding="utf-8") == written  # nothing to add: not rewritten


def test_export_then_import_round_trips(tmp_path):
    shipped = ROOT / "config.yaml"
    exported = tmp_path / "feeds.opml"
    ran = cli("feeds", "export", str(exported), "--config", str(shipped))
    assert ran.returncode == 0, ran.stderr
    names_urls = [(f.name, f.url) for f in load_config(shipped).feeds]
    assert [(f.name, f.url) for f in read_opml(exported.read_bytes())] == names_urls
    # Into a config holding none of them: every feed arrives, by name and URL.
    other = tmp_path / "other.yaml"
    other.write_text(
        "feeds:\n  - name: Local\n    url: http://127.0.0.1:9/feed.xml\n" + MINIMAL_WATCHLISTS,
        encoding="utf-8",
    )
    assert f"added {len(names_urls)}," in _import(other, exported).stdout
    assert _feeds(other)[1:] == names_urls
    # And back out: the same document but for its date.
    again = cli("feeds", "export", "--config", str(other)).stdout
    assert [(f.name, f.url) for f in read_opml(again.encode())][1:] == names_urls


def test_write_opml_keeps_folders_and_site_links():
    feeds = [
        OpmlFeed(name="A & B", url="https://a.example/feed?x=1&y=2", folders=("Chips", "US")),
        OpmlFeed(name="C", url="https://c.example/rss", html_url="https://c.example/"),
        OpmlFeed(name="D", url="https://d.example/rss", folders=("Chips",)),
    ]
    data = write_opml(feeds, now=utcnow())
    assert data.startswith(b"<?xml") and b'<opml version="2.0">' in data
    # Each folder once, its feeds in it: D joins A's folder.
    back = read_opml(data)
    assert sorted(back, key=lambda f: f.url) == sorted(feeds, key=lambda f: f.url)
    assert [f.name for f in back] == ["A & B", "D", "C"]


def test_a_name_taken_by_another_feed_gets_the_host_and_a_bad_url_is_refused(config, tmp_path):
    opml = tmp_path / "clash.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        '<outline text="Ars Technica" xmlUrl="https://mirror.example.org/ars.xml"/>'
        '<outline text="Old" xmlUrl="ftp://files.example.org/feed"/>'
        '<outline text="Spaced" xmlUrl="https://example.org/a feed.xml"/>'
        '<outline title="" xmlUrl="https://untitled.example.net/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    ran = _import(config, opml)
    assert "added 2, 0 already present, 2 refused" in ran.stdout
    assert "- Old: must be an http:// or https:// URL" in ran.stdout
    assert "- Spaced: must not contain spaces" in ran.stdout
    assert _feeds(config)[1:] == [
        ("Ars Technica (mirror.example.org)", "https://mirror.example.org/ars.xml"),
        ("untitled.example.net", "https://untitled.example.net/rss"),
    ]


def test_a_dry_run_says_what_it_would_add_and_writes_nothing(config):
    before = config.read_text(encoding="utf-8")
    ran = _import(config, OPML / "feedly.opml", "--dry-run")
    assert ran.returncode == 0
    assert "would add 3" in ran.stdout and "+ SemiAnalysis" in ran.stdout
    assert config.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<rss version='2.0'><channel/></rss>", "the root element is <rss>, not <opml>"),
        ("<opml version='2.0'><body><outline", "not well-formed XML"),
        ("<opml version='2.0'><head/></opml>", "no <body>"),
    ],
)
def test_a_file_that_is_not_opml_is_refused_and_nothing_is_written(
    config, tmp_path, content, message
):
    before = config.read_text(encoding="utf-8")
    bad = tmp_path / "bad.opml"
    bad.write_text(content, encoding="utf-8")
    ran = _import(config, bad)
    assert ran.returncode == 1
    assert f"opml error: {bad}: {message}" in ran.stderr
    assert config.read_text(encoding="utf-8") == before
    missing = _import(config, tmp_path / "missing.opml")
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_entities_are_not_expanded_and_nothing_is_fetched(config, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    opml = tmp_path / "xxe.opml"
    opml.write_text(
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<opml version="2.0"><body><outline text="n&x;" xmlUrl="https://x.example/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    with pytest.raises(OpmlError) as caught:
        read_opml(opml.read_bytes())
    assert "external entity" in str(caught.value) and "TOP-SECRET" not in str(caught.value)


def test_a_url_spelled_with_its_default_port_or_a_slash_is_already_present(config, tmp_path):
    """Import finds a feed listed twice as the config does: the dry run and the import agree."""
    opml = tmp_path / "ports.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        '<outline text="Ars again" xmlUrl="https://FEEDS.arstechnica.com:443/arstechnica/index/"/>'
        '<outline text="New" xmlUrl="https://new.example/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    dry = _import(config, opml, "--dry-run")
    ran = _import(config, opml)
    for out in (dry, ran):
        assert out.returncode == 0, out.stderr
        assert "1 already present" in out.stdout and "- Ars again: already present" in out.stdout
    assert [u for _, u in _feeds(config)] == [
        "https://feeds.arstechnica.com/arstechnica/index",
        "https://new.example/rss",
    ]
