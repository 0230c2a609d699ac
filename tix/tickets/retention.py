"""Retention (UU PDP: keep personal data no longer than the purpose needs): `tix purge`.

`retention:` in tix.yaml (every key optional; a missing key keeps that data for ever)::

    retention:
      contacts_after_months: 24   # anonymise contacts whose tickets are all closed, the last
                                  # more than 24 months ago (as `tix contact erase` does)
      raw_after_months: 12        # drop raw messages and attachments of messages older than
                                  # this; the text in the event log stays
      quarantine_after_days: 30   # delete quarantine entries (and torn/damaged log copies)
      spool_after_days: 7         # delete processed WhatsApp payloads (the spool files kept under
                                  # messages/whatsapp/YYYY-MM/ once fetched) of months ended
                                  # more than this ago; their messages' text stays

`purge(store, now)` applies it as ONE journaled rewrite (`tix.store.rewrite`), planned by the
same `Planner` as an erasure (`tix.tickets.erase`): anonymised contacts get exactly what an
erasure does (their own events; mentions in other customers' events are left to an explicit
`tix contact erase`), one `contact.erased` event each, and the purge records a `store.purged`
event (counts only) with who, when and why.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tix.errors import ConfigError, Problem
from tix.store.log import iso, utcnow
from tix.store.rewrite import Rewrite
from tix.tickets.erase import CACHES, SEARCH, Planner, Redactor, Subject, subjects_for

KEYS = {"contacts_after_months": int, "raw_after_months": int, "quarantine_after_days": int,
        "spool_after_days": int}


def validate_section(node, path) -> list[Problem]:
    """`retention:` of tix.yaml: each key a whole number >= 1 (tix.config.SECTION_VALIDATORS)."""
    from tix.config import check_keys

    fname = str(path)
    if not isinstance(node, dict):
        return [Problem(fname, getattr(node, "line", None),
                        "retention must be a mapping (contacts_after_months: 24, raw_after_months: 12, …)")]
    problems = check_keys(node, KEYS, fname, "retention", listing="keys")
    for key in KEYS:
        value = node.get(key)
        if key in node and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            line = node.line_of(key) if hasattr(node, "line_of") else None
            problems.append(Problem(fname, line, f"retention: {key} must be a whole number of "
                                                 f"{key.rsplit('_', 1)[-1]} (1 or more), got {value!r}"))
    return problems


def settings(store) -> dict:
    node = store.config.section("retention") or {}
    problems = validate_section(node, store.config.path)
    if problems:
        raise ConfigError(problems)
    return dict(node)  # no section: nothing expires


def months_before(now: datetime, months: int) -> datetime:
    y, m = divmod(now.year * 12 + now.month - 1 - months, 12)
    day = min(now.day, 28)
    return now.replace(year=y, month=m + 1, day=day)


@dataclass
class PurgeReport:
    contacts: int = 0
    events: int = 0
    segments: int = 0
    raw_files: int = 0
    blobs: int = 0
    quarantine: int = 0
    payloads: int = 0
    lines: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "lines"}


class Multi(Redactor):
    """Many contacts at once (retention): ownership by set lookups, each contact's identifiers
    cut from its own events only."""

    drops_blobs = True

    def __init__(self, subjects: list[Subject]):
        self.subjects = subjects
        self.by_contact = {c: s for s in subjects for c in s.contacts}
        self.by_ticket = {t: s for s in subjects for t in s.tickets}
        self.s = Subject(set(self.by_contact), set(self.by_ticket), [])
        self.s.phones = set().union(*(x.phones for x in subjects)) if subjects else set()
        self.s.users = set().union(*(x.users for x in subjects)) if subjects else set()
        self.rx = None
        self.strong = None
        import re

        self.line_rx = re.compile(rb'"(ticket|contact)":(\d+)[,}]')

    def wants(self, m) -> bool:
        """A line naming one of the tickets or contacts (decided before parsing it)."""
        return int(m.group(2)) in (self.s.tickets if m.group(1) == b"ticket" else self.s.contacts)

    def redact(self, ev: dict):
        d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        s = self.by_contact.get(ev.get("contact")) or self.by_ticket.get(ev.get("ticket")) \
            or self.by_ticket.get(d.get("ticket"))
        if s is None:
            return None
        one = Redactor.__new__(Redactor)
        one.s, one.rx, one.strong = s, s.needle_rx(), None
        return one.redact(ev)


class RawExpiry:
    """Drops `raw`/`raw_span` and attachment hashes of message events older than a time (their
    text stays), and of events whose raw is a WhatsApp payload of an expired month."""

    drops_raw = True
    drops_blobs = True
    strong = None

    def __init__(self, raw_before: str | None, payload_months_before: str | None):
        import re

        self.raw_before = raw_before  # ISO UTC
        self.payload_before = payload_months_before  # "YYYY-MM": payload months before this expire
        self.line_rx = re.compile(rb'"raw":"|"sha256":"')

    def owns(self, ev: dict) -> bool:
        return True

    def expired(self, ev: dict, d: dict) -> bool:
        if self.raw_before and ev.get("ts", "") < self.raw_before:
            return True
        raw = d.get("raw")
        if self.payload_before and isinstance(raw, str) and raw.startswith("messages/whatsapp/") \
                and not raw.startswith("messages/whatsapp/out/"):
            return raw[len("messages/whatsapp/"):][:7] < self.payload_before
        return False

    def redact(self, ev: dict):
        d = ev.get("data")
        if not isinstance(d, dict) or not (d.get("raw") or d.get("attachments")) or not self.expired(ev, d):
            return None
        new = {k: v for k, v in d.items() if k not in ("raw", "raw_span")}
        if isinstance(d.get("attachments"), list):
            new["attachments"] = [dict(a, sha256=None) if isinstance(a, dict) and a.get("sha256") else a
                                  for a in d["attachments"]]
        if new == d:
            return None
        return dict(ev, data=new), d


def purge(store, actor: str, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
    """Apply `retention:` (see the module docstring). Returns the counts (and, dry, the lines)."""
    conf = settings(store)
    now = now or utcnow()
    if not conf:
        return PurgeReport()
    with store.lock() if not dry_run else _nolock():
        rw = None if dry_run else Rewrite(store, "purge")
        try:
            report = _plan(store, conf, now, rw)
            if rw is not None:
                rw.events.append({"type": "store.purged", "why": _why(conf), "data": report.counts()})
                rw.commit()
        except BaseException:
            if rw is not None:
                shutil.rmtree(rw.dir, ignore_errors=True)
            raise
        if rw is not None:
            rw.apply(actor, "tix purge")
    return report


def _plan(store, conf: dict, now: datetime, rw) -> PurgeReport:
    planner = Planner(store, rw)
    redactors: list = []
    subjects = _expired_contacts(store, conf, now)
    if subjects:
        redactors.append(Multi(subjects))
    raw_before = iso(months_before(now, conf["raw_after_months"])) if conf.get("raw_after_months") else None
    payload_before = None
    if conf.get("spool_after_days"):
        payload_before = (now - timedelta(days=conf["spool_after_days"])).strftime("%Y-%m")
    if raw_before or payload_before:
        redactors.append(RawExpiry(raw_before, payload_before))
    if redactors:
        segments = None
        if not subjects:  # expired raw only: events before the cutoff lie in segments of months up to it
            last = max(x[:7] for x in (raw_before, payload_before) if x)
            segments = [n for n in store.log.segments() if n[:7] <= last]
        planner.events(redactors, segments)
        planner.files()
        _empty_packs(store, planner)
        planner.blobs_unreferenced()
    report = PurgeReport(contacts=sum(len(s.contacts) for s in subjects), events=planner.plan.events,
                         segments=len(planner.plan.segments))
    if conf.get("quarantine_after_days"):
        _old_quarantine(store, planner, now, conf["quarantine_after_days"])
    plan = planner.plan
    plan.caches = [c for c in (*CACHES, *SEARCH) if store.path(c).is_file()]
    report.raw_files = len([p for p in plan.deleted if p.startswith("messages/")]) + len(plan.packs)
    report.payloads = len([p for p in plan.deleted if p.startswith("messages/whatsapp/")])
    report.blobs = len([p for p in plan.deleted if p.startswith("blobs/")])
    report.quarantine = len(plan.removed)
    report.lines = plan.lines() if (plan.events or plan.deleted or plan.removed) else []
    report.lines = [ln.replace(": redacted", ": dropped (rebuilt from the log)") if ln.startswith("state/") else ln
                    for ln in report.lines]
    if rw is not None:
        rw.caches += [*CACHES, *SEARCH]
        tickets = sorted({t for s in subjects for t in s.tickets})
        rw.extra.update(finish="tix.tickets.erase:patch_snapshot", tickets=tickets,
                        contacts=sorted({c for s in subjects for c in s.contacts}), fields={})
        for s in subjects:
            for c in sorted(s.contacts):
                rw.events.append({"type": "contact.erased", "contact": c, "why": _why(conf),
                                  "data": {"tickets": len(s.tickets), "retention": True}})
    return report


def _expired_contacts(store, conf: dict, now: datetime) -> list[Subject]:
    months = conf.get("contacts_after_months")
    if not months:
        return []
    cutoff = months_before(now, months).replace(tzinfo=None)
    reader = store.read()
    con = reader.connect()
    rows = con.execute(
        "SELECT c.id FROM contacts c JOIN tickets t ON t.contact = c.id "
        "WHERE c.merged_into IS NULL AND json_extract(c.fields, '$.erased') IS NULL "
        "GROUP BY c.id HAVING bool_and(t.status IN ('resolved', 'closed')) "
        "AND max(coalesce(t.closed_at, t.resolved_at, t.updated_at)) < ?", [cutoff]).fetchall()
    groups = {cid: {cid} for (cid,) in rows}
    for cid, into in con.execute("SELECT id, merged_into FROM contacts WHERE merged_into IS NOT NULL").fetchall():
        if into in groups:
            groups[into].add(cid)
    return subjects_for(reader, groups) if groups else []


def _empty_packs(store, planner: Planner) -> None:
    """A pack whose every byte was cut out is deleted rather than kept as zeros."""
    if planner.rw is None:
        for rel, spans in planner.plan.packs.items():
            size = (store.root / rel).stat().st_size
            if sum(int(s[1]) for s in spans) >= size:
                planner.plan.deleted.append(rel)
        return
    for op in list(planner.rw.ops):
        if op[0] == "replace" and op[2].startswith("messages/") and op[2].endswith(".pack"):
            data = (store.root / op[1]).read_bytes()
            if not data.strip(b"\0"):
                planner.rw.ops.remove(op)
                (store.root / op[1]).unlink()
                planner.rw.delete(op[2])
                planner.plan.deleted.append(op[2])


def _old_quarantine(store, planner: Planner, now: datetime, days: int) -> None:
    """Quarantine entries older than `days` (selected as `tix quarantine drop --older` does),
    removed by the rewrite, each recorded by a `quarantine.dropped` event (no error text: it may
    quote the input)."""
    from tix.store import quarantine

    for entry in quarantine.older_than(store, days * 86400, now=now):
        rel = str(Path(entry["path"]).relative_to(store.root))
        planner.plan.removed.append(rel)
        if planner.rw is not None:
            planner.rw.rmtree(rel) if Path(entry["path"]).is_dir() else planner.rw.delete(rel)
            planner.rw.events.append({"type": "quarantine.dropped", "data": {
                "quarantine": entry["id"], "kind": entry["kind"], "source": entry.get("source"),
                "key": entry.get("key")}})


def _why(conf: dict) -> str:
    return "retention: " + ", ".join(f"{k}={v}" for k, v in sorted(conf.items()))


class _nolock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

