"""Erasing a contact's personal data (UU PDP right to erasure), and the planner retention shares.

`erase_contact(store, cid, why)` removes or redacts every trace of one customer (the contact,
and the contacts merged into it) under the write lock, as one journaled rewrite
(`tix.store.rewrite`: a kill -9 leaves the old state or, after the next writer, the new one):

- event data: in the segments that hold their events (only those), the lines are rewritten
  at the same length. Events of their contacts lose all data (a merge keeps `into`); events
  of their tickets lose the personal fields (`PERSONAL`: sender, recipients, subject, text,
  html, note bodies, WhatsApp ids and profile, payloads, attachment names and hashes, raw
  paths); any other string holding one of their identifiers (email address, phone number,
  WhatsApp ids, full name) has it cut out, in any event. Ticket numbers, times, statuses,
  teams, assignments, priorities, tags, SLA steps and outbox bookkeeping stay, so reports
  still add up;
- raw messages: their bytes in a pack are overwritten with zeros (the other messages of
  the pack keep their offsets); a file of their own is deleted; a WhatsApp payload that also
  holds other customers keeps those and loses theirs;
- blobs referenced only by their messages are deleted; copies of report mail sent to staff
  lose every mention of them (names included: decoded and re-encoded);
- the WhatsApp spool (payloads not fetched yet), quarantine entries and torn/damaged log
  copies holding their identifiers are redacted or removed;
- their outbox items not sent yet are given up (`outbox.failed`, `permanent`, attempt 0,
  error `contact erased`);
- caches: `state/outbox.json` is redacted in place, the search index `state/search.sqlite`
  and the message index `state/message-index.sqlite` are dropped (rebuilt on next use), the Parquet
  snapshot is patched in place (their tickets' subjects blanked, their contact rows
  emptied) and older generations pruned; log positions stay valid, so the SLA
  and history caches (which hold no personal data) stay as they are;
- one `contact.erased` event per contact (data: counts and the rewrite's id, no personal
  data) records who, when and why.

`tix purge` (tix.tickets.retention) builds the same `Planner` with other selections.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tix.errors import NotFound, TixError, UsageError
from tix.store.log import unmark
from tix.store.rewrite import Rewrite, same_length_line

# Keys (at any depth of an event's data) that hold a person's data on a customer's ticket.
PERSONAL = frozenset({
    "from", "from_name", "from_user_id", "to", "cc", "bcc", "reply_to", "subject", "text", "text_full", "html",
    "body", "payload", "context", "system", "profile", "wa_username", "username", "recipient_id", "emails",
    "phones", "add_emails", "remove_emails", "add_phones", "remove_phones", "sender", "address", "caption",
    "filename", "location", "contacts", "reaction", "refused", "wa_id", "new_wa_id", "user_id", "user_ids",
    "previous_user_id", "wa_previous_user_ids",
})
# Values never searched for identifiers: what reports count and group by.
STRUCTURAL = frozenset({"assignee", "team", "status", "priority", "category", "channel", "inbox", "actor", "via",
                        "type", "ts", "seq", "state", "purpose", "kind", "outbox", "message", "message_id"})
FILE_KEYS = ("raw", "raw_span")
CACHES = ("state/message-index.json", "state/outbox.json")  # dropped by a purge; an erasure patches the outbox
# Dropped, rebuilt from the log on use: the full-text index and the message index (tix.ingest.index).
SEARCH = tuple(f"state/{name}{x}" for name in ("search.sqlite", "message-index.sqlite")
               for x in ("", "-wal", "-shm", "-journal"))
CUSTOMER = ("reply", "auto_reply")  # outbox purposes that are messages to the customer
_HEX64 = re.compile(r"[0-9a-f]{64}")
MIN_NEEDLE = 5  # shorter identifiers are only removed from the contact's own events


class AlreadyErased(TixError):
    """Erasing a contact twice (exit 1, nothing written)."""

    exit_code = 1


def literal(text: str) -> str:
    """`text` as a regular expression both Python's `re` and DuckDB's RE2 read as a literal."""
    return "".join(c if c.isalnum() or c == "_" or ord(c) > 127 else f"\\x{ord(c):02x}" for c in text)


def alternation(words) -> str | None:
    parts = sorted({w for w in words if w}, key=len, reverse=True)
    return "|".join(literal(w) for w in parts) if parts else None


@dataclass
class Subject:
    """Whose data a rewrite removes: contacts, their tickets, and their identifiers."""

    contacts: set[int]
    tickets: set[int]
    needles: list[str]  # identifiers (email addresses, phone numbers, WhatsApp ids), found in any event
    phones: set[str] = field(default_factory=set)  # WhatsApp wa_ids (digits)
    users: set[str] = field(default_factory=set)  # WhatsApp business-scoped user ids
    names: list[str] = field(default_factory=list)  # cut from their own events only (names are not unique)

    def needle_rx(self) -> re.Pattern | None:
        """Identifiers and names: what is cut out of the strings of their own events and files."""
        if not hasattr(self, "_rx"):
            pattern = alternation([*self.needles, *self.names])
            self._rx = re.compile(pattern, re.I) if pattern else None
        return self._rx

    def strong_pattern(self) -> str | None:
        """The identifiers unique to this person (never a name): searched for in the whole store."""
        return alternation(n for n in self.needles if len(n) >= MIN_NEEDLE)


@dataclass
class Plan:
    """What a rewrite touches (for --dry-run and the summary)."""

    segments: dict[str, int] = field(default_factory=dict)  # segment -> lines rewritten
    packs: dict[str, list] = field(default_factory=dict)  # pack -> spans zeroed
    deleted: list[str] = field(default_factory=list)  # raw files, blobs, spool files
    redacted: list[str] = field(default_factory=list)  # payloads, spool files rewritten
    removed: list[str] = field(default_factory=list)  # quarantine entries
    outbox: list[str] = field(default_factory=list)  # outbox items given up
    contacts: list[int] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)  # cache files redacted (or, by a purge, dropped)
    events: int = 0

    def lines(self) -> list[str]:
        out = [f"{seg}: {n} events rewritten" for seg, n in sorted(self.segments.items())]
        out += [f"{p}: {len(s)} messages cut out" for p, s in sorted(self.packs.items())]
        out += [f"{p}: deleted" for p in sorted(self.deleted)]
        out += [f"{p}: redacted" for p in sorted(self.redacted)]
        out += [f"{p}: removed" for p in sorted(self.removed)]
        out += [f"outbox {o}: given up" for o in self.outbox]
        if self.contacts or self.tickets:
            out.append(f"snapshot: {len(self.tickets)} tickets and {len(self.contacts)} contacts redacted")
        out += [f"{c}: redacted" if c in CACHES else f"{c}: dropped (rebuilt from the log when next used)"
                for c in self.caches]
        return out


# -- choosing whom ------------------------------------------------------------------------------
def subject_of(reader, cid: int) -> Subject:
    """The contact `cid`, the contacts merged into it, their tickets and identifiers."""
    con = reader.connect()
    row = reader.contact(cid)
    if row is None:
        raise NotFound(f"contact {cid} not found")
    if "erased" in orjson.loads(row.get("fields") or "{}"):
        raise AlreadyErased(f"contact {cid} is already erased; nothing to do")
    ids = {cid} | {r[0] for r in con.execute("SELECT id FROM contacts WHERE merged_into = ?", [cid]).fetchall()}
    return subject_for(reader, ids)


def subject_for(reader, ids: set[int]) -> Subject:
    return subjects_for(reader, {min(ids): set(ids)})[0]


def subjects_for(reader, groups: dict[int, set[int]]) -> list[Subject]:
    """One Subject per group of contact ids (a contact and those merged into it), read in one
    pass over the contacts and tickets (a purge may anonymise thousands at once)."""
    con = reader.connect()
    owner = {c: key for key, ids in groups.items() for c in ids}
    ids = [list(owner)]
    rows = con.execute("SELECT id, name, emails, phones, fields FROM contacts WHERE id IN "
                       "(SELECT unnest(?::BIGINT[]))", ids).fetchall()
    tickets: dict[int, set[int]] = {key: set() for key in groups}
    for number, contact in con.execute("SELECT number, contact FROM tickets WHERE contact IN "
                                       "(SELECT unnest(?::BIGINT[]))", ids).fetchall():
        tickets[owner[contact]].add(number)
    out = {key: Subject(set(ids), tickets[key], []) for key, ids in groups.items()}
    for cid, name, emails, phones_, fields in rows:
        s = out[owner[cid]]
        fields = orjson.loads(fields or "{}")
        s.needles += [e for e in emails or () if e]
        for p in phones_ or ():
            s.phones.add(p)
            s.needles += [p, "0" + p[2:]] if p.startswith("62") else [p]
        for key in ("wa_user_id", "wa_username"):
            if fields.get(key):
                s.needles.append(str(fields[key]))
        users = [fields.get("wa_user_id"), *(fields.get("wa_previous_user_ids") or [])]
        for u in users:
            if u:
                s.users.add(str(u))
                s.needles.append(str(u))
        if name:
            s.names.append(name)
    return [out[key] for key in groups]


# -- redacting one event ---------------------------------------------------------------------------
class Redactor:
    """Decides what happens to each event line and which files go with it."""

    def __init__(self, subject: Subject):
        self.s = subject
        self.rx = subject.needle_rx()
        strong = subject.strong_pattern()
        self.strong = re.compile(strong, re.I) if strong else None
        parts = [strong] if strong else []
        if subject.tickets:
            parts.append('"ticket":(?:%s)[,}]' % "|".join(map(str, sorted(subject.tickets))))
        parts.append('"contact":(?:%s)[,}]' % "|".join(map(str, sorted(subject.contacts))))
        self.pattern = "|".join(parts)  # Python re and RE2 (the segment prefilter in DuckDB) alike
        ids = [n.lower().encode() for n in subject.needles if len(n) >= MIN_NEEDLE]
        for key, numbers in (("ticket", subject.tickets), ("contact", subject.contacts)):
            ids += [b'"%s":%d%s' % (key.encode(), n, end) for n in sorted(numbers) for end in (b",", b"}")]
        self.needle_bytes = ids  # the same lines as `pattern`, found with bytes.find in a lowered copy
        self.line_rx = re.compile(self.pattern.encode(), re.I)

    def owns(self, ev: dict) -> bool:
        return ev.get("contact") in self.s.contacts or ev.get("ticket") in self.s.tickets or (
            isinstance(ev.get("data"), dict) and ev["data"].get("ticket") in self.s.tickets)

    def redact(self, ev: dict) -> tuple[dict, dict] | None:
        """(new event, the data it had) when the event changes, else None."""
        data = ev.get("data") or {}
        if self.owns(ev):
            if ev.get("type", "").startswith("contact.") and ev.get("contact") in self.s.contacts:
                new_data = {"into": data["into"]} if "into" in data else {}
            else:
                new_data = _strip(data)
            new_data = self._cut(new_data, self.rx)
        else:
            new_data = self._cut(data, self.strong)
        new = dict(ev, data=new_data)
        if ev.get("why"):
            why = self._cut(ev["why"], self.rx if self.owns(ev) else self.strong)
            if why:
                new["why"] = why
            else:
                new.pop("why")
        return (new, data) if new != ev else None

    def _cut(self, value, rx):
        if rx is None:
            return value
        if isinstance(value, str):
            return rx.sub("", value)
        if isinstance(value, list):
            return [self._cut(v, rx) for v in value]
        if isinstance(value, dict):
            return {k: (v if k in STRUCTURAL else self._cut(v, rx)) for k, v in value.items()}
        return value


def _strip(value):
    """Data of an event on the customer's ticket without its personal keys (see PERSONAL)."""
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        if k in FILE_KEYS:
            continue
        if k in PERSONAL:
            out[k] = "" if isinstance(v, str) else [] if isinstance(v, list) else {} if isinstance(v, dict) else None
        elif k == "attachments" and isinstance(v, list):
            out[k] = [{"type": a.get("type"), "size": a.get("size")} if isinstance(a, dict) else None for a in v]
        elif k in ("sha256", "media_id", "url", "name", "sha", "blob"):
            out[k] = None if v is not None else v
        else:
            out[k] = _strip(v)
    return out


