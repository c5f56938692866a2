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
from ..types import Alert, Match

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


def outlet_name(alert: Alert) -> str:
    """Who published it: "Reuters via Google News" for an aggregator's item, else the feed."""
    first = alert.sources[0] if alert.sources else alert.feed
    return alert.feed if first == alert.feed else f"{first} via {alert.feed}"


def _also(alert: Alert, names: int) -> str:
    """ "Reuters, Bloomberg, +3": the story's other sources, or "" when it has none."""
    others = [s for s in alert.sources[1:] if s != alert.feed]
    if not others:
        return ""
    more = f", +{len(others) - names}" if len(others) > names else ""
    return ", ".join(others[:names]) + more


def story_line(alert: Alert, *, names: int = 2) -> str:
    """ "also reported by Reuters, Bloomberg, +3" for a story with more than one source."""
    also = _also(alert, names)
    return f"also reported by {also}" if also else ""


# --- follow-ups (story threads) ------------------------------------------------------------
#
# A follow-up is a quiet message under its story's: the outlet, its headline, and what it adds
# (the start of its summary; the headlines of outlets that joined it). Where there is no story
# message to reply to, the follow-up names the story instead.

FOLLOWUP_SUMMARY_MAX = 200
THREAD_TITLE_MAX = 200


def followup_byline(alert: Alert) -> str:
    """Who reported a follow-up: "Bloomberg", or "Bloomberg (also Reuters, FT, +2)"."""
    also = _also(alert, 2)
    return f"{outlet_name(alert)} (also {also})" if also else outlet_name(alert)


def follow_up_to(alert: Alert) -> str:
    """'follow-up to "US curbs Nvidia H20 exports"': a follow-up that is not a reply names its
    story so."""
    story = cut_text(alert.thread_title, THREAD_TITLE_MAX) if alert.thread_title else "a story"
    return f"follow-up to “{story}”"


def followup_summary(alert: Alert) -> str:
    """What a follow-up adds besides its headline: the start of its summary ("" if none)."""
    summary = alert.summary.strip()
    if not summary or summary == alert.title.strip():
        return ""
    return cut_text(summary, FOLLOWUP_SUMMARY_MAX)


def thread_groups(alerts: Sequence[Alert]) -> list[tuple[Alert, list[Alert]]]:
    """The alerts as (alert, its follow-ups among them), each follow-up under the first alert of
    its thread that is among them (a follow-up of a follow-up goes under the story too), in
    the order given."""
    by_id = {a.id: a for a in alerts}

    def head(alert: Alert) -> Alert:
        seen = {alert.id}
        while alert.thread_of in by_id and alert.thread_of not in seen:
            alert = by_id[alert.thread_of]
            seen.add(alert.id)
        return alert

    groups: dict[int, tuple[Alert, list[Alert]]] = {}
    for alert in alerts:
        top = head(alert)
        group = groups.setdefault(top.id, (top, []))
        if top is not alert:
            group[1].append(alert)
    order = {a.id: i for i, a in enumerate(alerts)}
    return sorted(groups.values(), key=lambda g: order[g[0].id])


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


# --- the short why -----------------------------------------------------------------------
#
# An alert says in a few words why it matched, from the watchlist terms (never category ids),
# each named once, in the order a person reads a trade story: what (the chip, else the
# company), the action or policy, then where (the party of concern). ``/why`` and ``match``
# give the full explanation. The categories' roles are the shipped config's names; a category
# of a config of one's own is read as an action.

WHAT = ("chips", "companies", "chip_buyers")  # in this order: a chip says most
WHERE = ("china_parties", "jurisdictions", "governments")  # the party of concern first
TRADE_VERBS = ("trade_actions",)  # sell, ship, buy: named when no policy term is
WHY_WHAT_MAX = 2
WHY_ACTION_MAX = 1
WHY_MAX = 80  # characters; a why line never outgrows a headline


