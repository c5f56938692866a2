"""``/digest``: a subscriber's choice between each alert as it comes and one digest a day, and
an admin's look at a destination's digest so far (queued to their private chat, through the
outbox like any digest)."""

from __future__ import annotations

import html
import logging
from zoneinfo import ZoneInfo

from ..config import DigestConfig
from ..config.values import clock_time, time_zone
from ..deliver import personal_destination
from ..digest import next_due, so_far, subscriber_schedule, subscriber_settings
from ..logs import event
from ..runtime import Runtime
from .request import Refused, Request, Services, args_of

log = logging.getLogger("chipwatch.commands")


def digest_command(request: Request, services: Services) -> str:
    """``/digest daily [HH:MM] [zone]`` or ``/digest instant``: a subscriber's choice; an
    admin's ``/digest [destination]``: the digest so far, sent to them now."""
    words = args_of(request).split()
    runtime = services.runtime
    if words and words[0].lower() in ("daily", "instant"):
        return _digest_mode(request, runtime, words)
    if not request.is_admin:
        mode = runtime.store.digest_modes().get(personal_destination(request.chat_id))
        now = (
            f"one digest a day, {subscriber_schedule(mode).describe().removeprefix('daily ')}"
            if mode
            else "each alert as it comes"
        )
        return (
            f"Your subscriptions come as {now}.\n"
            "/digest daily [HH:MM] [time zone] for one message a day, /digest instant for each "
            "alert as it comes."
        )
    routes = runtime.config.destinations
    name = words[0] if words else None
    dest = next((d for d in routes.digests if d.name == name), None) if name else None
    dest = dest or (None if name else next(iter(routes.digests), None))
    if dest is None:
        known = ", ".join(d.name for d in routes.digests) or "none has one"
        raise Refused(f"no such destination with a digest ({known})" if name else known)
    if request.user_id is None:
        raise Refused("I cannot tell who asked")
    parts = so_far(runtime.config, runtime.store, dest, now=request.now)
    target = personal_destination(request.user_id)
    runtime.ensure_private_sink(request.user_id)
    runtime.store.queue_digest(
        target,
        period_start=request.now,
        period_end=request.now,
        stories=len(parts),
        parts=list(parts),
        now=request.now,
    )
    event(log, "digest_requested", user=request.user_id, destination=dest.name, parts=len(parts))
    where = "here" if request.private else "in our private chat"
    return f"📰 The {html.escape(dest.name)} digest so far is on its way {where}."


def _digest_mode(request: Request, runtime: Runtime, words: list[str]) -> str:
    if not request.private:
        raise Refused("choose in a private chat with me")
    mine = personal_destination(request.chat_id)
    if words[0].lower() == "instant":
        released = runtime.store.set_digest_mode(mine, None)
        event(log, "digest_mode", chat=request.chat_id, mode="instant", released=released)
        held = f" The {released} held alert(s) go out now." if released else ""
        return f"⚡ Your subscriptions come as each alert arrives.{held}"
    try:
        at = clock_time(words[1]) if len(words) > 1 else "08:00"
        zone = time_zone(words[2]) if len(words) > 2 else "UTC"
    except ValueError as exc:
        raise Refused(str(exc)) from None
    schedule = DigestConfig(at=at, timezone=zone)
    runtime.store.set_digest_mode(mine, subscriber_settings(schedule))
    runtime.ensure_private_sink(request.chat_id)
    event(log, "digest_mode", chat=request.chat_id, mode="daily", at=at, timezone=zone)
    due = next_due(schedule, request.now).astimezone(ZoneInfo(zone))
    return (
        f"📰 Your subscriptions now come as one digest a day at {at} {html.escape(zone)} "
        f"(next: {due:%a %d %b %H:%M}). /digest instant to go back."
    )
