"""Stories: what the clusterer decided, kept; edits of sent alerts; momentum."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..types import FeedItem, NewItem, StoryRecord
from .engine import Database
from .schema import _chunks, _iso, _marks, _when


class StoriesStore:
    """Stories and the edits they ask of sent alerts."""

    db: Database

    def _new_story(
        self, story_id: int, alert_id: int, item: FeedItem, new: NewItem, *, now: datetime
    ) -> None:
        members = [list(new.member)] if new.member is not None else []
        self.db.execute(
            "INSERT INTO stories (id, alert_id, title, first_seen, last_seen, words, entities, "
            "actions, sources, outlets, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                story_id,
                alert_id,
                item.title,
                _iso(now),
                _iso(now),
                json.dumps(members),
                json.dumps([list(new.entities)] if members else []),
                json.dumps(list(new.story_actions)),
                json.dumps([new.source_name or item.feed]),
                json.dumps([new.outlet or item.feed]),
                new.thread,
            ],
        )
        self.db.execute("UPDATE alerts SET story_id = ? WHERE id = ?", [story_id, alert_id])

    def max_story_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM stories").fetchone()[0]

    def apply_joins(
        self, joins: Sequence[NewItem], *, now: datetime, edit_delay: timedelta = timedelta(0)
    ) -> None:
        """Story joins deferred by ``record_poll`` until the story's own feed was recorded."""
        with self.db.atomic():
            for new in joins:
                if new.story_id is not None:
                    self._join_story(new.story_id, new.item, new, now=now, edit_delay=edit_delay)

    def _join_story(
        self, story_id: int, item: FeedItem, new: NewItem, *, now: datetime, edit_delay: timedelta
    ) -> bool:
        """Record what the clusterer decided: the story gains an outlet (and a member headline,
        and a headline to show, when the clusterer says so). False: no such story (yet)."""
        row = self.db.execute(
            "SELECT words, entities, sources, reports, outlets FROM stories WHERE id = ?",
            [story_id],
        ).fetchone()
        if row is None:
            return False
        words, entities, sources, reports, outlets = (json.loads(v) for v in row)
        if new.member is not None:
            words.append(list(new.member))
            entities.append(list(new.entities))
        name = new.source_name or item.feed
        if (new.outlet or item.feed) not in outlets:
            outlets.append(new.outlet or item.feed)
        changed = name not in sources
        if changed:
            sources.append(name)
        if new.report and [name, item.title] not in reports:
            reports.append([name, item.title])
            changed = True
        self.db.execute(
            "UPDATE stories SET last_seen = ?, words = ?, entities = ?, sources = ?, "
            "reports = ?, outlets = ? WHERE id = ?",
            [
                _iso(now),
                json.dumps(words),
                json.dumps(entities),
                json.dumps(sources),
                json.dumps(reports),
                json.dumps(outlets),
                story_id,
            ],
        )
        if changed:
            self._want_edit(story_id, at=now + edit_delay)
        return True

    def _want_edit(self, story_id: int, *, at: datetime) -> None:
        """Ask for an edit of the story's sent messages. Quick successive updates merge into one
        edit: its time ``at`` is set by the first of them (``stories.edit_delay_seconds``)."""
        self.db.execute(
            "UPDATE deliveries SET edit_pending = 1, edit_after = COALESCE(edit_after, ?) "
            "WHERE status = 'sent' AND via_digest = 0 AND alert_id = "
            "(SELECT alert_id FROM stories WHERE id = ?)",
            [_iso(at), story_id],
        )

    def story_momentum(self, story_id: int, *, since: datetime) -> int | None:
        """Distinct sources that carried a story since ``since``; None when the story is
        unknown or already major (there is nothing left to decide)."""
        row = self.db.execute("SELECT major FROM stories WHERE id = ?", [story_id]).fetchone()
        if row is None or row[0]:
            return None
        return int(
            self.db.execute(
                "SELECT COUNT(DISTINCT COALESCE(source, feed)) FROM items WHERE story_id = ? "
                "AND seen_at >= ?",
                [story_id, _iso(since)],
            ).fetchone()[0]
        )

    def mark_major(
        self, story_id: int, *, now: datetime, edit_delay: timedelta = timedelta(0)
    ) -> None:
        """Record that a story became major, and ask for an edit of its sent messages."""
        with self.db.atomic():
            self.db.execute("UPDATE stories SET major = 1 WHERE id = ?", [story_id])
            self._want_edit(story_id, at=now + edit_delay)

    def recent_stories(self, *, since: datetime) -> list[StoryRecord]:
        rows = self.db.query(
            "SELECT * FROM stories WHERE last_seen >= ? ORDER BY id", [_iso(since)]
        )
        return [_story_record(r) for r in rows]

    def stories_by_id(self, ids: Sequence[int]) -> list[StoryRecord]:
        found = []
        for chunk in _chunks(list(ids)):
            found += [
                _story_record(r)
                for r in self.db.query(
                    f"SELECT * FROM stories WHERE id IN ({_marks(chunk)}) ORDER BY id", chunk
                )
            ]
        return found


def _story_record(r: dict) -> StoryRecord:
    return StoryRecord(
        id=r["id"],
        alert_id=r["alert_id"],
        title=r["title"],
        first_seen=_when(r["first_seen"]),
        last_seen=_when(r["last_seen"]),
        members=tuple(
            zip(
                map(tuple, json.loads(r["words"])),
                map(tuple, json.loads(r["entities"])),
                strict=False,
            )
        ),
        actions=tuple(json.loads(r["actions"])),
        sources=tuple(json.loads(r["sources"])),
        major=bool(r["major"]),
        outlets=tuple(json.loads(r.get("outlets") or "[]")),
        parent=r.get("parent"),
    )
