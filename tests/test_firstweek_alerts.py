"""Issue #23, item 5: an alert reads in three lines (headline, outlet and time, a short why built
from the watchlist terms), on Telegram, Slack, the console and in digests alike."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import pytest

from alerts.deliver.console import format_text
from alerts.deliver.format import slack_digest, slack_payload, telegram_digest, telegram_html
from alerts.match import normalise
from alerts.types import Alert
from tests.support import learned_oracle, shipped_config, shipped_matcher

CONFIG = shipped_config()
MATCHER = shipped_matcher()
TITLE = "US bans Nvidia H20 exports to China"
SUMMARY = "The Commerce Department told Nvidia it needs a licence to ship H20 chips to China."


def _alert(title: str, summary: str = "", *, n: int = 1) -> Alert:
    result = MATCHER.match(title, summary)
    assert result.alert, title
    return Alert(
        id=n,
        feed="Reuters",
        title=title,
        link=f"https://www.reuters.com/world/{n}",
        summary=summary,
        published=datetime(2026, 12, 5, 13, 40, tzinfo=timezone.utc),
        created_at=datetime(2026, 12, 5, 13, 41, tzinfo=timezone.utc),
        matches=result.matches,
        rules=result.rules,
        sources=("Reuters",),
    )


def _shown(message_html: str) -> list[str]:
    """The lines a Telegram user sees."""
    return html.unescape(re.sub(r"<[^>]+>", "", message_html)).split("\n")


def test_item5_the_h20_ban_alert_fits_three_lines_before_its_summary():
    lines = _shown(telegram_html(_alert(TITLE, SUMMARY)))
    assert lines == [
        TITLE,
        "Reuters · 05 Dec 2026 13:40 UTC",
        "🎯 H20 · ban · China",
        SUMMARY,
    ]
    # the rule the summary made (permission, from "licence to ship") is not named on a ban story
    assert "permission" not in lines[2]


# Real headlines that alert (from ../shared/eval/headlines_real.tsv, label 1).
REAL = [
    "Nvidia Plans New Graphics-Processing Chip for China to Meet U.S. Export Rules",
    "Tech war: Nvidia offers new GPU chip tailored for Chinese market as it vows to comply with "
    "US export regulations",
    "U.S. Tightens Curbs on AI Chip Exports to China, Widening Rift With Nvidia and Intel",
    "US orders immediate halt to shipping of some AI chips to China, Nvidia says",
    "Nvidia tweaks flagship H100 chip for export to China as H800",
    "US blocks sale of some Nvidia and AMD AI chips to China",
    "Chinese A.I. stocks fall as U.S. reportedly weighs curbs on chip exports",
    "With new China AI chip restrictions, U.S. takes aim at a critical niche",
]


@pytest.mark.parametrize("title", REAL)
def test_item5_the_why_names_terms_once_never_category_ids_and_is_short(title):
    alert = _alert(title)
    why = _shown(telegram_html(alert))[2].removeprefix("🎯 ")
    parts = why.split(" · ")
    assert len(why) < len(title) and len(parts) <= 4
    # no "(chips)", "china_parties", "alias" or rule names: only terms, each a watchlist's
    assert "(" not in why and "_" not in why and not any(p.startswith("rule ") for p in parts)
    words = [w.casefold() for p in parts for w in p.split()]
    assert len(words) == len(set(words)), f"a term repeated: {why}"
    terms = {t.name for terms in CONFIG.watchlists.values() for t in terms}
    assert set(parts) <= terms, why


def test_item5_the_why_reads_what_then_the_action_then_where():
    lines = _shown(telegram_html(_alert("US blocks sale of some Nvidia and AMD AI chips to China")))
    assert lines[2] == "🎯 Nvidia · AMD · block · China"


def test_item5_a_learned_alert_says_so_in_its_short_why():
    title = "US 50% Rule Widens Export Curbs to Affiliates of Blacklisted Companies"
    alert = _alert(title)
    assert alert.rules == ("learned",)
    score, heaviest = learned_oracle(title)  # from the model file, not the matcher's Opinion
    why = _shown(telegram_html(alert))[2]
    assert why.endswith('"') and f'learned {score:.2f}: "' in why, why
    phrase = why.split('"')[-2]  # the heaviest words, as the headline has them
    assert f" {heaviest} " in f" {phrase} " and f" {phrase} " in normalise(title), why
    assert "rule " not in why


def test_item5_slack_the_console_and_digests_show_the_same_short_why():
    alert = _alert(TITLE, SUMMARY)
    body = slack_payload(alert)["blocks"][0]["text"]["text"].split("\n")
    assert body[1:4] == ["Reuters · 05 Dec 2026 13:40 UTC", "🎯 H20 · ban · China", SUMMARY]
    text = format_text(alert).split("\n")
    assert text[0] == f"🔔 {TITLE}" and "   why: H20 · ban · China" in text
    other = _alert("US blocks sale of some Nvidia and AMD AI chips to China", n=2)
    message, _ = telegram_digest([alert, other])
    assert _shown(message)[1:] == [
        f"1. {TITLE} — Reuters · H20 · ban · China",
        "2. US blocks sale of some Nvidia and AMD AI chips to China — Reuters · Nvidia · AMD · "
        "block · China",
    ]
    payload, _ = slack_digest([alert, other])
    assert "— Reuters · H20 · ban · China" in payload["blocks"][0]["text"]["text"]
