"""How long and how readable the alerts' why line (the 🎯 line) is, on real alerts.

Runs the matcher over the real headlines' label-1 rows (../shared/eval/headlines_real.tsv, each
as a title with no summary), renders the why line of every one that alerts, and prints its
length against the headline's: how many there are, the median and the longest, how many are
longer than their headline. ``--show N`` prints N of them. On a revision from before the short
why (issue #23), the script renders the long line it replaced (``matched_line``), so the same
command measures both sides: run it in a checkout of the older revision.

    python benchmarks/why_lines.py [--config config.yaml] [--show 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.config import load_config  # noqa: E402
from alerts.deliver import format as fmt  # noqa: E402
from alerts.match import compile_matcher  # noqa: E402
from alerts.types import Alert  # noqa: E402

from eval_match import DEFAULT_REAL, read_real  # noqa: E402

# The line as this revision renders it: the short why, or (before it) the full match line.
render = getattr(fmt, "why_line", None) or fmt.matched_line  # type: ignore[attr-defined]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL)
    p.add_argument("--show", type=int, default=0, help="print this many why lines")
    p.add_argument("--out", type=Path, help="write every headline and its why line here")
    args = p.parse_args()
    config = load_config(args.config)
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    items, _ = read_real(args.real)
    rows = []
    for n, item in enumerate(i for i in items if i.label == 1):
        result = matcher.match(item.title)
        if not result.alert:
            continue
        alert = Alert(
            id=n,
            feed="Wire",
            title=item.title,
            link="",
            summary="",
            published=None,
            created_at=datetime.now(timezone.utc),
            matches=result.matches,
            rules=result.rules,
        )
        rows.append((item.title, render(alert)))
    lengths = [len(why) for _, why in rows]
    longer = sum(len(why) > len(title) for title, why in rows)
    print(
        f"{len(rows)} alerting label-1 headlines: why line median {statistics.median(lengths):g} "
        f"characters, longest {max(lengths)}; {longer} longer than their headline "
        f"(headlines: median {statistics.median(len(t) for t, _ in rows):g})"
    )
    for title, why in rows[: args.show]:
        print(f"  {title}\n    🎯 {why}")
    if args.out:
        args.out.write_text("".join(f"{title}\t{why}\n" for title, why in rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
