"""Match headlines against watchlists and rules.

``compile_matcher(watchlists, rules)`` builds a ``Matcher`` once per config load; ``Matcher.match``
then works on whole tokens, never on substrings, which is what keeps "Arm" out of "farm" and
"SMIC" out of "seismic". Text is normalised per token (Unicode width, case, quotes, possessives,
plurals), hyphen/space variants of a term are indexed as alternative token sequences, and
Chinese terms are found inside runs of CJK characters, which have no spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz.distance import OSA

from .config import Rule, Term

Kind = Literal["exact", "alias", "fuzzy"]
Field = Literal["title", "summary"]

# A summary mention is weaker evidence than a title mention; scores are quality × field weight.
FIELD_WEIGHT = {"title": 1.0, "summary": 0.8}
KIND_QUALITY = {"exact": 100.0, "alias": 100.0}
FUZZY_MIN_TERM_LEN = 6
FUZZY_MIN_TOKEN_LEN = 5


@dataclass(frozen=True, slots=True)
class Match:
    """One watchlist term found in an item: what, where, how and how sure."""

    category: str
    term: str  # canonical name from the watchlist
    text: str  # the exact text in the headline or summary
    kind: Kind
    score: float
    field: Field = "title"

    def to_json(self) -> dict:
        return {"category": self.category, "term": self.term, "text": self.text,
                "kind": self.kind, "score": round(self.score, 1)}


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Everything the matcher found in one item, and the rules that held."""

    matches: tuple[Match, ...]
    rules: tuple[str, ...]

    @property
    def alert(self) -> bool:
        return bool(self.rules)

    def categories(self) -> frozenset[str]:
        return frozenset(m.category for m in self.matches)

    def to_json(self) -> dict:
        return {"alert": self.alert, "rules": list(self.rules),
                "matches": [m.to_json() for m in self.matches]}

    def explain(self) -> str:
        """A few lines for a person: verdict, then each match."""
        if self.alert:
            head = f"ALERT: rule(s) {', '.join(self.rules)} held"
        elif self.matches:
            head = "no alert: matches found, but no rule holds"
        else:
            head = "no alert: nothing on the watchlists matched"
        lines = [head]
        for m in self.matches:
            lines.append(f"  {m.category}: {m.term} ← {m.text!r} "
                         f"({m.kind}, {m.field}, score {m.score:.0f})")
        return "\n".join(lines)