# -- planning the rewrite -------------------------------------------------------------------------
class Planner:
    """Builds one `Rewrite` (or, dry, only its `Plan`) from redactors over the whole store."""

    def __init__(self, store, rewrite: Rewrite | None):
        self.store = store
        self.rw = rewrite
        self.plan = Plan()
        self.blobs: set[str] = set()  # candidates: referenced by a redacted event
        self.spans: dict[str, list] = {}
        self.payloads: dict[str, list] = {}  # WhatsApp payload -> subjects
        self.scrub: dict[str, list] = {}  # raw file -> needle patterns to blank (others' files)
        self.dropped: set[str] = set()
        self.new_logs: dict[str, bytes] = {}  # dry run: the segments as they would be
        self.queued: dict[str, dict] = {}  # customer messages queued and not sent, among the lines read

    def _replace(self, rel: str, data: bytes) -> None:
        if self.rw is not None:
            self.rw.replace(rel, data)
        elif rel.startswith("events/"):
            self.new_logs[rel] = data

    def events(self, redactors: list, segments: list[str] | None = None) -> None:
        """Rewrite, at the same length, every event line a redactor changes (only the segments holding one)."""
        log = self.store.log
        rx = re.compile(b"|".join(r.line_rx.pattern for r in redactors), re.I) if len(redactors) > 1 \
            else redactors[0].line_rx
        found: dict[str, list[bytes]] | None = None
        if segments is None:
            segments = log.segments()
            if all(getattr(r, "pattern", None) for r in redactors):
                found = self.holding("|".join(f"(?:{r.pattern})" for r in redactors), segments)
                if found is not None:
                    segments = [n for n in segments if n in found]
        for name in segments:
            data = (log.dir / name).read_bytes()
            out = None
            last = -1
            count = 0
            spans = _located(data, found[name]) if found is not None else _matches(data, rx, redactors)
            for m_start, m_end in spans:
                start = data.rfind(b"\n", 0, m_start) + 1
                if start <= last:
                    continue
                end = data.find(b"\n", m_end) + 1
                if end == 0:
                    break  # a torn tail: never committed (heal cut it before we came)
                last = start
                line = data[start:end]
                try:
                    ev = orjson.loads(unmark(line[:-1]))
                except ValueError:
                    continue  # a damaged line: tix check names it
                self._track_outbox(ev)
                new = self._redact(redactors, ev)
                if new is None:
                    continue
                if out is None:
                    out = bytearray(data)
                out[start:end] = _fit(line, new)
                count += 1
            if count:
                self.plan.segments[f"events/{name}"] = count
                self.plan.events += count
                self._replace(f"events/{name}", bytes(out))

    def holding(self, pattern: str, segments: list[str]) -> dict[str, list[bytes]] | None:
        """The lines matching `pattern` (case-insensitive), by segment (only segments holding
        one): one multi-threaded DuckDB scan with RE2, many times faster than Python's `re`
        over the whole log. None when DuckDB cannot read a segment (e.g. bytes that are not
        UTF-8 in a damaged line): the caller then searches every segment itself."""
        import duckdb

        con = duckdb.connect()
        files = [str(self.store.log.dir / n) for n in segments]
        try:  # each whole line holding a match (RE2: `[^\n]*` cannot cross a line)
            rows = con.execute("SELECT filename, regexp_extract_all(content, ?) FROM read_text(?)",
                               ["(?i)[^\n]*(?:" + pattern + ")[^\n]*", files]).fetchall()
        except duckdb.Error:
            return None
        out: dict[str, list[bytes]] = {}
        for filename, lines in rows:
            if lines:
                out[Path(filename).name] = [line.encode() for line in lines]
        return out

    def _track_outbox(self, ev: dict) -> None:
        """Fold the outbox events among the lines read (all of a ticket's are: they name it)."""
        kind, d = ev.get("type"), ev.get("data") if isinstance(ev.get("data"), dict) else {}
        oid = d.get("outbox") or d.get("id")
        if kind == "message.sent" and d.get("outbox") and d.get("state", "queued") == "queued":
            self.queued[d["outbox"]] = {"id": d["outbox"], "ticket": ev.get("ticket"),
                                        "channel": d.get("channel") or "email"}
        elif kind == "outbox.sent" or (kind == "outbox.failed" and d.get("permanent")):
            self.queued.pop(oid, None)

    def _redact(self, redactors, ev: dict) -> dict | None:
        changed = None
        for r in redactors:
            res = r.redact(changed or ev)
            if res is None:
                continue
            changed, old = res
            self._files(r, ev, old)
        return changed

    def _files(self, r, ev: dict, old: dict) -> None:
        """The files an event referred to: theirs go, others' are scrubbed of the identifiers."""
        raw = old.get("raw")
        owned = r.owns(ev) if hasattr(r, "owns") else True
        hashes = [a.get("sha256") for a in old.get("attachments") or () if isinstance(a, dict)]
        hashes.append(old.get("sha256"))
        if owned and getattr(r, "drops_blobs", True):  # our blobs only: 64 hex digits (WhatsApp's own are base64)
            self.blobs.update(h for h in hashes if isinstance(h, str) and _HEX64.fullmatch(h))
        if not isinstance(raw, str) or not getattr(r, "drops_raw", True):
            return
        if not owned:
            if r.strong is not None:
                self.scrub.setdefault(raw, []).append(r.strong)
        elif old.get("raw_span"):
            self.spans.setdefault(raw, []).append(old["raw_span"])
        elif raw.startswith("messages/whatsapp/") and not raw.startswith("messages/whatsapp/out/") \
                and hasattr(r, "s"):
            self.payloads.setdefault(raw, []).append(r.s)
        else:
            self.dropped.add(raw)

    def files(self) -> None:
        """Prepare the raw files, packs, payloads and blobs the redacted events named."""
        root = self.store.root
        for rel, spans in sorted(self.spans.items()):
            path = root / rel
            if rel in self.dropped or not path.is_file():
                continue
            data = bytearray(path.read_bytes())
            for off, length in spans:
                data[int(off):int(off) + int(length)] = bytes(int(length))
            self.plan.packs[rel] = spans
            self._replace(rel, bytes(data))
        for rel in sorted(self.dropped):
            if (root / rel).is_file():
                self.plan.deleted.append(rel)
                self._delete(rel)
        for rel, subjects in sorted(self.payloads.items()):
            path = root / rel
            if rel in self.dropped or not path.is_file():
                continue
            new = redact_payload(path.read_bytes(), subjects)
            if new is not None:
                self.plan.redacted.append(rel)
                self._replace(rel, new)
        for rel, patterns in sorted(self.scrub.items()):
            path = root / rel
            if rel in self.dropped or rel in self.payloads or rel in self.spans or not path.is_file():
                continue
            data = path.read_bytes()
            new = _blank(data, patterns)
            if new != data:
                self.plan.redacted.append(rel)
                self._replace(rel, new)

    def blobs_unreferenced(self) -> None:
        """Delete the candidate blobs no event (after the rewrite) refers to any more."""
        left = set(self.blobs)
        if not left:
            return
        log = self.store.log
        for name in log.segments():
            if not left:
                break
            rel = f"events/{name}"
            data = self._current(rel)
            for h in list(left):
                if h.encode() in data:
                    left.discard(h)
        for h in sorted(left):
            rel = f"blobs/sha256/{h[:2]}/{h}"
            if (self.store.root / rel).is_file():
                self.plan.deleted.append(rel)
                self._delete(rel)

    def _current(self, rel: str) -> bytes:
        """A file's bytes as the rewrite will leave them."""
        if rel in self.new_logs:
            return self.new_logs[rel]
        if self.rw is not None:
            for op in reversed(self.rw.ops):
                if op[0] == "replace" and op[2] == rel:
                    return (self.store.root / op[1]).read_bytes()
        return (self.store.root / rel).read_bytes()

    def _delete(self, rel: str) -> None:
        if self.rw is not None:
            self.rw.delete(rel)

    def report_mails(self, subjects: list[Subject]) -> None:
        """Copies of report mail tix sent to staff (`messages/*/out/…/r*.eml`) lose every
        mention of the customers, names included (decoded: base64 and quoted-printable parts too)."""
        rxs = [s.needle_rx() for s in subjects if s.needle_rx() is not None]
        if not rxs:
            return
        for path in sorted(self.store.root.glob("messages/*/out/*/*/*/r*.eml")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = str(path.relative_to(self.store.root))
            new = scrub_mail(self._current(rel), rxs)  # after the bytes-level scrub of `files`, if any
            if new is not None:
                if rel not in self.plan.redacted:
                    self.plan.redacted.append(rel)
                self._replace(rel, new)

    def spool_and_quarantine(self, subjects: list[Subject]) -> None:
        """WhatsApp payloads not fetched yet, quarantine entries and torn/damaged log copies."""
        root = self.store.root
        rxs = [re.compile(s.strong_pattern().encode(), re.I) for s in subjects if s.strong_pattern()]
        if not rxs:
            return
        spool = root / "spool" / "whatsapp"
        for path in sorted(spool.glob("*.json")) if spool.is_dir() else ():
            data = path.read_bytes()
            if not any(rx.search(data) for rx in rxs):
                continue
            rel = str(path.relative_to(root))
            new = redact_payload(data, subjects)
            if new is None or not _has_items(new):
                self.plan.deleted.append(rel)
                self._delete(rel)
            else:
                self.plan.redacted.append(rel)
                self._replace(rel, _blank(new, rxs))
        q = root / "quarantine"
        for path in sorted(q.rglob("*")) if q.is_dir() else ():
            if not path.is_file() or path.is_symlink():
                continue
            if any(rx.search(path.read_bytes()) for rx in rxs):
                entry = path.parent if path.parent.parent.parent == q else path
                rel = str(entry.relative_to(root))
                if rel not in self.plan.removed:
                    self.plan.removed.append(rel)
                    if self.rw is not None:
                        self.rw.rmtree(rel) if entry.is_dir() else self.rw.delete(rel)


def _fit(line: bytes, new: dict) -> bytes:
    """The redacted event as a line of the original's length; should blanking have made it longer
    (a number under a personal key, a float written shorter by another tool), its personal keys
    are dropped instead, and failing that its whole data (the event keeps seq, time and type)."""
    try:
        return same_length_line(line, new)
    except ValueError:
        pass
    data = new.get("data") if isinstance(new.get("data"), dict) else {}
    try:
        return same_length_line(line, dict(new, data={k: v for k, v in data.items() if k not in PERSONAL}))
    except ValueError:
        return same_length_line(line, dict(new, data={}))


def _located(data: bytes, lines: list[bytes]) -> list[tuple[int, int]]:
    """(start, end) of each of these whole lines in a segment (each line is unique: it holds its seq)."""
    out = []
    for line in lines:
        i = data.find(line + b"\n")
        while i > 0 and data[i - 1:i] != b"\n":  # a line that ends like another one
            i = data.find(line + b"\n", i + 1)
        if i >= 0:
            out.append((i, i + len(line)))
    return sorted(out)


def _matches(data: bytes, rx, redactors) -> list[tuple[int, int]]:
    """(start, end) of every match in a segment, in order. With literal needles (an erasure),
    bytes.find in a lowered copy (memchr speed); else the regular expression."""
    if not all(getattr(r, "needle_bytes", None) for r in redactors):
        out = []
        for r in redactors:  # each its own pattern; `wants` skips a match without parsing its line
            wants = getattr(r, "wants", None)
            out += [(m.start(), m.end()) for m in r.line_rx.finditer(data) if wants is None or wants(m)]
        return sorted(out)
    low = data.lower()
    out = []
    for r in redactors:
        for needle in r.needle_bytes:
            i = low.find(needle)
            while i >= 0:
                out.append((i, i + len(needle)))
                i = low.find(needle, i + 1)
    return sorted(out)


def _blank(data: bytes, patterns) -> bytes:
    """Overwrite each match with as many `*` (offsets of everything else stay)."""
    for rx in patterns:
        pat = rx if isinstance(rx.pattern, bytes) else re.compile(rx.pattern.encode(), re.I)
        data = pat.sub(lambda m: b"*" * len(m.group(0)), data)
    return data


def scrub_mail(raw: bytes, rxs: list) -> bytes | None:
    """A stored mail with every match of `rxs` cut out of its headers and decoded text parts
    (re-encoded as they were); None when nothing matched."""
    from email import message_from_bytes, policy

    msg = message_from_bytes(raw, policy=policy.default)
    changed = False
    for name, value in list(msg.items()):
        new = _cut_all(str(value), rxs)
        if new != str(value):
            msg.replace_header(name, new)
            changed = True
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = part.get_content()
        new = _cut_all(text, rxs)
        if new != text:
            cte = part.get("Content-Transfer-Encoding")
            part.set_content(new, subtype=part.get_content_subtype(),
                             cte=cte if cte in ("base64", "quoted-printable", "7bit", "8bit") else None)
            changed = True
    if not changed:
        return None
    return msg.as_bytes()


def _cut_all(text: str, rxs) -> str:
    for rx in rxs:
        text = rx.sub("", text)
    return text


def _has_items(payload: bytes) -> bool:
    try:
        doc = orjson.loads(payload)
    except ValueError:
        return True
    for entry in doc.get("entry") or ():
        for change in entry.get("changes") or ():
            value = change.get("value") or {}
            if value.get("messages") or value.get("statuses") or value.get("errors"):
                return True
    return False


def redact_payload(raw: bytes, subjects: list[Subject]) -> bytes | None:
    """A WhatsApp webhook payload without the given customers' contacts, messages and statuses
    (other customers' stay), with any identifier left in it blanked; None if nothing changed."""
    phones = set().union(*(s.phones for s in subjects))
    users = set().union(*(s.users for s in subjects))
    try:
        doc = orjson.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for entry in doc.get("entry") or ():
            for change in entry.get("changes") or ():
                value = change.get("value") or {}
                if value.get("contacts"):
                    value["contacts"] = [c for c in value["contacts"] if not (
                        str(c.get("wa_id")) in phones or str(c.get("user_id")) in users)]
                if value.get("messages"):
                    value["messages"] = [m for m in value["messages"] if not (
                        str(m.get("from")) in phones or str(m.get("from_user_id")) in users)]
                if value.get("statuses"):
                    value["statuses"] = [s for s in value["statuses"] if str(s.get("recipient_id")) not in phones]
        new = orjson.dumps(doc)
    else:
        new = raw
    rxs = [re.compile(s.strong_pattern(), re.I) for s in subjects if s.strong_pattern()]
    new = _blank(new, rxs)
    return None if new == raw else new


# -- the command -------------------------------------------------------------------------------------
def plan_erasure(store, cid: int, rewrite: Rewrite | None, reader=None) -> tuple[Plan, Subject]:
    """Plan (and, given a Rewrite, prepare) the erasure of contact `cid` (lock held to write)."""
    subject = subject_of(reader or store.read(), cid)
    planner = Planner(store, rewrite)
    redactor = Redactor(subject)
    planner.events([redactor])
    planner.files()
    planner.blobs_unreferenced()
    planner.spool_and_quarantine([subject])
    planner.report_mails([subject])
    plan = planner.plan
    for item in planner.queued.values():
        if item["ticket"] in subject.tickets:
            plan.outbox.append(item["id"])
            if rewrite is not None:
                rewrite.events.append({"type": "outbox.failed", "ticket": item["ticket"], "data": {
                    "outbox": item["id"], "channel": item["channel"], "attempt": 0, "error": "contact erased",
                    "permanent": True}})
    plan.contacts = sorted(subject.contacts)
    plan.tickets = sorted(subject.tickets)
    plan.caches = [c for c in (*CACHES, *SEARCH) if store.path(c).is_file()]
    if rewrite is not None:
        _patch_caches(store, rewrite, subject, redactor)
        rewrite.caches += list(SEARCH)  # the indexes hold their text and addresses: built again on next use
        rewrite.extra.update(finish="tix.tickets.erase:patch_snapshot", tickets=plan.tickets,
                             contacts=plan.contacts, fields=_fields_after(store, subject, redactor))
    return plan, subject


def _patch_caches(store, rewrite: Rewrite, subject: Subject, redactor: Redactor) -> None:
    """The outbox index without the customer's data, at the same log position (the rewritten
    lines kept their length); its events since then are redacted. (The message index,
    `state/message-index.sqlite`, is dropped and rebuilt: `SEARCH`.)"""
    strong = redactor.strong
    path = store.path("state", "outbox.json")
    if path.is_file():
        doc = orjson.loads(path.read_bytes())
        for item in (doc.get("items") or {}).values():
            if item.get("ticket") in subject.tickets or (item.get("data") or {}).get("ticket") in subject.tickets:
                item["data"] = _strip(item.get("data") or {})
                if item.get("purpose") in CUSTOMER and item.get("status") == "pending":
                    item.update(status="dead", next_try=None, error="contact erased", attempts=0)
            elif strong is not None:
                item["data"] = redactor._cut(item.get("data"), strong)
        rewrite.replace("state/outbox.json", orjson.dumps(doc), mode=0o600)
    if store.path("state", "message-index.json").is_file():  # an older tix's index, never read again:
        rewrite.caches.append("state/message-index.json")  # dropped, not patched


def _fields_after(store, subject: Subject, redactor: Redactor) -> dict:
    """The custom fields of their tickets with the identifiers cut out (for the snapshot patch)."""
    if not subject.tickets:
        return {}
    con = store.read().connect()
    marks = ",".join("?" * len(subject.tickets))
    rows = con.execute(f"SELECT number, fields FROM tickets WHERE number IN ({marks})",
                       sorted(subject.tickets)).fetchall()
    out = {}
    for number, fields in rows:
        value = orjson.loads(fields or "{}")
        out[str(number)] = orjson.dumps(redactor._cut(value, redactor.rx), option=orjson.OPT_SORT_KEYS).decode()
    return out


def erase_contact(store, cid: int, why: str, actor: str, dry_run: bool = False) -> Plan:
    """Erase contact `cid`'s personal data (see the module docstring). Returns what was touched.

    Raises NotFound (unknown contact), AlreadyErased, UsageError (no reason given).
    """
    if not (why or "").strip():
        raise UsageError("say why: --why TEXT (recorded in the audit trail)")
    via = "tix contact erase"
    if dry_run:
        return plan_erasure(store, cid, None)[0]
    with store.lock():
        resumed = store.resumed_rewrite
        if resumed and cid in (resumed.get("extra") or {}).get("contacts", ()):
            return Plan(contacts=[cid])  # a rerun: the interrupted erasure of this contact is now done
        rw = Rewrite(store, f"erase contact {cid}")
        try:
            plan, _subject = plan_erasure(store, cid, rw)
            for c in plan.contacts:
                rw.events.append({"type": "contact.erased", "contact": c, "why": why,
                                  "data": {"tickets": len(plan.tickets), "events": plan.events}})
            rw.commit()
        except BaseException:
            shutil.rmtree(rw.dir, ignore_errors=True)
            raise
        rw.apply(actor, via)
    return plan


def patch_snapshot(store, plan: dict) -> None:
    """The `finish` step of a rewrite: blank the subjects (and the identifiers in the custom fields)
    of the redacted tickets and empty the erased contacts in the snapshot files (same log
    position; only the files holding such a row are rewritten), then drop older generations."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    extra = plan.get("extra") or {}
    meta = store.snapshot.meta()
    tickets = [int(t) for t in extra.get("tickets") or ()]
    contacts = [int(c) for c in extra.get("contacts") or ()]
    if not meta or (not tickets and not contacts):
        return
    fields = extra.get("fields") or {}
    files: dict = {}
    for kind in ("tickets", "tickets_delta"):
        path = store.snapshot.path(meta, kind)
        table = pq.read_table(path) if path is not None and tickets else None
        mask = pc.is_in(table["number"], value_set=pa.array(tickets, pa.int64())) if table is not None else None
        if mask is None or not pc.any(mask).as_py():
            continue
        subject = table["subject"]
        subject = pc.if_else(pc.and_(mask, pc.is_valid(subject)), pa.scalar("", pa.string()), subject)
        numbers = pc.filter(table["number"], mask).to_pylist()
        old = pc.filter(table["fields"], mask).to_pylist()
        new = pa.array([fields.get(str(n), o) for n, o in zip(numbers, old, strict=True)], pa.string())
        table = table.set_column(table.schema.get_field_index("subject"), "subject", subject)
        table = table.set_column(table.schema.get_field_index("fields"), "fields",
                                 pc.replace_with_mask(table["fields"].combine_chunks(), mask.combine_chunks(), new))
        files[kind] = table
    for kind in ("contacts", "contacts_delta"):
        path = store.snapshot.path(meta, kind)
        table = pq.read_table(path) if path is not None and contacts else None
        mask = pc.is_in(table["id"], value_set=pa.array(contacts, pa.int64())) if table is not None else None
        if mask is None or not pc.any(mask).as_py():
            continue
        for name, value in (("name", None), ("fields", "{}"), ("emails", []), ("phones", [])):
            col = table[name]
            table = table.set_column(table.schema.get_field_index(name), name,
                                     pc.if_else(mask, pa.scalar(value, col.type), col))
        files[kind] = table
    if files:
        keep = {k: meta[k] for k in ("seq", "segment", "offset", "max_ticket", "max_contact")}
        meta = store.snapshot.write(files, keep)
    store.snapshot.prune_except(meta)

