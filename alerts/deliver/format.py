"""How an alert reads on each destination. Every piece of external text is escaped here, once,
so a headline with ``<``, ``&`` or quotes can never break a message.

Telegram counts a message's length in UTF-16 code units of the text after entity parsing (tags
removed, ``&amp;`` counted as ``&``); ``visible_len`` measures the same way.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from ..config import LEARNED_RULE
from ..match import second_opinion
from ..types import Alert

TELEGRAM_LIMIT = 4096
TITLE_MAX = 600
SUMMARY_MAX = 600
SLACK_SECTION_MAX = 3000
DIGEST_MAX_ALERTS = 15


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut_text(text: str, max_units: int) -> str:
    """Shorten plain text to at most ``max_units`` UTF-16 units, ending with an ellipsis."""
    if utf16_len(text) <= max_units:
        return text
    if max_units <= 1:
        return ""
    out, used = [], 0
    for ch in text:
        n = utf16_len(ch)
        if used + n > max_units - 1:
            break
        out.append(ch)
        used += n
    return "".join(out).rstrip() + "…"


def when_text(alert: Alert) -> str:
    return alert.published.strftime("%d %b %Y %H:%M UTC") if alert.published else "undated"


def matched_items(alert: Alert) -> list[str]:
    """Plain ``term (category)`` pieces, with the headline's own text and the kind when they differ
    from a plain exact match: ``Nvidia (companies, fuzzy "Nvida")``. A term that several
    categories share ("China" as a government and as a party to trade) is named once."""
    parts, named = [], set()
    for m in alert.matches:
        if m.term.casefold() in named:
            continue
        named.add(m.term.casefold())
        extra: list[str] = []
        if m.kind != "exact":
            extra.append(m.kind)
        if m.text.casefold() != m.term.casefold():
            extra.append(f'"{m.text}"')
        detail = ", ".join([m.category, *extra])
        parts.append(f"{m.term} ({detail})")
    return parts


def outlet_name(alert: Alert) -> str:
    """Who published it: "Reuters via Google News" for an aggregator's item, else the feed."""
    first = alert.sources[0] if alert.sources else alert.feed
    return alert.feed if first == alert.feed else f"{first} via {alert.feed}"


def story_line(alert: Alert, *, names: int = 2) -> str:
    """ "also reported by Reuters, Bloomberg, +3" for a story with more than one source."""
    others = [s for s in alert.sources[1:] if s != alert.feed]
    if not others:
        return ""
    shown = ", ".join(others[:names])
    more = f", +{len(others) - names}" if len(others) > names else ""
    return f"also reported by {shown}{more}"


REPORTS_MAX = 10  # headlines of joining outlets shown in one alert


def report_lines(alert: Alert, *, width: int = 300) -> list[str]:
    """ "• Bloomberg: <its headline>" for each joining outlet whose headline says more than the
    alert's title: even a story that wrongly took in another event's item hides nothing."""
    return [
        f"• {name}: {cut_text(headline, width)}"
        for name, headline in alert.reports[:REPORTS_MAX]
        if headline != alert.title
    ]


def major_line(alert: Alert) -> str:
    return f"🔥 MAJOR STORY · {len(alert.sources)} sources" if alert.major else ""


def matched_line(alert: Alert) -> str:
    # A learned alert says its score and the words that weighed most (rescored: not stored).
    names = [
        second_opinion(alert.title, alert.summary, {m.category for m in alert.matches}).explain()
        if rule == LEARNED_RULE
        else rule
        for rule in alert.rules
    ]
    rules = f"rule {', '.join(names)}" if names else "no rule"
    return " · ".join([*matched_items(alert), rules])


