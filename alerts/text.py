"""Text as the matcher sees it: normalised (Unicode width, case, quotes, possessives, punctuation
to single spaces, CJK runs set apart), split into tokens that map back to the original, and a
term's automaton keys in every variant that should match it (plurals, hyphen/space/joined model
numbers, singular last words of phrases)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from bisect import bisect_right

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_RUN_RE = re.compile(f"[{_CJK}]+")
_CJK_CHAR_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(r"[^\W_]+")
_POSSESSIVE_RE = re.compile(r"(?<=[^\W_])'s?(?![^\W_])|(?<=s)'(?![^\W_])")
_QUOTES = str.maketrans({c: "'" for c in "’‘ʼ`´′"})
# The original text's tokens, in the same order as the normalised ones: a word may contain
# apostrophes ("Nvidia's" is one token), and CJK runs stand apart.
_TOKEN_RE = re.compile(rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+(?:['’ʼ`´′](?:(?![{_CJK}])[^\W_])+)*")
_ASCII_TOKEN_RE = re.compile(r"[^\W_]+(?:['`][^\W_]+)*", re.ASCII)
_DIGIT_BOUNDARY_RE = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")


def normalise(text: str) -> str:
    """Space-padded, space-separated lowercase tokens: ``" nvidia h200 ai chips "``."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
        if _CJK_CHAR_RE.search(text):
            text = _CJK_RUN_RE.sub(r" \g<0> ", text)
        text = text.casefold()
    else:
        text = text.lower()
    if "'" in text:
        text = _POSSESSIVE_RE.sub("", text).replace("'", "")
    return " " + " ".join(_WORD_RE.findall(text)) + " "


def token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) in the original text, one per token of ``normalise(text)`` (usually)."""
    pattern = _ASCII_TOKEN_RE if text.isascii() else _TOKEN_RE
    return list(map(re.Match.span, pattern.finditer(text)))


def _plural(word: str) -> list[str]:
    # Words of three letters too ("ban" → "bans", "GPU" → "GPUs"); a case-sensitive term still
    # matches only as written, so "Arm" never matches "Arms". Two-letter words ("US", "UK")
    # have none: "USS" is not a plural.
    if word.endswith("s") or not (len(word) >= 3 or any(c.isdigit() for c in word)):
        return []
    if word.endswith("y") and len(word) > 4 and word[-2] not in "aeiou":
        return [word + "s", word[:-1] + "ies"]
    if word.endswith(("x", "ch", "sh")):
        return [word + "es"]
    return [word + "s"]


def _singular(word: str) -> list[str]:
    if len(word) < 5 or not word.endswith("s") or word.endswith("ss") or not word.isalpha():
        return []
    if word.endswith("ies"):
        return [word[:-3] + "y"]
    return [word[:-1]]


def _split_options(word: str) -> list[str]:
    """Each letter/digit boundary either joined or split: "mi308x" → mi308x, mi 308x, …"""
    parts = _DIGIT_BOUNDARY_RE.split(word)
    if len(parts) == 1 or len(parts) > 5:
        return [word]
    options = []
    for joins in itertools.product(("", " "), repeat=len(parts) - 1):
        options.append(parts[0] + "".join(j + p for j, p in zip(joins, parts[1:], strict=True)))
    return options


def phrase_keys(phrase: str) -> set[str]:
    """Automaton keys for a phrase: padded token sequences in every variant that should match,
    or, for a phrase written only in CJK, the bare characters (matched inside CJK runs)."""
    norm = normalise(phrase).strip()
    if not norm:
        return set()
    if _CJK_CHAR_RE.search(norm) and " " not in norm:
        return {norm}
    words = norm.split(" ")
    last_forms = [words[-1], *_plural(words[-1])]
    if len(words) > 1:  # "export controls" also matches "export-control rules"
        last_forms += _singular(words[-1])
    sequences = {" ".join([*words[:-1], last]) for last in last_forms}
    if len(words) > 1 and any(c.isdigit() for c in norm):
        sequences.add("".join(words))  # "Ascend 910C" → "ascend910c"
    keys = set()
    for seq in sequences:
        for variant in itertools.product(*(_split_options(w) for w in seq.split(" "))):
            keys.add(" " + " ".join(variant) + " ")
    return keys


_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
_POSSESSIVE_ASCII_RE = re.compile(r"(?<=[a-z0-9])'s\b")


def normalise_ascii(text: str) -> str:
    """``normalise`` for ASCII text (most headlines), length for length: an offset in it is an
    offset in the text."""
    low = text.lower()
    if "'" in low:
        low = _POSSESSIVE_ASCII_RE.sub("  ", low)
    return " " + low.translate(_ASCII_SEPARATORS) + " "


class TokenMap:
    """Maps character ranges of ``normalise(text)`` back to ranges of the original text,
    token by token (normalising non-ASCII text can change lengths)."""

    def __init__(self, text: str, norm: str):
        self.spans = token_spans(text)
        self.starts = [i + 1 for i, c in enumerate(norm[:-1]) if c == " "]  # token starts
        self.aligned = len(self.spans) == len(self.starts)
        self.text, self.norm = text, norm

    def locate(self, a: int, b: int) -> tuple[int, int, str]:
        """(start, end, text) in the original for ``norm[a:b]``."""
        if not self.aligned:  # rare: show the normalised words rather than a wrong slice
            return a, b, self.norm[a:b]
        first = bisect_right(self.starts, a) - 1
        last = bisect_right(self.starts, b - 1) - 1
        offset = a - self.starts[first]  # inside a CJK run
        start = self.spans[first][0] + offset
        if offset or self.norm[b] != " ":
            end = start + (b - a)  # a CJK key: characters map one to one
        else:
            end = self.spans[last][1]
        return start, end, self.text[start:end]


def squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", re.sub(r"['’ʼ]s\b", "", text))


def deletions(word: str) -> set[str]:
    """The word and every form of it with one character deleted (a symmetric-delete index)."""
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}
