"""Match headlines against watchlists and rules.

``compile_matcher(watchlists, rules)`` builds a ``Matcher`` once per config load. Matching is on
whole words, never substrings, which keeps "Arm" out of "farm" and "SMIC" out of "seismic":

1. The text is normalised (``alerts.text``) with a few C-speed string operations: Unicode width
   (NFKC), case, curly quotes and dashes, possessives ("Nvidia's" → "nvidia"), and every run of
   punctuation or space becomes one space, with CJK runs set apart: " nvidia h 200 ai chips ".
2. One Aho-Corasick automaton (pyahocorasick) holds every term, alias and guard word as a
   space-padded key, in all the variants that should match it: hyphen/space/joined forms of model
   numbers ("h200", "h 200"), plurals ("h200s", "chips"), singular last words of phrases
   ("export control"). Chinese keys are unpadded, so they match inside CJK text.
3. Typo tolerance (one edit, transpositions included) applies only to long capitalised names
   and only to words of 5+ letters without digits, found through a symmetric-delete index and
   cached per word, so short tokens and model numbers never fuzz: H20, H200 and H2O stay apart.
4. Context and exclude words guard ambiguous terms; a context word is also met by a matched
   term's canonical name or, written ``@category``, by any match in that category.
5. A rule may be limited to the items of feeds with given tags. When no rule holds, an item that
   matched something gets the learned second opinion (``alerts.relevance``): above its threshold
   it alerts as the rule ``learned``, and says which of its words weighed most.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import ahocorasick
from rapidfuzz.distance import OSA

from .config import LEARNED_RULE, LearnedConfig, Rule, Term
from .config.values import term_regex
from .relevance import features, shipped_model
from .rules import judge, relation_span
from .text import (
    TokenMap,
    deletions,
    normalise,
    normalise_ascii,
    phrase_keys,
    squash,
    token_spans,
)
from .types import Field, Kind, Match, MatchResult, Opinion

# A summary mention is weaker evidence than a title mention; scores are quality × field weight.
FIELD_WEIGHT = {"title": 1.0, "summary": 0.8}
FUZZY_MIN_TERM_LEN = 6
FUZZY_MIN_TOKEN_LEN = 5
_FUZZY_CACHE_MAX = 200_000
LEARNED_ON = LearnedConfig()  # the learned opinion as config.yaml has it by default


# --- the matcher ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TermInfo:
    term: Term
    norm_name: str
    squashed_written: frozenset[str]  # case-sensitive forms as written (name and aliases)
    context_words: frozenset[str]  # normalised plain context words
    context_terms: frozenset[str]  # context entries that may be met by a matched term's name
    context_categories: frozenset[str]  # "@category" entries
    exclude_words: frozenset[str]
    folded_name: str
    guarded: bool  # has context or exclude words


class Matcher:
    """A compiled watchlist: call ``match(title, summary)`` as often as you like."""

    def __init__(
        self,
        watchlists: Mapping[str, Sequence[Term]],
        rules: Sequence[Rule],
        learned: LearnedConfig = LEARNED_ON,
    ):
        self.watchlists = {cat: tuple(terms) for cat, terms in watchlists.items()}
        self.rules = tuple(rules)
        self.learned = learned
        if learned.enabled:
            shipped_model()  # read it now, not on the first headline
        self._category_rules: dict[frozenset[str], tuple[Rule, ...]] = {}
        self._terms: list[_TermInfo] = []
        entries: dict[str, list[tuple[int, Kind, int]]] = {}  # key -> (term index, kind, tokens)
        guards: dict[str, set[str]] = {}  # automaton key -> the guard words it stands for
        self._fuzzy: dict[str, list[int]] = {}
        self._typos: dict[str, tuple[tuple[int, float], ...]] = {}  # word -> typo matches
        self._no_typo: set[str] = set()  # words seen that are no typo of any watched name
        vocabulary: set[str] = set()
        self._regexes: list[tuple[int, Any]] = []  # (term index, compiled RE2 pattern)

        for terms in self.watchlists.values():
            for term in terms:
                index = len(self._terms)
                self._terms.append(self._info(term))
                phrases: list[tuple[str, Kind]] = [
                    (term.name, "exact"),
                    *((a, "alias") for a in term.aliases),
                ]
                if term.regex is not None:
                    pattern = term_regex(term.regex, case_sensitive=term.case_sensitive)
                    self._regexes.append((index, pattern))
                    phrases = []  # the name only labels the pattern
                for phrase, kind in phrases:
                    for key in phrase_keys(phrase):
                        entries.setdefault(key, []).append((index, kind, key.count(" ") - 1))
                        vocabulary.update(key.split())
                for word in (*term.context, *term.exclude):
                    if not word.startswith("@"):
                        for key in phrase_keys(word):  # " chips " also stands for "chip"
                            guards.setdefault(key, set()).add(normalise(word).strip())
                if self._fuzzy_ok(term):
                    for key in deletions(normalise(term.name).strip()):
                        self._fuzzy.setdefault(key, []).append(index)

        self._guarded = frozenset(i for i, info in enumerate(self._terms) if info.guarded)
        self._automaton = ahocorasick.Automaton()
        for key in entries.keys() | guards.keys():
            self._automaton.add_word(
                key, (key, tuple(entries.get(key, ())), frozenset(guards.get(key, ())))
            )
        if len(self._automaton):
            self._automaton.make_automaton()
        self._vocabulary = frozenset(vocabulary)

    @staticmethod
    def _info(term: Term) -> _TermInfo:
        def norm_words(words: Sequence[str]) -> frozenset[str]:
            return frozenset(normalise(w).strip() for w in words if not w.startswith("@"))

        # (A regex term's case is its pattern's business.)
        written = (
            {squash(p) for p in (term.name, *term.aliases)}
            if term.case_sensitive and term.regex is None
            else set()
        )
        return _TermInfo(
            term=term,
            norm_name=normalise(term.name).strip(),
            squashed_written=frozenset(written),
            context_words=norm_words(term.context),
            context_terms=frozenset(w.casefold() for w in term.context if not w.startswith("@")),
            context_categories=frozenset(w[1:] for w in term.context if w.startswith("@")),
            exclude_words=norm_words(term.exclude),
            folded_name=term.name.casefold(),
            guarded=bool(term.context or term.exclude),
        )

    @staticmethod
    def _fuzzy_ok(term: Term) -> bool:
        name = term.name
        if term.regex is not None:
            return False
        if term.fuzzy is False or not name.isalpha() or len(name) < FUZZY_MIN_TERM_LEN:
            return False
        # Auto: only capitalised single names ("Nvidia", "Huawei"); ordinary words ("export")
        # and model numbers ("H200") never tolerate typos.
        return bool(term.fuzzy) or name[0].isupper()

    def _fuzzy_candidates(self, word: str) -> tuple[tuple[int, float], ...]:
        found: dict[int, float] = {}
        for key in deletions(word):
            for index in self._fuzzy.get(key, ()):
                target = self._terms[index].norm_name
                if OSA.distance(word, target, score_cutoff=1) <= 1:
                    found[index] = 100.0 * OSA.normalized_similarity(word, target)
        return tuple(found.items())

    def _typo_matches(self, words: list[str]) -> dict[str, tuple[tuple[int, float], ...]]:
        """Words that are typos of watched names, with the terms they stand for."""
        # Set arithmetic in C drops every word already known to be no typo of a watched
        # name; only new words reach the Python loop, once each.
        found_words = {}
        for word in set(words).difference(self._vocabulary, self._no_typo):
            found = self._typos.get(word)
            if found is None:
                found = (
                    self._fuzzy_candidates(word)
                    if len(word) >= FUZZY_MIN_TOKEN_LEN and word.isalpha()
                    else ()
                )
                if len(self._typos) + len(self._no_typo) >= _FUZZY_CACHE_MAX:
                    self._typos.clear()
                    self._no_typo.clear()
                if not found:
                    self._no_typo.add(word)
                    continue
                self._typos[word] = found
            found_words[word] = found
        return found_words

    def _scan(self, text: str, field: Field) -> tuple[list[_Hit], set[str]]:
        """Raw matches in one field, with offsets into the text, and the guard words present."""
        # ASCII text (most headlines) is normalised in place, length for length, so offsets
        # in it are offsets in the text; anything else goes the general, token-mapping way.
        fast = text.isascii()
        norm = normalise_ascii(text) if fast else normalise(text)
        # (term index, kind, start, end) in ``norm``; CJK keys are unpadded
        hits: list[tuple[int, Kind, int, int]] = []
        guards: set[str] = set()
        for end, (key, payload, guard_words) in self._automaton.iter(norm):
            if guard_words:
                guards |= guard_words
            if payload:
                start = end - len(key) + 1
                # [start, end) of the key's characters; a padded key without its spaces
                if key[0] == " ":
                    start += 1
                else:
                    end += 1
                for index, kind, _ in payload:
                    hits.append((index, kind, start, end))
        if self._fuzzy:
            typos = self._typo_matches(norm.split())
            for word, found in typos.items():
                for m in re.finditer(f" {re.escape(word)}(?= )", norm):
                    for index, _ in found:
                        hits.append((index, "fuzzy", m.start() + 1, m.end()))
        weight = FIELD_WEIGHT[field]
        terms = self._terms
        results = [
            _Hit(
                index,
                m.start(),
                m.end(),
                terms[index].term.category,
                "regex",
                m.group(0),
                100.0 * weight,
                field,
            )
            for index, pattern in self._regexes
            for m in pattern.finditer(text)
            if m.end() > m.start()
        ]
        if not hits:
            return results, guards

        tokens = None if fast else TokenMap(text, norm)
        for index, kind, a, b in hits:
            info = terms[index]
            if tokens is None:
                start, end = a - 1, b - 1
                snippet = text[start:end]
            else:
                start, end, snippet = tokens.locate(a, b)
            if (
                info.squashed_written
                and (snippet if snippet.isalnum() else squash(snippet)) not in info.squashed_written
            ):
                continue
            score = (
                100.0
                if kind != "fuzzy"
                else 100.0 * OSA.normalized_similarity(norm[a:b], info.norm_name)
            )
            results.append(
                _Hit(index, start, end, info.term.category, kind, snippet, score * weight, field)
            )
        return results, guards

    def match(
        self, title: str, summary: str = "", *, tags: Collection[str] = (), primary: bool = False
    ) -> MatchResult:
        """Match one item's title and summary, from a feed with ``tags``; the result names the
        rules that held. The learned opinion is asked when none holds and anything matched or the
        item is ``primary`` (a hook for primary sources; no feed tag sets it yet)."""
        raw, guards = self._scan(title, "title")
        if summary:
            more, more_guards = self._scan(summary, "summary")
            raw += more
            guards |= more_guards
        if not raw:
            return self._second_opinion(
                title, summary, MatchResult(matches=(), rules=self._holding((), tags)), primary
            )
        alive = _outermost(raw)
        terms = self._terms
        # Settle the guards: a match its own context or exclude rules out must not vouch for
        # another term ("Blackwell" the surname is no chip context), so repeat until stable.
        guarded = self._guarded
        while guarded and not guarded.isdisjoint([h.term_index for h in alive]):
            names = {terms[h.term_index].folded_name for h in alive}
            categories = {h.category for h in alive}
            kept = [
                h
                for h in alive
                if self._guards_pass(terms[h.term_index], guards, names, categories)
            ]
            if len(kept) == len(alive):
                break
            alive = kept
        vetoed = self._vetoed(raw, alive, guards) if guarded else ()
        best: dict[int, _Hit] = {}
        for h in alive:
            if h.term_index not in best or h.score > best[h.term_index].score:
                best[h.term_index] = h
        candidates = self._by_categories(frozenset(h.category for h in best.values()))
        starts = {}
        if any(rule.relation for rule in candidates):
            # Word positions, only when a relation rule could hold.
            starts = {"title": _word_starts(title), "summary": _word_starts(summary)}
        matches = tuple(
            sorted(
                (
                    Match(
                        h.category,
                        terms[h.term_index].term.name,
                        h.text,
                        h.kind,
                        h.score,
                        h.field,
                        bisect_right(starts[h.field], h.start) - 1 if starts else -1,
                    )
                    for h in best.values()
                ),
                key=lambda m: (-m.score, m.category, m.term),
            )
        )
        result = MatchResult(matches=matches, rules=judge(candidates, matches, tags), vetoed=vetoed)
        return self._second_opinion(title, summary, result, primary)

    def _vetoed(
        self, raw: list[_Hit], alive: list[_Hit], guards: set[str]
    ) -> tuple[tuple[str, str, str, str], ...]:
        """The terms found but dropped because a word of their exclude list is there (for the
        explanation: "Hyundai H200 minivan" names H200, and says why it does not count)."""
        kept = {h.term_index for h in alive}
        found: dict[int, tuple[str, str, str, str]] = {}
        for h in raw:
            info = self._terms[h.term_index]
            if h.term_index in kept or h.term_index in found or not info.exclude_words:
                continue
            words = sorted(guards & info.exclude_words)
            if words:
                found[h.term_index] = (info.term.name, h.category, h.text, words[0])
        return tuple(found.values())

    def _second_opinion(
        self, title: str, summary: str, result: MatchResult, primary: bool
    ) -> MatchResult:
        """The result, with the learned opinion when it applies: on, no rule held, and the
        item named something on the watchlists or comes from a primary source."""
        if result.rules or not self.learned.enabled or not (result.matches or primary):
            return result
        opinion = second_opinion(
            title, summary, result.categories(), threshold=self.learned.threshold
        )
        rules = (LEARNED_RULE,) if opinion.alert else ()
        return replace(result, rules=rules, opinion=opinion)

    @staticmethod
    def _guards_pass(
        info: _TermInfo, guards: set[str], names: set[str], categories: set[str]
    ) -> bool:
        if info.exclude_words and not guards.isdisjoint(info.exclude_words):
            return False
        if not (info.context_words or info.context_terms or info.context_categories):
            return True
        others = names - {info.folded_name}
        # A context category is met by another term of it, not by the term itself.
        other_categories = categories if len(others) else set()
        return (
            not guards.isdisjoint(info.context_words)
            or not others.isdisjoint(info.context_terms)
            or not other_categories.isdisjoint(info.context_categories)
        )

    def explain(self, result: MatchResult) -> str:
        """``result.explain()``, plus how each relation rule that held was met, and how to
        silence a learned alert."""
        lines = [result.explain()]
        opinion = result.opinion
        if opinion and opinion.alert:
            # What an admin can do about a wrong one: an item whose terms are all excluded has
            # no watchlist match left, and an item with none is not scored.
            terms = ", ".join(dict.fromkeys(m.term for m in result.matches)) or "none"
            words = f"{opinion.weighed[0][0]!r}" if opinion.weighed else "its words"
            lines.append(
                f"  to silence it: add {words} to the exclude: of the terms it matched ({terms}),"
                f" raise learned.threshold above {opinion.score:.3f}, or set learned:"
                " {enabled: false}"
            )
        for rule in self.rules:
            if rule.name in result.rules and rule.relation:
                span = relation_span(rule, result.matches) or ()
                lines.append(
                    f"  relation {rule.name}: "
                    + " … ".join(f"{m.text} ({m.category})" for m in span)
                )
        return "\n".join(lines)

    def without(
        self, result: MatchResult, terms: Collection[str], tags: Collection[str] = ()
    ) -> MatchResult:
        """The result with the given (casefolded) terms' matches removed, rules re-judged (for
        a feed with ``tags``): how a muted term is silenced without editing the watchlist."""
        kept = tuple(m for m in result.matches if m.term.casefold() not in terms)
        if len(kept) == len(result.matches):
            return result
        rules = self._holding(kept, tags)
        # The learned opinion stands while a watchlist match is left to let it be asked.
        opinion = result.opinion if kept and not rules else None
        if opinion and opinion.alert:
            rules = (LEARNED_RULE,)
        return MatchResult(matches=kept, rules=rules, opinion=opinion)

    def _by_categories(self, cats: frozenset[str]) -> tuple[Rule, ...]:
        """The rules whose category conditions these matched categories meet (cached: a few
        hundred combinations of categories cover almost every headline)."""
        found = self._category_rules.get(cats)
        if found is None:
            found = tuple(
                rule
                for rule in self.rules
                if all(c in cats for c in rule.all_of)
                and not (rule.any_of and cats.isdisjoint(rule.any_of))
                and not (rule.none_of and not cats.isdisjoint(rule.none_of))
                and not any(cats.isdisjoint(role) for role in rule.relation)
            )
            if len(self._category_rules) >= 4096:
                self._category_rules.clear()
            self._category_rules[cats] = found
        return found

    def _holding(self, matches: Sequence[Match], tags: Collection[str]) -> tuple[str, ...]:
        return judge(self._by_categories(frozenset(m.category for m in matches)), matches, tags)


def _word_starts(text: str) -> list[int]:
    """Where each token of ``text`` starts, as ``token_spans`` splits it."""
    return [start for start, _ in token_spans(text)] if text else []


class _Hit(NamedTuple):
    """A match before its guards are settled (cheap to make; most become a ``Match``)."""

    term_index: int
    start: int
    end: int
    category: str
    kind: Kind
    text: str
    score: float
    field: Field


def _outermost(raw: list[_Hit]) -> list[_Hit]:
    """Within one category and field, drop a match inside a longer one: "Ascend 910C" explains
    itself better than "Ascend". Other categories keep theirs ("chip war" does not hide "chip")."""
    if len(raw) < 2 or len({(r.category, r.field) for r in raw}) == len(raw):
        return raw
    groups: dict[tuple[str, str], list[_Hit]] = {}
    for r in raw:
        groups.setdefault((r.category, r.field), []).append(r)
    kept = []
    for group in groups.values():
        if len(group) == 1 or len({r[2] - r[1] for r in group}) == 1:
            kept += group  # nothing in it can be strictly inside another
            continue
        kept += [
            r
            for r in group
            if not any(o[1] <= r[1] and r[2] <= o[2] and o[2] - o[1] > r[2] - r[1] for o in group)
        ]
    return kept


def second_opinion(
    title: str, summary: str, cats: Collection[str], *, threshold: float = LEARNED_ON.threshold
) -> Opinion:
    """The shipped model's opinion of an item, given the categories the matcher found in it."""
    title_text = normalise(title)
    summary_text = normalise(summary) if summary else " "
    found = features(title_text.split(), summary_text.split(), sorted(cats))
    return shipped_model().opinion(found, threshold=threshold, text=title_text + summary_text)


def compile_matcher(
    watchlists: Mapping[str, Sequence[Term]],
    rules: Sequence[Rule],
    learned: LearnedConfig = LEARNED_ON,
) -> Matcher:
    """Build the matcher for a config; do it once per config load, not per headline.
    ``learned``: the config's ``learned`` section (the learned opinion is on by default)."""
    return Matcher(watchlists, rules, learned)
