"""Seen items: dedupe lookups, recording a poll, replaying what was seen."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..types import FeedItem, NewItem, StoredItem
from .digests import DIGEST_MODE_PREFIX
from .engine import Database, insert_id
from .schema import _chunks, _iso, _marks, _match_json, _when, read_only, table_columns


class ItemsStore:
    """Seen items and the one transaction that records a poll."""

    db: Database

    if TYPE_CHECKING:  # the other parts of Store (FeedsStore, StoriesStore) provide these

        def _upsert_feed(self, name: str, url: str) -> None: ...
        def _set_feed(
            self, name: str, fields: dict[str, object], *, url: str | None = None
        ) -> int: ...
        def _mark_ok(
            self, name: str, status: str, now: datetime, fields: dict[str, object]
        ) -> None: ...
        def _new_story(
            self, story_id: int, alert_id: int, item: FeedItem, new: NewItem, *, now: datetime
        ) -> None: ...
        def _join_story(
            self,
            story_id: int,
            item: FeedItem,
            new: NewItem,
            *,
            now: datetime,
            edit_delay: timedelta,
        ) -> bool: ...

    def known_items(self, feed: str, items: Sequence[tuple[str, str]]) -> set[int]:
        """Indexes of (guid, canonical_link) pairs already seen: same guid in this feed, or the
        same canonical link from any feed. Two queries per batch, not two per item."""
        known_guids: set[str] = set()
        known_links: set[str] = set()
        guids = list({g for g, _ in items})
        links = list({link for _, link in items if link})
        for chunk in _chunks(guids):
            known_guids.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT guid FROM items WHERE feed = ? AND guid IN ({_marks(chunk)})",
                    [feed, *chunk],
                )
            )
        for chunk in _chunks(links):
            known_links.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT canonical_link FROM items WHERE canonical_link IN ({_marks(chunk)})",
                    chunk,
                )
            )
        return {
            i
            for i, (guid, link) in enumerate(items)
            if guid in known_guids or (link and link in known_links)
        }

    def record_poll(
        self,
        name: str,
        url: str,
        new_items: Iterable[NewItem],
        *,
        now: datetime,
        edit_delay: timedelta = timedelta(0),
        deferred: list[NewItem] | None = None,
        pushed: bool = False,
        **fields: object,
    ) -> list[int]:
        """In one transaction: mark the poll successful (with ``fields`` such as validators and
        the next poll time), record new items as seen, and queue each new alert for the
        destinations the pipeline chose (``NewItem.destinations``). Returns the new alert ids. An
        item joining a story that another feed of the same cycle has not recorded yet goes to
        ``deferred`` (see ``apply_joins``). ``pushed``: the items came from a WebSub hub, not a
        poll: the feed's poll state (validators, schedule, failures) stays as it was."""
        alert_ids = []
        with self.db.atomic():
            self._upsert_feed(name, url)
            if pushed:
                self._set_feed(name, fields)
            else:
                self.db.execute(
                    "UPDATE feeds SET first_polled_at = COALESCE(first_polled_at, ?) "
                    "WHERE name = ?",
                    [_iso(now), name],
                )
                self._mark_ok(name, "ok", now, fields)
            for new in new_items:
                item, alert_id, story_id = new.item, None, new.story_id
                if story_id is not None and not new.new_story:
                    if (
                        not self._join_story(story_id, item, new, now=now, edit_delay=edit_delay)
                        and deferred is not None
                    ):
                        deferred.append(new)
                # An alert no destination takes is recorded all the same: its story stands
                # for other outlets to join, and its follow-ups to thread under.
                elif new.result is not None and (new.result.alert or new.destinations):
                    alert_id = insert_id(
                        self.db,
                        "INSERT INTO alerts (feed, title, link, summary, published, created_at, "
                        "matches, rules, thread_story, decision) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            item.feed,
                            item.title,
                            item.link,
                            item.summary,
                            _iso(item.published),
                            _iso(now),
                            json.dumps([_match_json(m) for m in new.result.matches]),
                            json.dumps(list(new.result.rules)),
                            new.thread,
                            new.decision or None,
                        ],
                    )
                    alert_ids.append(alert_id)
                    for dest in new.destinations:
                        # A subscriber who chose a digest: held for it, not sent now.
                        self.db.execute(
                            "INSERT INTO deliveries (alert_id, destination, status) "
                            "SELECT ?, ?, CASE WHEN EXISTS (SELECT 1 FROM settings WHERE "
                            "key = ?) THEN 'digest' ELSE 'pending' END WHERE 1 = 1 "
                            "ON CONFLICT DO NOTHING",
                            [alert_id, dest, f"{DIGEST_MODE_PREFIX}{dest}"],
                        )
                    if story_id is not None:
                        self._new_story(story_id, alert_id, item, new, now=now)
                # DO NOTHING: two entries of one feed may share a guid; the first one wins.
                self.db.execute(
                    "INSERT INTO items (feed, guid, link, canonical_link, title, published, "
                    "seen_at, alert_id, story_id, title_key, source, summary) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [
                        item.feed,
                        item.guid,
                        item.link,
                        new.canonical_link or None,
                        item.title,
                        _iso(item.published),
                        _iso(now),
                        alert_id,
                        story_id,
                        new.title_key or None,
                        new.outlet if new.outlet and new.outlet != item.feed else None,
                        item.summary or None,
                    ],
                )
        return alert_ids

    def recent_titles(self, *, limit: int) -> list[str]:
        """The titles of the most recently seen items, newest first."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT title FROM items WHERE title IS NOT NULL ORDER BY seen_at DESC LIMIT ?",
                [limit],
            )
        ]

    def recent_title_keys(self, feed: str, *, since: datetime) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT title_key FROM items WHERE feed = ? AND seen_at >= ? AND title_key IS NOT NULL",
                [feed, _iso(since)],
            )
        ]


def stored_items(path: Path | str, *, since: datetime) -> list[StoredItem]:
    """Items seen since ``since``, oldest first, read without disturbing a running bot."""
    with read_only(path) as db:
        columns = table_columns(db, "items")
        summary = "i.summary" if "summary" in columns else "NULL"
        rows = db.execute(
            f"SELECT i.feed, i.title, {summary}, i.link, i.seen_at, "
            "(i.story_id IS NOT NULL OR (a.id IS NOT NULL AND a.rules != '[]')) "
            "FROM items i LEFT JOIN alerts a ON a.id = i.alert_id "
            "WHERE i.seen_at >= ? ORDER BY i.seen_at, i.id",
            [_iso(since)],
        ).fetchall()
    return [
        StoredItem(
            feed=f,
            title=t,
            summary=s or "",
            link=link or "",
            seen_at=_when(at),
            alerted=bool(alerted),
        )
        for f, t, s, link, at, alerted in rows
    ]