# --- tokenising ---------------------------------------------------------------------------

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+(?:['’ʼ`´](?:(?![{_CJK}])[^\W_])+)*")
_CJK_RE = re.compile(rf"[{_CJK}]")
_APOSTROPHES = str.maketrans("", "", "'’ʼ`´")
_SPLIT_ALNUM_RE = re.compile(r"\d+|[^\d]+")


@dataclass(frozen=True, slots=True)
class Token:
    start: int
    end: int
    norm: str  # casefolded, width-normalised, possessive removed
    forms: tuple[str, ...]  # norm plus a singular form where one applies
    cjk: bool


def _normalise_word(raw: str) -> str:
    word = raw if raw.isascii() else unicodedata.normalize("NFKC", raw)
    word = word.casefold()
    for suffix in ("'s", "’s", "ʼs"):
        if word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word.translate(_APOSTROPHES)


def _singular(word: str) -> str | None:
    """A cautious singular: 'chips'→'chip', 'H20s'→'h20', but 'arms' and 'bans' stay as they are."""
    if len(word) < 3 or word[-1] != "s" or word[-2] == "s":
        return None
    if word[-2].isdigit():
        return word[:-1]
    if len(word) >= 5 and word.isalpha():
        if word.endswith("ies") and len(word) >= 6:
            return word[:-3] + "y"
        return word[:-1]
    return None


def tokenize(text: str) -> list[Token]:
    """Split text into word tokens and CJK runs, keeping offsets into the original text."""
    tokens = []
    for m in _TOKEN_RE.finditer(text):
        raw = m.group()
        if _CJK_RE.match(raw):
            tokens.append(Token(m.start(), m.end(), raw, (raw,), True))
            continue
        norm = _normalise_word(raw)
        single = _singular(norm)
        forms = (norm, single) if single else (norm,)
        tokens.append(Token(m.start(), m.end(), norm, forms, False))
    return tokens


def _phrase_variants(phrase: str) -> set[tuple[str, ...]]:
    """Token sequences that stand for a phrase: as written, split at letter/digit boundaries
    ("h200" → "h 200", so "H-200" matches), and joined ("Ascend 910C" → "ascend910c")."""
    words = [t.forms[-1] for t in tokenize(phrase) if not t.cjk]  # singular where one applies
    if not words:
        return set()
    split = tuple(p for w in words for p in _SPLIT_ALNUM_RE.findall(w))
    variants = {tuple(words), split}
    if len(words) > 1 and any(ch.isdigit() for ch in "".join(words)):
        variants.add(("".join(words),))
    return variants


def _is_cjk(phrase: str) -> bool:
    return bool(_CJK_RE.search(phrase))


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: tuple[str, ...]
    term: Term
    kind: Kind
    written: str  # the phrase as written in the config (case-sensitive checks)


class _PhraseIndex:
    """Token-sequence lookup keyed by first token; CJK phrases kept apart for substring search."""

    def __init__(self) -> None:
        self.by_first: dict[str, list[_Entry]] = {}
        self.cjk: list[tuple[str, _Entry]] = []

    def add(self, phrase: str, entry_term: Term, kind: Kind) -> None:
        if _is_cjk(phrase):
            self.cjk.append((phrase, _Entry((phrase,), entry_term, kind, phrase)))
            return
        for seq in _phrase_variants(phrase):
            self.by_first.setdefault(seq[0], []).append(_Entry(seq, entry_term, kind, phrase))

    def find(self, text: str, tokens: Sequence[Token]) -> Iterable[tuple[_Entry, int, int]]:
        """Yield (entry, start, end) for every occurrence in the text."""
        n = len(tokens)
        for i, tok in enumerate(tokens):
            if tok.cjk:
                for phrase, entry in self.cjk:
                    at = tok.norm.find(phrase)
                    if at >= 0:
                        yield entry, tok.start + at, tok.start + at + len(phrase)
                continue
            for form in tok.forms:
                for entry in self.by_first.get(form, ()):
                    seq = entry.seq
                    last = i + len(seq) - 1
                    if last >= n:
                        continue
                    if all(seq[k] in tokens[i + k].forms for k in range(1, len(seq))):
                        yield entry, tok.start, tokens[last].end


def _case_ok(entry: _Entry, text: str) -> bool:
    """Case-sensitive terms must appear with the case they were written in."""
    if not entry.term.case_sensitive:
        return True
    squash = re.sub(r"[\W_]+", "", text)
    return squash.startswith(re.sub(r"[\W_]+", "", entry.written))


class Matcher:
    """A compiled watchlist: call ``match(title, summary)`` as often as you like."""

    def __init__(self, watchlists: Mapping[str, Sequence[Term]], rules: Sequence[Rule]):
        self.watchlists = {cat: tuple(terms) for cat, terms in watchlists.items()}
        self.rules = tuple(rules)
        self._terms = _PhraseIndex()
        self._guards = _PhraseIndex()  # context and exclude words, keyed by the words themselves
        self._fuzzy: dict[str, list[Term]] = {}
        self._fuzzy_cache: dict[str, list[tuple[Term, float]]] = {}
        known_tokens: set[str] = set()
        for terms in self.watchlists.values():
            for term in terms:
                self._terms.add(term.name, term, "exact")
                for alias in term.aliases:
                    self._terms.add(alias, term, "alias")
                for word in (*term.context, *term.exclude):
                    self._guards.add(word, Term(name=word, category=""), "exact")
                for phrase in (term.name, *term.aliases):
                    for seq in _phrase_variants(phrase):
                        known_tokens.update(seq)
                if self._fuzzy_ok(term):
                    for key in _deletions(_normalise_word(term.name)):
                        self._fuzzy.setdefault(key, []).append(term)
        self._known_tokens = frozenset(known_tokens)

    @staticmethod
    def _fuzzy_ok(term: Term) -> bool:
        if term.fuzzy is not None:
            return term.fuzzy and len(term.name) >= FUZZY_MIN_TERM_LEN and term.name.isalpha()
        # Auto: only single-word proper names of 6+ letters ("Nvidia", "Huawei"); ordinary words
        # ("export") and model numbers ("H200") never tolerate typos.
        return len(term.name) >= FUZZY_MIN_TERM_LEN and term.name.isalpha() and term.name[0].isupper()

    def _fuzzy_candidates(self, word: str) -> list[tuple[Term, float]]:
        hit = self._fuzzy_cache.get(word)
        if hit is not None:
            return hit
        found: dict[str, tuple[Term, float]] = {}
        if len(word) >= FUZZY_MIN_TOKEN_LEN and word.isalpha() and word not in self._known_tokens:
            for key in _deletions(word):
                for term in self._fuzzy.get(key, ()):
                    target = _normalise_word(term.name)
                    if OSA.distance(word, target, score_cutoff=1) <= 1:
                        score = 100.0 * OSA.normalized_similarity(word, target)
                        found[term.name] = (term, score)
        result = list(found.values())
        if len(self._fuzzy_cache) > 200_000:
            self._fuzzy_cache.clear()
        self._fuzzy_cache[word] = result
        return result

    def _scan(self, text: str, field: Field) -> tuple[list[Match], set[str]]:
        """Matches of watchlist terms in one field, plus the guard words present."""
        tokens = tokenize(text)
        weight = FIELD_WEIGHT[field]
        spans: list[tuple[int, int, Match]] = []
        for entry, start, end in self._terms.find(text, tokens):
            snippet = text[start:end]
            if _case_ok(entry, snippet):
                spans.append((start, end, Match(entry.term.category, entry.term.name, snippet,
                                                entry.kind, KIND_QUALITY[entry.kind] * weight,
                                                field)))
        if self._fuzzy:
            for tok in tokens:
                if tok.cjk:
                    continue
                for term, score in self._fuzzy_candidates(tok.norm):
                    spans.append((tok.start, tok.end, Match(term.category, term.name,
                                                            text[tok.start:tok.end], "fuzzy",
                                                            score * weight, field)))
        guards = {entry.term.name for entry, _, _ in self._guards.find(text, tokens)}
        return _outermost(spans), guards

    def match(self, title: str, summary: str = "") -> MatchResult:
        """Match one item's title and summary; the result names the rules that held."""
        found, guards = self._scan(title, "title")
        if summary:
            more, more_guards = self._scan(summary, "summary")
            found += more
            guards |= more_guards
        best: dict[tuple[str, str], Match] = {}
        terms = {t.name: t for ts in self.watchlists.values() for t in ts} if found else {}
        for m in found:
            term = terms[m.term]
            if term.exclude and guards.intersection(term.exclude):
                continue
            if term.context and not guards.intersection(term.context):
                continue
            key = (m.category, m.term)
            if key not in best or m.score > best[key].score:
                best[key] = m
        matches = tuple(sorted(best.values(), key=lambda m: (-m.score, m.category, m.term)))
        return MatchResult(matches=matches, rules=self._rules_that_hold(matches))

    def _rules_that_hold(self, matches: Sequence[Match]) -> tuple[str, ...]:
        cats = {m.category for m in matches}
        names = {m.term for m in matches}
        held = []
        for rule in self.rules:
            if rule.all_of and not all(c in cats for c in rule.all_of):
                continue
            if rule.any_of and not cats.intersection(rule.any_of):
                continue
            if rule.none_of and cats.intersection(rule.none_of):
                continue
            if rule.terms and not names.intersection(rule.terms):
                continue
            held.append(rule.name)
        return tuple(held)


def _outermost(spans: list[tuple[int, int, Match]]) -> list[Match]:
    """Drop matches inside a longer one: "Ascend 910C" explains itself better than "Ascend"."""
    if len(spans) < 2:
        return [m for _, _, m in spans]
    return [m for s, e, m in spans
            if not any(s2 <= s and e <= e2 and e2 - s2 > e - s for s2, e2, _ in spans)]


def _deletions(word: str) -> set[str]:
    """The word and every form of it with one character deleted (a symmetric-delete index)."""
    return {word, *(word[:i] + word[i + 1:] for i in range(len(word)))}


def compile_matcher(watchlists: Mapping[str, Sequence[Term]], rules: Sequence[Rule]) -> Matcher:
    """Build the matcher for a config; do it once per config load, not per headline."""
    return Matcher(watchlists, rules)
