"""Message formats: escaped by construction, within Telegram's limit as Telegram counts it."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import pytest

from alerts.deliver.format import (
    TELEGRAM_LIMIT,
    slack_digest,
    slack_payload,
    telegram_digest,
    telegram_html,
    utf16_len,
    visible_len,
)
from alerts.types import Alert, Match
from tests.fakes.slack_webhook import unescaped_specials
from tests.support import HOSTILE


def _alert(title, *, summary="", link='https://news.example/a?x=1&y="2"', feed="Wire <&>"):
    return Alert(
        id=1,
        feed=feed,
        title=title,
        link=link,
        summary=summary,
        published=datetime(2026, 11, 28, 14, 5, tzinfo=timezone.utc),
        created_at=datetime(2026, 11, 28, 14, 6, tzinfo=timezone.utc),
        matches=(
            Match("companies", "Nvidia", "Nvidia", "exact", 100.0),
            Match("export_terms", "export controls", "export <ban>", "alias", 100.0),
        ),
        rules=("chip-trade",),
    )


ALLOWED_TAG = re.compile(r"</?(b|i|a)( href=\"[^\"<>]*\")?>")


def _assert_valid_telegram_html(text: str) -> None:
    """Every '<' starts an allowed tag and every '&' an entity, as Telegram's parser requires."""
    for m in re.finditer("<", text):
        assert ALLOWED_TAG.match(text, m.start()), text[m.start() : m.start() + 30]
    for m in re.finditer("&", text):
        assert re.match(r"&(lt|gt|amp|quot|#\d+);", text[m.start() :]), text[
            m.start() : m.start() + 10
        ]


