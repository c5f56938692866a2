"""Reading config.yaml: libyaml through alerts/config/document.py against ruamel's pure-Python
round-trip reader (what it replaced), on the shipped file, in the same run.

    python benchmarks/bench_config.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402

from alerts.config.document import read_document  # noqa: E402


def _best(read, text: str, rounds: int) -> float:
    """The best of ``rounds`` reads, in seconds: the least disturbed by a noisy machine."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        read(text)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    before = _best(lambda t: YAML(typ="rt", pure=True).load(t), text, args.rounds)
    after = _best(read_document, text, args.rounds)
    lines = text.count("\n")
    print(f"config.yaml ({lines} lines), best of {args.rounds}:")
    print(f"  round-trip reader (before): {before * 1000:7.1f} ms")
    print(f"  libyaml reader (now):       {after * 1000:7.1f} ms")
    print(f"  {before / after:.1f}x faster")


if __name__ == "__main__":
    main()
