"""Full-text search over subjects, messages and notes: a derived cache of the log in SQLite FTS5.

The event log is the truth; this index is derived from it and can always be rebuilt
(`tix rebuild`, or delete `state/search.sqlite`). It lives in `state/search.sqlite` (0600,
a cache: never code) and is built on SQLite's FTS5 from the standard library with the
`unicode61 remove_diacritics 2` tokenizer: words are matched case- and accent-insensitively
(`kafe` finds `Kafé`), in Indonesian and English alike (no stemming: an English stemmer
would mangle Indonesian words).

Tables::

    meta(key, value)             format, and the log position it covers: segment, offset, seq
    doc(rowid, ticket, seq, kind)   one row per indexed text: kind `subject` (the ticket's,
                                 replaced when it changes), `in`/`out` (a message received /
                                 sent), `note` (an internal note); `ticket` is where it is
                                 shown now (merges and splits move rows, see below)
    fts(subject, body)           the FTS5 table, rowid = doc.rowid

Events folded: `ticket.created` and a `ticket.updated` setting `subject` (subject rows),
`message.received` / `message.sent` (subject, the new text without quoted history, and
attachment names), `ticket.note`,
`ticket.merged` (the rows of the merged ticket move to the ticket it went into) and
`ticket.split` (the rows of the split-out messages move to the new ticket). The log is
never rewritten for a merge or split: the index folds those events, as the other readers do.

Crash safety: the rows of a catch-up and the position they reach are committed in one SQLite
transaction (`BEGIN IMMEDIATE`: two processes catching up at once take turns, and the
second starts from where the first ended). A kill leaves the index at its last commit,
behind the log, and the next use catches up. A damaged file (not a database, malformed) or
a position that no longer ends on its seq (the log was rewritten) is removed and rebuilt
from the whole log; so is the index when it meets a `contact.erased` event (an erasure
rewrote the log before it: no erased text may stay here; `secure_delete` overwrites it).

Who updates it: every writer after its batch commits (`Store.writing` -> `catch_up`, when
the index exists), and every search before it queries (building it on first use).
"""
from __future__ import annotations

import re
from contextlib import closing
from typing import TYPE_CHECKING

import orjson

from tix.store.log import Position, seq_before

if TYPE_CHECKING:
    import sqlite3  # imported where used: most commands never search (a few ms of every start)

FORMAT = 1
NAME = "search.sqlite"
COMMIT_EVERY = 50000  # events per transaction while building
INTERESTING = (b'"type":"contact.erased"', b'"type":"ticket.created"', b'"type":"message.received"',
               b'"type":"message.sent"', b'"type":"ticket.note"', b'"type":"ticket.merged"', b'"type":"ticket.split"',
               b'"subject"')
