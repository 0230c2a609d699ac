"""Text matching for rule conditions: accent-folding, whole-word keywords, safe regexes.

Keywords are matched on *folded* text: Unicode NFKD, combining marks dropped, casefolded,
and every run of non-word characters turned into one space. So `Pengembalian  DANA!`
matches the keyword `pengembalian dana`, `Café` matches `cafe`, and `refund` does not
match `refunded` (whole words only).

Regular expressions run on RE2 (`google-re2`), a linear-time engine without backtracking:
no pattern can hang a run. Patterns that need backtracking (backreferences, look-ahead,
look-behind) are rejected by `compile_regex`, and `tix rules check` names them.
"""
from __future__ import annotations

import re
import unicodedata

_NONWORD = re.compile(r"[\W_]+")

try:  # google-re2: linear-time matching, see the module docstring
    import re2 as _re2

    _OPTIONS_CI = _re2.Options()
    _OPTIONS_CI.log_errors = False
    _OPTIONS_CI.case_sensitive = False
    _OPTIONS_CI.max_mem = 8 << 20
    _OPTIONS_CS = _re2.Options()
    _OPTIONS_CS.log_errors = False
    _OPTIONS_CS.max_mem = 8 << 20
    ENGINE = "re2"
except ImportError:  # pragma: no cover - google-re2 is a declared dependency
    _re2 = None
    ENGINE = "re"


class RegexRejected(ValueError):
    """A pattern that is invalid or could backtrack catastrophically."""


# ASCII: lower case, punctuation and control characters -> space (the fast path of `fold`).
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() else 32 for c in range(256))


def fold(text: str) -> str:
    """Casefolded, accents removed, non-word runs collapsed to single spaces, padded by spaces."""
    if not text:
        return " "
    if text.isascii():
        return " " + " ".join(text.encode().translate(_ASCII_FOLD).decode().split()) + " "
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " " + _NONWORD.sub(" ", text.casefold()).strip() + " "


class Tokens:
    """A folded text and the set of its words, computed once per message field."""

    __slots__ = ("padded", "words")

    def __init__(self, text: str | None = None):
        if text is not None:
            self.padded = fold(text)
            self.words = frozenset(self.padded.split())

    @classmethod
    def join(cls, a: "Tokens", b: "Tokens") -> "Tokens":
        """The tokens of two texts one after the other (subject + body = text)."""
        t = cls()
        t.padded = a.padded + b.padded[1:]
        t.words = a.words | b.words
        return t


class Keywords:
    """Whole-word, accent- and case-insensitive keyword matching (any or all of a list)."""

    __slots__ = ("keywords", "mode", "single", "phrases", "words")

    def __init__(self, keywords: list[str], mode: str = "any"):
        self.keywords = list(keywords)
        self.mode = mode
        self.single: dict[str, str] = {}
        self.phrases: list[tuple[str, frozenset, str]] = []
        for kw in self.keywords:
            folded = fold(str(kw))
            parts = folded.split()
            if not parts:
                continue
            if len(parts) == 1:
                self.single[parts[0]] = kw
            else:
                self.phrases.append((folded, frozenset(parts), kw))
        self.words = frozenset(self.single)

    def found(self, tokens: Tokens) -> list[str]:
        """The keywords present in `tokens` (as written in the rule)."""
        out = [kw for word, kw in self.single.items() if word in tokens.words]
        for padded, parts, kw in self.phrases:
            if parts <= tokens.words and padded in tokens.padded:
                out.append(kw)
        return out

    def test(self, tokens: Tokens) -> bool:
        words = tokens.words
        if self.mode == "any":
            if not self.words.isdisjoint(words):
                return True
            for padded, parts, _kw in self.phrases:
                if parts <= words and padded in tokens.padded:
                    return True
            return False
        if not self.words <= words:
            return False
        return all(parts <= words and padded in tokens.padded for padded, parts, _kw in self.phrases)


def check_keyword(kw) -> str | None:
    """Why a keyword can never match (None if it is fine)."""
    if not isinstance(kw, (str, int, float)) or isinstance(kw, bool):
        return f"a keyword must be a word or phrase, got {kw!r}"
    if not fold(str(kw)).split():
        return f"keyword {kw!r} has no letters or digits"
    return None