def _generic(term: str) -> bool:
    """A chip word rather than a chip ("chips", "AI chip", "semiconductors"), or "government":
    named only when nothing more specific matched."""
    words = term.casefold().split()
    return not any(c.isdigit() for c in term) and (
        term[:1].islower() or any(w.startswith("chip") for w in words)
    )


def _reading_order(alert: Alert) -> list[Match]:
    """The matches, the title's first, each field's in the order its words come."""

    def key(m: Match) -> tuple[int, int, float]:
        text = alert.title if m.field == "title" else alert.summary
        at = text.find(m.text)
        return (m.field != "title", at if at >= 0 else len(text), -m.score)

    return sorted(alert.matches, key=key)


def _pick(matches: list[Match], categories: Sequence[str], n: int, named: set[str]) -> list[str]:
    """Up to ``n`` terms of the first of ``categories`` (in order) that has a specific one,
    else generic ones; the title's before the summary's, none already ``named``."""
    for generic in (False, True):
        for category in categories:
            found = [
                m.term
                for m in matches
                if m.category == category
                and _generic(m.term) == generic
                and m.term.casefold() not in named
            ]
            found = list(dict.fromkeys(found))[:n]
            if found:
                named.update(t.casefold() for t in found)
                return found
    return []


def why_parts(alert: Alert) -> list[str]:
    """The short why: ``["H20", "ban", "China"]``, and for an alert the learned opinion made,
    its score and the phrase that weighed most (``learned 0.91: "tightens the noose"``)."""
    ordered = _reading_order(alert)
    titled = [m for m in ordered if m.field == "title"] or ordered
    named: set[str] = set()
    what = _pick(titled, WHAT, WHY_WHAT_MAX, named) or _pick(ordered, WHAT, WHY_WHAT_MAX, named)
    actions = [m for m in ordered if m.category not in WHAT and m.category not in WHERE]
    titled_actions = [m for m in actions if m.field == "title"] or actions
    # a policy term says more than the trade verb beside it ("ban" before "ship")
    titled_actions.sort(key=lambda m: m.category in TRADE_VERBS)
    fresh = dict.fromkeys(m.term for m in titled_actions if m.term.casefold() not in named)
    action = list(fresh)[:WHY_ACTION_MAX]
    named.update(t.casefold() for t in action)
    where = _pick(titled, WHERE, 1, named) or _pick(ordered, WHERE, 1, named)
    # "sales to China" already says where, "AI chip rules" what
    said = set(" ".join(action).casefold().split())
    what = [w for w in what if not set(w.casefold().split()) <= said] if action else what
    where = [w for w in where if not set(w.casefold().split()) <= said]
    parts = [*what, *action, *where]
    if LEARNED_RULE in alert.rules:
        opinion = second_opinion(alert.title, alert.summary, {m.category for m in alert.matches})
        top = f": {_quoted(opinion.weighed[0][0])}" if opinion.weighed else ""
        parts.append(f"learned {opinion.score:.2f}{top}")
    return parts or [f"rule {', '.join(alert.rules)}"]


def _quoted(phrase: str) -> str:
    return f'"{phrase}"'


def why_line(alert: Alert, *, width: int = WHY_MAX) -> str:
    """``H20 · ban · China``: why the alert matched, in a few words (see ``why_parts``)."""
    return cut_text(" · ".join(why_parts(alert)), width)


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


def _link_html(alert: Alert, label: str) -> str:
    """The label (plain text) as a link to the alert's page, or just escaped without one."""
    link = _web_link(alert.link)
    return f'<a href="{html.escape(link, quote=True)}">{_esc(label)}</a>' if link else _esc(label)


def _fit_lines(
    plain: list[str], html_parts: list[str], extra: list[str], *, limit: int, summary: str
) -> str:
    """``html_parts`` (whose visible text is ``plain``), then as many ``extra`` plain lines as
    fit within ``limit``, then as much of ``summary`` (plain) as still fits, in italics."""
    used = sum(utf16_len(p) for p in plain) + len(plain) - 1  # newlines between parts
    html_parts = list(html_parts)
    for line in extra:
        cost = utf16_len(line) + 1
        if used + cost > limit - 2:
            break
        html_parts.append(_esc(line))
        used += cost
    room = min(SUMMARY_MAX, limit - used - 2)
    if summary and room > 20:
        html_parts.append(f"<i>{_esc(cut_text(summary, room))}</i>")
    return "\n".join(html_parts)


