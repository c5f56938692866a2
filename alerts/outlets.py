"""How alerts name an outlet: "Reuters", not the feed that carried it ("Google News - Nvidia
China") nor a bare host.

The clusterer's outlet (``alerts.stories.outlet_of``: the item's ``<source>``, else its link's
host, else the feed) tells outlets apart; this turns it into the name a reader knows: the
``<source>`` as written, a well-known host by its name, a publisher's own host by the feed's
configured name, any other host as it is (``theregister.com``), else the feed's name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# Hosts (without "www.") of outlets that write about chip trade, by the name they go by.
KNOWN = {
    "reuters.com": "Reuters",
    "bloomberg.com": "Bloomberg",
    "ft.com": "Financial Times",
    "wsj.com": "The Wall Street Journal",
    "nytimes.com": "The New York Times",
    "washingtonpost.com": "The Washington Post",
    "apnews.com": "AP",
    "cnbc.com": "CNBC",
    "cnn.com": "CNN",
    "bbc.co.uk": "BBC",
    "bbc.com": "BBC",
    "theguardian.com": "The Guardian",
    "economist.com": "The Economist",
    "scmp.com": "SCMP",
    "asia.nikkei.com": "Nikkei Asia",
    "nikkei.com": "Nikkei",
    "caixinglobal.com": "Caixin",
    "globaltimes.cn": "Global Times",
    "chinadaily.com.cn": "China Daily",
    "xinhuanet.com": "Xinhua",
    "channelnewsasia.com": "CNA",
    "straitstimes.com": "The Straits Times",
    "koreaherald.com": "The Korea Herald",
    "taipeitimes.com": "Taipei Times",
    "focustaiwan.tw": "Focus Taiwan",
    "digitimes.com": "DigiTimes",
    "trendforce.com": "TrendForce",
    "theverge.com": "The Verge",
    "arstechnica.com": "Ars Technica",
    "tomshardware.com": "Tom's Hardware",
    "theregister.com": "The Register",
    "techcrunch.com": "TechCrunch",
    "wired.com": "Wired",
    "engadget.com": "Engadget",
    "eetimes.com": "EE Times",
    "theinformation.com": "The Information",
    "semafor.com": "Semafor",
    "axios.com": "Axios",
    "politico.com": "Politico",
    "barrons.com": "Barron's",
    "marketwatch.com": "MarketWatch",
    "fortune.com": "Fortune",
    "forbes.com": "Forbes",
    "businessinsider.com": "Business Insider",
    "finance.yahoo.com": "Yahoo Finance",
    "cnet.com": "CNET",
    "zdnet.com": "ZDNET",
}

# Second-level labels under a country's domain ("bbc.co.uk"): the site is one label further in.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"})


def _site(host: str) -> str:
    """``feeds.arstechnica.com`` → ``arstechnica.com``; ``feeds.bbci.co.uk`` → ``bbci.co.uk``."""
    labels = host.lower().removeprefix("www.").split(".")
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().removeprefix("www.")
    except ValueError:
        return ""


def outlet_name(outlet: str, *, source: str, feed: str, feed_url: str) -> str:
    """The name alerts give the outlet an item came from, given the clusterer's ``outlet`` (a
    ``<source>``, a host, or the feed) and the feed that carried it."""
    if source.strip() or outlet == feed:
        return source.strip() or feed
    host = outlet.lower().removeprefix("www.")
    for key in (host, _site(host)):
        if key in KNOWN:
            return KNOWN[key]
    if _site(host) == _site(_host(feed_url)):
        return feed  # a publisher's own feed: its configured name is the readable one
    return host
