"""WebSub (W3C Recommendation) subscriber: feeds whose publisher names a hub are pushed to
this bot within seconds of publication, instead of waiting for the next poll.

- Discovery happens on ordinary polls (``pipeline.discover``: ``Link:`` headers first, then
  the feed's own ``<link rel="hub">``); the store keeps what each feed names.
- ``subscriber``: one instance subscribes, renews each lease at 80% and unsubscribes feeds
  removed from the config; the state lives in the store, so it survives restarts.
- ``callback``: any instance answers the hub: verification of intent, and signed content,
  which goes through the poll's own pipeline steps.
- ``signature``: ``X-Hub-Signature`` (sha1, sha256, sha384, sha512).

A pushed feed is still polled, at its ``max_interval_seconds``: a safety net for a silent hub.
"""

from .callback import callback_routes, start_callback
from .signature import ALGORITHMS, check_signature, sign
from .subscriber import RENEW_AT, Subscriber, SubscriptionCollector, callback_url

__all__ = [
    "ALGORITHMS",
    "RENEW_AT",
    "Subscriber",
    "SubscriptionCollector",
    "callback_routes",
    "callback_url",
    "check_signature",
    "sign",
    "start_callback",
]