def telegram_html(alert: Alert, *, limit: int = TELEGRAM_LIMIT, replying: bool = False) -> str:
    """Headline as a link, source and time, what matched, then as much summary as fits. A
    follow-up has its short form instead (``replying``: under its story's message)."""
    if alert.thread_of is not None:
        return _telegram_followup(alert, limit=limit, replying=replying)
    title = cut_text(alert.title, TITLE_MAX)
    head_html = f"<b>{_link_html(alert, title)}</b>"
    meta = f"{outlet_name(alert)} · {when_text(alert)}"
    matched = "🎯 " + why_line(alert)
    plain = [title, meta, matched]
    html_parts = [head_html, _esc(meta), _esc(matched)]
    if story_line(alert):
        also = "📣 " + cut_text(story_line(alert, names=4), 400)
        plain.append(also)
        html_parts.append(_esc(also))
    if alert.major:
        plain.insert(0, major_line(alert))
        html_parts.insert(0, f"<b>{_esc(major_line(alert))}</b>")
    return _fit_lines(plain, html_parts, report_lines(alert), limit=limit, summary=alert.summary)


def _telegram_followup(alert: Alert, *, limit: int, replying: bool) -> str:
    """ "↳ Bloomberg: <headline>", what it adds below; not replying, the story named above."""
    title = cut_text(alert.title, TITLE_MAX)
    byline = ("🔥 " if alert.major else "") + followup_byline(alert)
    lead = "↳ " if replying else ""
    plain = [f"{lead}{byline}: {title}"]
    html_parts = [f"{lead}<b>{_esc(byline)}</b>: {_link_html(alert, title)}"]
    if not replying:
        plain.insert(0, f"↳ {follow_up_to(alert)}")
        html_parts.insert(0, _esc(plain[0]))
    return _fit_lines(
        plain, html_parts, report_lines(alert), limit=limit, summary=followup_summary(alert)
    )


def _digest_entries(alerts: Sequence[Alert], max_alerts: int) -> list[tuple[Alert, bool]]:
    """The first ``max_alerts`` alerts, each with whether its story is listed before it (then
    it goes under the story)."""
    listed: set[int] = set()
    entries = []
    for alert in alerts[:max_alerts]:
        entries.append((alert, alert.thread_of in listed))
        listed.add(alert.id)
    return entries


def _digest_order(included: list[Alert]) -> list[tuple[int | None, Alert]]:
    """(number, alert) in the order a digest lists them: each story numbered, its follow-ups
    (number None) under it."""
    rows: list[tuple[int | None, Alert]] = []
    for n, (alert, followups) in enumerate(thread_groups(included), start=1):
        rows.append((n, alert))
        rows.extend((None, f) for f in followups)
    return rows


def _digest_tail(alert: Alert, *, under: bool, width: int) -> str:
    """What follows a digest line's headline: the outlet, then what matched or, for a follow-up
    whose story is not listed above it, the story it follows."""
    if under:
        return f" — {outlet_name(alert)}"
    if alert.thread_of is not None:
        return f" — {outlet_name(alert)} · {follow_up_to(alert)}"
    return f" — {outlet_name(alert)} · {why_line(alert, width=width)}"


def _digest_lead(number: int | None, alert: Alert) -> str:
    if number is None:
        return "    ↳ "
    return f"{number}. ↳ " if alert.thread_of is not None else f"{number}. "