_INTERESTING = re.compile(b"|".join(re.escape(m) for m in INTERESTING))  # one pass a line, not eight

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS doc(rowid INTEGER PRIMARY KEY, ticket INTEGER NOT NULL, seq INTEGER NOT NULL,
                               kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS doc_ticket ON doc(ticket, kind);
CREATE INDEX IF NOT EXISTS doc_seq ON doc(seq);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(subject, body, tokenize = 'unicode61 remove_diacritics 2');
"""
WEIGHTS = (2.0, 1.0)  # bm25 weights: a word in the subject counts twice


class SearchIndex:
    """The search cache of one store (open, catch up, query)."""

    def __init__(self, store, timeout: float = 60.0):
        """`timeout`: seconds to wait while another process writes the index (then StoreLocked)."""
        self.store = store
        self.timeout = timeout
        self.path = store.path("state", NAME)
        self._from_start = True

    # -- opening -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        fresh = not self.path.exists()
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commit
        con.execute("PRAGMA secure_delete=ON")  # erased text is overwritten, not left in free pages
        con.executescript(SCHEMA)
        return con

    def remove(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(NAME + suffix).unlink(missing_ok=True)

    def connection(self) -> sqlite3.Connection:
        """A connection to an index caught up with the log (built, or rebuilt when damaged).

        A reader that may not write `state/` (a user of the store's group) gets an index built
        in memory from the whole log instead: slower, never wrong."""
        import sqlite3

        for attempt in (1, 2):
            try:
                con = self._connect()
                self._catch_up(con)
                return con
            except PermissionError:
                return self._in_memory()
            except sqlite3.DatabaseError as exc:
                if _not_writable(exc):
                    return self._in_memory()
                if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                    from tix.errors import StoreLocked

                    raise StoreLocked(f"{self.path}: the search index is being built by another tix process; "
                                      f"try again when it is done") from None
                if attempt == 2:
                    raise
                self.remove()  # a cache: rebuilt from the log
        raise AssertionError("unreachable")

    def _in_memory(self) -> sqlite3.Connection:
        import sqlite3

        con = sqlite3.connect(":memory:", isolation_level=None)
        con.executescript(SCHEMA)
        self._catch_up(con)
        return con

    # -- catching up ---------------------------------------------------------------------------
    def catch_up(self) -> None:
        with closing(self.connection()):
            pass

    def rebuild(self) -> None:
        self.remove()
        self.catch_up()

    def sound(self) -> bool:
        """The index file exists and SQLite finds nothing wrong in it (`PRAGMA quick_check`:
        every page read once, 2 s at 1M tickets; `tix check`). Whether it follows the log is
        checked by catching up."""
        import sqlite3

        if not self.exists():
            return False
        try:
            with closing(sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)) as con:
                return con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        except sqlite3.DatabaseError:
            return False

    def _catch_up(self, con: sqlite3.Connection) -> None:
        end = self.store.log.end()
        con.execute("BEGIN IMMEDIATE")
        try:
            pos, seq = self._position(con)
            if pos == end:
                con.execute("COMMIT")
                return
            if pos.segment and not self._valid(pos, seq):
                con.execute("DELETE FROM doc")
                con.execute("DELETE FROM fts")
                pos, seq = Position("", 0), 0
            if pos.segment and self._skip_dull(con, pos, end):
                con.execute("COMMIT")
                return
            try:
                self._fold(con, pos if pos.segment else None, end)
            except _Erased:  # personal data was erased from the log: nothing of it may stay here
                con.execute("DELETE FROM doc")
                con.execute("DELETE FROM fts")
                self._fold(con, None, end)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def _position(self, con) -> tuple[Position, int]:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            con.execute("DELETE FROM doc")
            con.execute("DELETE FROM fts")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT,))
            return Position("", 0), 0
        return Position(meta.get("segment") or "", int(meta.get("offset") or 0)), int(meta.get("seq") or 0)

    def _valid(self, pos: Position, seq: int) -> bool:
        try:
            return seq_before(self.store.log.dir / pos.segment, pos.offset) == seq
        except OSError:
            return False

    def _fold(self, con, start: Position | None, end: Position) -> None:
        self._from_start = start is None  # folding the whole log: an erasure is already in it
        loads = orjson.loads
        interesting = _INTERESTING.search
        count = 0
        last_seq = None
        pos = start
        for raw, seg, off in self.store.log.read_raw(start, end):
            pos = Position(seg, off)
            if interesting(raw):
                try:
                    ev = loads(raw)
                except ValueError:
                    continue  # a damaged line: the readers report it
                self.apply(con, ev)
                last_seq = ev.get("seq", last_seq)
            else:
                last_seq = None
            count += 1
            if count % COMMIT_EVERY == 0:  # a long build commits as it goes (crash: resumes here)
                self._save(con, pos, raw, last_seq)
                con.execute("COMMIT")
                con.execute("BEGIN IMMEDIATE")
        if pos is not None and count:
            self._save(con, pos, raw, last_seq)

    def _skip_dull(self, con, start: Position, end: Position) -> bool:
        """When no line from `start` to `end` is of interest to the index (e.g. a bulk update's
        events), move the position to `end` without decoding line by line (`holds_any`; a
        bulk update of 100k tickets: 0.2 s -> 0.05 s)."""
        try:
            if self.store.log.holds_any(start, end, INTERESTING):
                return False
            seq = seq_before(self.store.log.dir / end.segment, end.offset)
        except OSError:
            return False
        if seq is None:
            return False
        self._save(con, end, b"", seq)
        return True

    @staticmethod
    def _save(con, pos: Position, raw: bytes, seq: int | None) -> None:
        if seq is None:  # the last line was not decoded yet
            try:
                seq = orjson.loads(raw).get("seq")
            except (ValueError, AttributeError):  # damaged: the next use finds the position invalid, rebuilds
                seq = None
        con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        (("segment", pos.segment), ("offset", pos.offset), ("seq", seq)))

    # -- folding one event ---------------------------------------------------------------------
    def apply(self, con, ev: dict) -> None:
        kind, ticket, data = ev.get("type"), ev.get("ticket"), ev.get("data") or {}
        if kind == "contact.erased" and not self._from_start:
            raise _Erased
        if ticket is None or not isinstance(data, dict):
            return
        seq = ev.get("seq")
        if kind == "ticket.created":
            self._subject(con, ticket, seq, data.get("subject"))
        elif kind == "ticket.updated":
            new = (data.get("set") or {})
            if "subject" in new:
                self._subject(con, ticket, seq, new.get("subject"))
        elif kind in ("message.received", "message.sent"):
            names = " ".join(str(a.get("name") or "") for a in data.get("attachments") or () if isinstance(a, dict))
            body = str(data.get("text") or "")  # the new text: quoted history is indexed where it was written
            self._add(con, ticket, seq, "in" if kind == "message.received" else "out",
                      str(data.get("subject") or ""), (body + " " + names).strip())
        elif kind == "ticket.note":
            self._add(con, ticket, seq, "note", "", str(data.get("body") or ""))
        elif kind == "ticket.merged" and data.get("into") is not None:
            con.execute("UPDATE doc SET ticket = ? WHERE ticket = ? AND kind != 'subject'", (data["into"], ticket))
        elif kind == "ticket.split" and data.get("into") is not None:
            con.execute("UPDATE doc SET ticket = ? WHERE seq IN (SELECT value FROM json_each(?))",
                        (data["into"], orjson.dumps(data.get("messages") or []).decode()))

    @staticmethod
    def _add(con, ticket: int, seq: int, kind: str, subject: str, body: str) -> None:
        if not subject and not body:
            return
        cur = con.execute("INSERT INTO doc(ticket, seq, kind) VALUES (?, ?, ?)", (ticket, seq, kind))
        con.execute("INSERT INTO fts(rowid, subject, body) VALUES (?, ?, ?)", (cur.lastrowid, subject, body))

    def _subject(self, con, ticket: int, seq: int, subject) -> None:
        for (rowid,) in con.execute("SELECT rowid FROM doc WHERE ticket = ? AND kind = 'subject'", (ticket,)):
            con.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
            con.execute("DELETE FROM doc WHERE rowid = ?", (rowid,))
        self._add(con, ticket, seq, "subject", str(subject or ""), "")

    # -- querying ------------------------------------------------------------------------------
    def tickets(self, query: str) -> list[int]:
        """Numbers of the tickets with a text matching `query` (every word), in number order."""
        match = fts_query(query)
        if match is None:
            return []
        with closing(self.connection()) as con:
            rows = con.execute("SELECT DISTINCT d.ticket FROM fts JOIN doc d ON d.rowid = fts.rowid "
                               "WHERE fts MATCH ? ORDER BY d.ticket", (match,)).fetchall()
        return [r[0] for r in rows]

    def search(self, query: str, limit: int | None = 50) -> list[dict]:
        """The best match of each ticket: ticket, score (lower is better), seq, kind and a snippet."""
        match = fts_query(query)
        if match is None:
            return []
        with closing(self.connection()) as con:
            best = self._best(con, match, limit)
            rowids = [v[1] for v in best.values()]
            snippets = dict(con.execute(
                "SELECT rowid, snippet(fts, -1, '[', ']', '…', 12) FROM fts WHERE fts MATCH ? "
                "AND rowid IN (SELECT value FROM json_each(?))", (match, orjson.dumps(rowids).decode())))
        return [{"ticket": t, "score": round(-score, 3), "seq": seq, "kind": kind,
                 "snippet": " ".join(str(snippets.get(rowid) or "").split())}
                for t, (score, rowid, seq, kind) in best.items()]

    @staticmethod
    def _best(con, match: str, limit: int | None) -> dict[int, tuple]:
        """Ticket -> (score, rowid, seq, kind) of its best hit, best first, at most `limit`
        tickets. SQLite ranks the hits (in C, keeping only the top k); k grows until enough
        distinct tickets are among them."""
        k = limit * 4 if limit else -1  # LIMIT -1: every hit
        while True:
            hits = con.execute("SELECT rowid, bm25(fts, ?, ?) AS score FROM fts WHERE fts MATCH ? "
                               "ORDER BY score LIMIT ?", (*WEIGHTS, match, k)).fetchall()
            docs = {r[0]: r[1:] for r in con.execute(
                "SELECT rowid, ticket, seq, kind FROM doc WHERE rowid IN (SELECT value FROM json_each(?))",
                (orjson.dumps([h[0] for h in hits]).decode(),))}
            best: dict[int, tuple] = {}
            for rowid, score in hits:
                ticket, seq, kind = docs[rowid]
                if ticket not in best:
                    best[ticket] = (score, rowid, seq, kind)
            if limit is None or len(best) >= limit or len(hits) < k:
                return dict(list(best.items())[:limit] if limit else best.items())
            k *= 4


class _Erased(Exception):
    """A `contact.erased` event: the log was rewritten before it, so the index is built again."""


def _not_writable(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str | None:
    """An FTS5 query for what a person typed: every word must occur (AND), a word ending in
    `*` is a prefix, a "quoted phrase" stays a phrase. Each word is quoted, so nothing typed
    is read as FTS5 syntax (NEAR, OR, column filters, parentheses)."""
    import shlex

    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    terms = []
    for part in parts:
        words = _WORD.findall(part)
        if not words:
            continue
        quoted = '"' + " ".join(words).replace('"', '""') + '"'
        terms.append(quoted + ("*" if part.endswith("*") and len(words) == 1 else ""))
    return " ".join(terms) or None


def catch_up(store) -> None:
    """For writers, after a commit: fold the new events into the index when there is one.

    A failure here never fails the write (the events are committed; the index, a cache,
    catches up on its next use)."""
    import sqlite3

    from tix.errors import TixError

    index = SearchIndex(store, timeout=2.0)  # busy (another process building it): that one catches up
    if not index.exists():
        return
    try:
        index.catch_up()
    except (sqlite3.Error, OSError, TixError):
        pass