@pytest.mark.parametrize("title", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_telegram_html_escapes_hostile_headlines(title):
    alert = _alert(title, summary=title)
    message = telegram_html(alert)
    _assert_valid_telegram_html(message)
    plain = html.unescape(re.sub(r"<[^>]+>", "", message))
    assert title in plain, "the headline survives escaping unchanged"
    assert 'href="https://news.example/a?x=1&amp;y=%222%22"' in message


@pytest.mark.parametrize("summary_len", [5000, 4096, 100_000])
def test_telegram_message_fits_4096_utf16_units_with_long_summaries(summary_len):
    summary = ("😀" * (summary_len // 2)) + "x" * (summary_len % 2)
    message = telegram_html(_alert("中国批准 " * 40, summary=summary))
    assert visible_len(message) <= TELEGRAM_LIMIT
    assert "…" in message


def test_telegram_message_lists_link_source_time_and_matches():
    message = telegram_html(_alert("China approves H200 imports"))
    lines = message.split("\n")
    assert lines[0].startswith('<b><a href="https://news.example/a')
    assert lines[1] == "Wire &lt;&amp;&gt; · 28 Nov 2026 14:05 UTC"
    assert lines[2] == "🎯 Nvidia · export controls"  # terms, not categories or rule names


def test_non_web_links_are_not_linked():
    message = telegram_html(_alert("x", link="javascript:alert(1)"))
    assert "href" not in message and "javascript" not in message


def test_telegram_digest_fits_limit_and_reports_what_it_included():
    alerts = [_alert(f"Headline {i} " + "Ü" * 300) for i in range(40)]
    message, included = telegram_digest(alerts)
    _assert_valid_telegram_html(message)
    assert visible_len(message) <= TELEGRAM_LIMIT
    assert 1 < len(included) < 40
    assert included == alerts[: len(included)]
    assert f"{len(included)} alerts" in message


@pytest.mark.parametrize("title", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_slack_mrkdwn_escapes_control_characters(title):
    payload = slack_payload(_alert(title, summary=title))
    text = payload["blocks"][0]["text"]["text"]
    # Outside the one <url|label> link, no raw < or > and no & except entities.
    body = re.sub(r"<https://[^|>]+\|", "", text, count=1).replace(">*", "*", 1)
    assert "<" not in body
    assert not re.search(r"&(?!(amp|lt|gt);)", body)
    assert payload["text"] and "<" not in payload["text"]


def test_slack_digest_lists_alerts():
    payload, included = slack_digest([_alert(f"H{i} & co") for i in range(20)])
    assert len(included) == 15
    assert "H0 &amp; co" in payload["blocks"][0]["text"]["text"]


def test_utf16_len_counts_astral_characters_twice():
    assert utf16_len("a😀中") == 4


def test_a_term_in_two_categories_is_named_once_and_aggregated_items_name_their_outlet():
    from dataclasses import replace

    from alerts.deliver.format import outlet_name, why_line

    alert = replace(
        _alert("China approves Nvidia H200 imports"),
        matches=(
            Match("governments", "China", "China", "exact", 100.0),
            Match("china_parties", "China", "China", "exact", 100.0),
            Match("chips", "H200", "H200", "exact", 100.0),
        ),
        feed="Google News",
        sources=("Reuters", "Bloomberg"),
    )
    assert why_line(alert) == "H200 · China"
    assert outlet_name(alert) == "Reuters via Google News"
    assert outlet_name(replace(alert, sources=())) == "Google News"


# --- follow-ups (story threads) ----------------------------------------------------------------


def _followup(title, *, story="US curbs <Nvidia> H20 & more", id=2, thread_of=1, **kw):  # noqa: A002
    from dataclasses import replace

    return replace(_alert(title, **kw), id=id, thread_of=thread_of, thread_title=story)


@pytest.mark.parametrize("title", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("replying", [True, False], ids=["reply", "named"])
def test_a_follow_ups_short_form_escapes_everything_and_shows_the_headline(title, replying):
    summary = f"More: {title}"
    message = telegram_html(_followup(title, summary=summary, story=title), replying=replying)
    _assert_valid_telegram_html(message)
    plain = html.unescape(re.sub(r"<[^>]+>", "", message)).split("\n")
    if replying:
        assert plain[0] == f"↳ Wire <&>: {title}"
    else:
        assert plain[:2] == [f"↳ follow-up to “{title}”", f"Wire <&>: {title}"]
    assert plain[-1] == summary, "then what it adds"
    assert len(plain) == (2 if replying else 3)


def test_a_follow_up_says_what_it_adds_and_who_joined_it_within_the_limit():
    from dataclasses import replace

    followup = replace(
        _followup("Nvidia halts H20 output", summary="Suppliers told to stop. " * 300),
        sources=("Wire <&>", "Reuters", "FT", "AP"),
        reports=tuple((f"Outlet {i}", "Nvidia halts H20 output in China " * 20) for i in range(10)),
    )
    message = telegram_html(followup, replying=True)
    lines = html.unescape(re.sub(r"<[^>]+>", "", message)).split("\n")
    assert lines[0] == "↳ Wire <&> (also Reuters, FT, +1): Nvidia halts H20 output"
    assert lines[1].startswith("• Outlet 0: Nvidia halts H20 output in China")
    assert lines[-1].startswith("Suppliers told to stop.") and len(lines[-1]) <= 200
    assert visible_len(message) <= TELEGRAM_LIMIT
    assert visible_len(telegram_html(followup, limit=600, replying=True)) <= 600


def test_a_digest_lists_follow_ups_under_their_story_or_names_it():
    from dataclasses import replace

    story = replace(_alert("US curbs Nvidia H20 exports"), id=1)
    other = replace(_alert("SMIC added to entity list"), id=2)
    under = _followup("Nvidia halts H20 output", id=3, thread_of=1, story=story.title)
    deeper = _followup("Nvidia resumes H20 talks", id=4, thread_of=3, story=under.title)
    orphan = _followup("Huawei ramps up Ascend", id=5, thread_of=99, story="China bans H20")
    message, included = telegram_digest([story, other, under, deeper, orphan])
    _assert_valid_telegram_html(message)
    assert included == [story, other, under, deeper, orphan]
    assert html.unescape(re.sub(r"<[^>]+>", "", message)).split("\n") == [
        "📰 5 alerts (digest)",
        "1. US curbs Nvidia H20 exports — Wire <&> · Nvidia · export controls",
        "    ↳ Nvidia halts H20 output — Wire <&>",
        "    ↳ Nvidia resumes H20 talks — Wire <&>",
        "2. SMIC added to entity list — Wire <&> · Nvidia · export controls",
        "3. ↳ Huawei ramps up Ascend — Wire <&> · follow-up to “China bans H20”",
    ]
    payload, included = slack_digest([story, other, under, deeper, orphan])
    lines = payload["blocks"][0]["text"]["text"].split("\n")
    assert lines[2].startswith("    ↳ <https://news.example/a?x=1&y=%222%22|Nvidia halts H20")
    assert lines[5].endswith("follow-up to “China bans H20”")
    assert unescaped_specials(payload["blocks"][0]["text"]["text"]) == []


@pytest.mark.parametrize("replying", [True, False], ids=["reply", "named"])
def test_a_slack_follow_up_is_short_and_escaped(replying):
    payload = slack_payload(
        _followup("Nvidia <halts> H20 & more", summary="Adds & more"), replying=replying
    )
    text = payload["blocks"][0]["text"]["text"]
    assert unescaped_specials(text) == []
    lines = text.split("\n")
    if not replying:
        assert lines.pop(0) == "↳ follow-up to “US curbs &lt;Nvidia&gt; H20 &amp; more”"
    assert lines[0].startswith("↳ *Wire &lt;&amp;&gt;*: <https://" if replying else "*Wire")
    assert lines[1] == "Adds &amp; more"
    assert payload["text"] == "↳ Wire &lt;&amp;&gt;: Nvidia &lt;halts&gt; H20 &amp; more"