def telegram_digest(
    alerts: Sequence[Alert], *, limit: int = TELEGRAM_LIMIT, max_alerts: int = DIGEST_MAX_ALERTS
) -> tuple[str, list[Alert]]:
    """One message listing as many alerts as fit, follow-ups under their story when it is
    listed too; returns it and the alerts it includes (the first ones given)."""
    header_plain = "📰 {n} alerts (digest)"
    included: list[Alert] = []
    used = utf16_len(header_plain.format(n=99)) + 1
    for alert, under in _digest_entries(alerts, max_alerts):
        title = cut_text(alert.title, 300)
        lead = _digest_lead(None if under else max_alerts, alert)
        cost = utf16_len(f"{lead}{title}{_digest_tail(alert, under=under, width=120)}") + 1
        if included and used + cost > limit:
            break
        included.append(alert)
        used += cost
    lines_html = [
        _esc(_digest_lead(n, a))
        + _link_html(a, cut_text(a.title, 300))
        + _esc(_digest_tail(a, under=n is None, width=120))
        for n, a in _digest_order(included)
    ]
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


def _slack_message(fallback: str, body: str) -> dict:
    """A message of one mrkdwn section; ``fallback`` (plain) is what notifications show."""
    return {
        "text": slack_escape(fallback),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": cut_text(body, SLACK_SECTION_MAX)},
            }
        ],
        "unfurl_links": False,
    }


def slack_payload(alert: Alert, *, replying: bool = False) -> dict:
    """The alert as one section; a follow-up has its short form (``replying``: in its story's
    thread; else naming the story)."""
    if alert.thread_of is not None:
        return _slack_followup(alert, replying=replying)
    title = cut_text(alert.title, TITLE_MAX)
    head = f"*{_slack_link(alert, title)}*"
    meta = slack_escape(f"{outlet_name(alert)} · {when_text(alert)}")
    matched = slack_escape("🎯 " + why_line(alert))
    body = "\n".join([head, meta, matched])
    if story_line(alert):
        body += "\n" + slack_escape("📣 " + story_line(alert, names=4))
    for line in report_lines(alert, width=200):
        body += "\n" + slack_escape(line)
    if alert.summary:
        body += "\n" + slack_escape(cut_text(alert.summary, SUMMARY_MAX))
    return _slack_message(f"{title} — {alert.feed}", body)


def _slack_followup(alert: Alert, *, replying: bool) -> dict:
    title = cut_text(alert.title, TITLE_MAX)
    byline = ("🔥 " if alert.major else "") + followup_byline(alert)
    lead = "↳ " if replying else ""
    lines = [f"{lead}*{slack_escape(byline)}*: {_slack_link(alert, title)}"]
    if not replying:
        lines.insert(0, slack_escape(f"↳ {follow_up_to(alert)}"))
    if followup_summary(alert):
        lines.append(slack_escape(followup_summary(alert)))
    lines.extend(slack_escape(line) for line in report_lines(alert, width=200))
    return _slack_message(f"↳ {byline}: {title}", "\n".join(lines))


def slack_digest(
    alerts: Sequence[Alert], *, max_alerts: int = DIGEST_MAX_ALERTS
) -> tuple[dict, list[Alert]]:
    """One message listing as many alerts as fit, follow-ups under their story when it is
    listed too; returns it and the alerts it includes (the first ones given)."""
    included: list[Alert] = []
    used = 0
    for alert, under in _digest_entries(alerts, max_alerts):
        cost = len(_slack_digest_line(max_alerts, alert, under=under)) + 1
        if included and used + cost > SLACK_SECTION_MAX - 100:
            break
        included.append(alert)
        used += cost
    lines = [_slack_digest_line(n, a, under=n is None) for n, a in _digest_order(included)]
    header = f"📰 *{len(included)} alerts* (digest)"
    return _slack_message(f"{len(included)} alerts (digest)", "\n".join([header, *lines])), included


def _slack_digest_line(number: int | None, alert: Alert, *, under: bool) -> str:
    lead = _digest_lead(None if under else number, alert)
    tail = _digest_tail(alert, under=under, width=100)
    return slack_escape(lead) + _slack_link(alert, cut_text(alert.title, 200)) + slack_escape(tail)