def _web_link(url: str) -> str | None:
    """The link if it is a plain http(s) URL Telegram and Slack will accept, else None."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # Spaces, quotes and angle brackets would end the href or Slack's <url|label>; encode them.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")


# --- Telegram (HTML parse mode) -------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def telegram_html(alert: Alert, *, limit: int = TELEGRAM_LIMIT) -> str:
    """Headline as a link, source and time, what matched, then as much summary as fits."""
    title = cut_text(alert.title, TITLE_MAX)
    link = _web_link(alert.link)
    head_html = (
        f'<b><a href="{html.escape(link, quote=True)}">{_esc(title)}</a></b>'
        if link
        else f"<b>{_esc(title)}</b>"
    )
    meta = f"{outlet_name(alert)} · {when_text(alert)}"
    matched = "🎯 " + cut_text(matched_line(alert), 800)
    plain = [title, meta, matched]
    html_parts = [head_html, _esc(meta), _esc(matched)]
    if story_line(alert):
        also = "📣 " + cut_text(story_line(alert, names=4), 400)
        plain.append(also)
        html_parts.append(_esc(also))
    if alert.major:
        plain.insert(0, major_line(alert))
        html_parts.insert(0, f"<b>{_esc(major_line(alert))}</b>")
    used = sum(utf16_len(p) for p in plain) + len(plain) - 1  # newlines between parts
    for line in report_lines(alert):
        cost = utf16_len(line) + 1
        if used + cost > limit - 2:
            break
        plain.append(line)
        html_parts.append(_esc(line))
        used += cost
    room = min(SUMMARY_MAX, limit - used - 2)
    if alert.summary and room > 20:
        summary = cut_text(alert.summary, room)
        html_parts.append(f"<i>{_esc(summary)}</i>")
    return "\n".join(html_parts)


def telegram_digest(
    alerts: Sequence[Alert], *, limit: int = TELEGRAM_LIMIT, max_alerts: int = DIGEST_MAX_ALERTS
) -> tuple[str, list[Alert]]:
    """One message listing as many alerts as fit; returns it and the alerts it includes."""
    header_plain = "📰 {n} alerts (digest)"
    lines_html: list[str] = []
    included: list[Alert] = []
    used = utf16_len(header_plain.format(n=99)) + 1
    for i, alert in enumerate(alerts[:max_alerts], start=1):
        title = cut_text(alert.title, 300)
        terms = ", ".join(dict.fromkeys(m.term for m in alert.matches))
        tail = f" — {outlet_name(alert)} · {cut_text(terms, 120)}"
        plain = f"{i}. {title}{tail}"
        cost = utf16_len(plain) + 1
        if included and used + cost > limit:
            break
        link = _web_link(alert.link)
        title_html = (
            f'<a href="{html.escape(link, quote=True)}">{_esc(title)}</a>' if link else _esc(title)
        )
        lines_html.append(f"{i}. {title_html}{_esc(tail)}")
        included.append(alert)
        used += cost
    header = f"📰 <b>{len(included)} alerts</b> (digest)"
    return "\n".join([header, *lines_html]), included


def visible_len(message_html: str) -> int:
    """Length as Telegram counts it: tags stripped, entities decoded, UTF-16 units."""
    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", message_html)))


# --- Slack (mrkdwn) --------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(alert: Alert, label: str) -> str:
    link = _web_link(alert.link)
    # A "|" would end the URL part of <url|label>; inside the label it is harmless once escaped.
    return f"<{link.replace('|', '%7C')}|{slack_escape(label)}>" if link else slack_escape(label)


def slack_payload(alert: Alert) -> dict:
    title = cut_text(alert.title, TITLE_MAX)
    head = f"*{_slack_link(alert, title)}*"
    meta = slack_escape(f"{outlet_name(alert)} · {when_text(alert)}")
    matched = slack_escape("🎯 " + cut_text(matched_line(alert), 800))
    body = "\n".join([head, meta, matched])
    if story_line(alert):
        body += "\n" + slack_escape("📣 " + story_line(alert, names=4))
    for line in report_lines(alert, width=200):
        body += "\n" + slack_escape(line)
    if alert.summary:
        body += "\n" + slack_escape(cut_text(alert.summary, SUMMARY_MAX))
    return {
        "text": slack_escape(f"{title} — {alert.feed}"),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": cut_text(body, SLACK_SECTION_MAX)},
            }
        ],
        "unfurl_links": False,
    }


def slack_digest(
    alerts: Sequence[Alert], *, max_alerts: int = DIGEST_MAX_ALERTS
) -> tuple[dict, list[Alert]]:
    lines: list[str] = []
    included: list[Alert] = []
    used = 0
    for i, alert in enumerate(alerts[:max_alerts], start=1):
        terms = ", ".join(dict.fromkeys(m.term for m in alert.matches))
        line = (
            f"{i}. {_slack_link(alert, cut_text(alert.title, 200))} — "
            f"{slack_escape(alert.feed)} · {slack_escape(cut_text(terms, 100))}"
        )
        if included and used + len(line) + 1 > SLACK_SECTION_MAX - 100:
            break
        lines.append(line)
        included.append(alert)
        used += len(line) + 1
    header = f"📰 *{len(included)} alerts* (digest)"
    return (
        {
            "text": f"{len(included)} alerts (digest)",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join([header, *lines])}}
            ],
            "unfurl_links": False,
        },
        included,
    )
