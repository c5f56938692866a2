"""Helpers the benchmarks share, one copy each. A script imports it as ``common``: Python puts
the script's own folder, ``benchmarks/``, on ``sys.path``."""

from __future__ import annotations

import random

# What made-up names (companies, details, new words) of the synthetic data are built from.
SYLLABLES = (
    "ax bel cor dyn el fen gra hal ion jun kor lum mar nex or pel quan ros sil tek ul vel wen xin "
    "yang zen tron vix ra lis mi chip sem ica on ta"
).split()


def made_up_word(rng: random.Random, *, syllables: list[str] = SYLLABLES, most: int = 3) -> str:
    """A capitalised word of two to ``most`` syllables."""
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, most))).capitalize()
