"""The README and docs/ link to each other and to files of the repository: every relative link
must reach a file that exists, and every #anchor a heading of the page it names (GitHub's slug
rules), so moving a section cannot leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.config import load_config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped except - and _, spaces
    to -."""
    text = re.sub(r"`|\*\*|__", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (links and headings there are not links)."""
    out, code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            code = not code
            continue
        if not code:
            out.append(line)
    return out


def anchors(page: Path) -> set[str]:
    """Every anchor a page has; a repeated heading gets -1, -2 … as on GitHub."""
    found: set[str] = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base, n = slug(m.group(2)), 0
        name = base
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def links(page: Path) -> list[str]:
    """The relative link targets of a page (not http(s), mailto or the like)."""
    targets = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def broken(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(root)}")
    return problems


def test_slug_follows_githubs_rules() -> None:
    assert slug("Ops: /healthz and /metrics") == "ops-healthz-and-metrics"
    assert slug("Using the bot (Telegram)") == "using-the-bot-telegram"
    assert slug("Health: one verdict, three views") == "health-one-verdict-three-views"
    assert slug("`make test` and dev_notes") == "make-test-and-dev_notes"


def test_a_dead_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Real part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#real-part) [here](#page) [web](https://example.com/x.md)\n"
        "[gone](missing.md) [no anchor](other.md#imagined) [self](#nowhere)\n"
        "```\n[in code](ignored.md)\n```\n",
        encoding="utf-8",
    )
    assert broken(page, tmp_path) == [
        "missing.md: no such file",
        "other.md#imagined: no heading #imagined in other.md",
        "#nowhere: no heading #nowhere in page.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert links(page) or page.name != "README.md", "the README should link to docs/"
    assert broken(page) == []


def test_every_docs_page_is_in_the_index() -> None:
    index = links(ROOT / "docs" / "README.md")
    missing = [p.name for p in PAGES if p.parent.name == "docs" and p.name != "README.md"]
    assert [name for name in missing if name not in index] == []


def test_readme_stays_short_for_a_new_user() -> None:
    # Issue #24: what a new user needs; the rest lives in docs/.
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 350


def test_the_readmes_short_config_is_valid(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.yaml"
    path.write_text(example, encoding="utf-8")
    config = load_config(path)
    assert [rule.name for rule in config.rules] == ["chip-trade"]
    assert [feed.name for feed in config.feeds] == ["Ars Technica"]