# Constructs a backtracking engine needs and RE2 refuses; named in `tix rules check`.
_BACKTRACKING = (
    (re.compile(r"\\[1-9]"), "a backreference"),
    (re.compile(r"\(\?P=\w+\)"), "a named backreference"),
    (re.compile(r"\(\?<?[=!]"), "a look-ahead or look-behind"),
    (re.compile(r"\(\?>"), "an atomic group"),
    (re.compile(r"[*+}]\+"), "a possessive quantifier"),
)


def compile_regex(pattern: str, case_sensitive: bool = False):
    """A compiled linear-time regex; RegexRejected saying why the pattern cannot be used."""
    if not isinstance(pattern, str) or not pattern:
        raise RegexRejected("a regular expression must be a non-empty string")
    for probe, what in _BACKTRACKING:
        if probe.search(pattern):
            raise RegexRejected(f"regular expression '{pattern}' uses {what}, which needs backtracking "
                                "and could hang a run; rewrite it without")
    if _re2 is None:  # pragma: no cover
        return _guarded_re(pattern, case_sensitive)
    try:
        return _re2.compile(pattern, _OPTIONS_CS if case_sensitive else _OPTIONS_CI)
    except _re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexRejected(f"invalid regular expression '{pattern}': {reason}") from None


_NESTED = re.compile(r"\([^()]*[*+][^()]*\)[*+{]")


def _guarded_re(pattern: str, case_sensitive: bool):  # pragma: no cover - fallback only
    if _NESTED.search(pattern):
        raise RegexRejected(f"regular expression {pattern!r} nests quantifiers (catastrophic backtracking)")
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise RegexRejected(f"invalid regular expression {pattern!r}: {exc}") from None


class RegexBank:
    """Every `matches` pattern of a rule set, grouped by field, matched in one pass per field.

    Each field's patterns form one RE2 set: a message's field is scanned once, whatever
    the number of patterns, and each condition looks up its pattern's index in the hits.
    Patterns are case-insensitive unless the rule says `case_sensitive: true`.
    """

    def __init__(self):
        self.patterns: dict[str, list[str]] = {}
        self._sets: dict = {}

    def add(self, field: str, pattern: str, case_sensitive: bool = False) -> int:
        compile_regex(pattern, case_sensitive)  # validates; raises RegexRejected
        items = self.patterns.setdefault(field, [])
        items.append(pattern if case_sensitive else f"(?i:{pattern})")
        self._sets.pop(field, None)
        return len(items) - 1

    def _set(self, field: str):
        matcher = self._sets.get(field)
        if matcher is None:
            if _re2 is not None:
                matcher = _re2.Set.SearchSet(_OPTIONS_CS)
                for p in self.patterns[field]:
                    matcher.Add(p)
                matcher.Compile()
                matcher = matcher.Match
            else:  # pragma: no cover - fallback only
                compiled = [_guarded_re(p, True) for p in self.patterns[field]]
                matcher = lambda text: [i for i, r in enumerate(compiled) if r.search(text)]  # noqa: E731
            self._sets[field] = matcher
        return matcher

    def hits(self, field: str, text: str) -> frozenset:
        return frozenset(self._set(field)(text or "") or ())


class KeywordBank:
    """Every `keywords` condition of a rule set, indexed by word, per field.

    A message's field is looked up word by word in the index once; only the conditions
    sharing a word with it are tested, so 40 keyword rules cost about as much as one.
    """

    def __init__(self):
        self.lists: list[Keywords] = []
        self.vocab: dict[str, dict[str, list[int]]] = {}

    def add(self, field: str, kw: Keywords) -> int:
        i = len(self.lists)
        self.lists.append(kw)
        vocab = self.vocab.setdefault(field, {})
        words = set(kw.single) | {w for _p, parts, _k in kw.phrases for w in parts}
        for w in words:
            vocab.setdefault(w, []).append(i)
        return i

    def hits(self, field: str, tokens: Tokens) -> frozenset:
        vocab = self.vocab.get(field)
        if not vocab:
            return frozenset()
        candidates = set()
        for w in tokens.words:
            ids = vocab.get(w)
            if ids:
                candidates.update(ids)
        lists = self.lists
        return frozenset(i for i in candidates if lists[i].test(tokens))
