"""`route()`: apply the rules to every ticket with customer input not yet routed.

The pipeline of one run, under the store lock::

    load + validate rules (ConfigError: nothing written)
    -> tickets with intake_seq > routed_seq          (one query over the `tickets` view)
    -> their unrouted intake events                  (one query over the newest log segments)
    -> for each ticket: evaluate rules in order, apply the actions of those that match
       (events with actor `rule:NAME`), then one `ticket.routed` {upto: intake_seq}
    -> append + fsync; then save the round-robin positions

The message routed is the ticket's creation merged with its first `message.received`
(when: new), or its last `message.received` (when: reply). A rule that fails on a ticket
is recorded as a `rule.failed` event and the run goes on (exit 1); the ticket is still
marked routed so that the next run does not trip on it again.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from tix.model import OPEN_STATUSES
from tix.rules.assign import Assigner
from tix.rules.conditions import Context
from tix.rules.loader import RuleSet, load_rules
from tix.rules.site import Site, hours_context
from tix.rules.templates import Templates
from tix.store import DryBatch, Store
from tix.store.log import iso, parse_ts, utcnow

INTAKE_TYPES = ("ticket.created", "message.received", "ticket.note")


@dataclass
class Line:
    """One thing routing did (or would do) to a ticket."""

    ticket: int
    rule: str
    text: str


@dataclass
class RouteResult:
    routed: int = 0
    events: int = 0
    dry_run: bool = False
    matched: Counter = field(default_factory=Counter)
    lines: list[Line] = field(default_factory=list)
    # (rule's file:line, rule name, error) -> the tickets it failed on, in order
    failures: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    planned: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # actions that would reach people, on history
    record: bool = True  # keep `lines` (dry run, -v, explain); off, a cron run skips the bookkeeping
    on_lines: object = None  # given each committed chunk's lines (see `route`)

    SHOWN = 5  # ticket numbers named in the line of a rule that failed the same way on many

    @property
    def errors(self) -> list[str]:
        """One line per rule and error, however many tickets it failed on: a rule that cannot
        act (no `whatsapp:` section, a template that fails) fails the same way on every ticket,
        and on a first route over an old store that was a line for each of 100,000 tickets.
        The tickets are named in their `rule.failed` events."""
        out = []
        for (where, name, message), numbers in self.failures.items():
            if len(numbers) == 1:
                out.append(f"{where}: rule {name!r} failed on ticket #{numbers[0]}: {message}")
                continue
            shown = ", ".join(f"#{n}" for n in numbers[:self.SHOWN])
            more = f" and {len(numbers) - self.SHOWN:,} more" if len(numbers) > self.SHOWN else ""
            out.append(f"{where}: rule {name!r} failed on {len(numbers):,} tickets ({shown}{more}): {message}")
        return out

    def failed(self, where: str, name: str, number: int, message: str) -> None:
        self.failures.setdefault((where, name, message), []).append(number)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def skipped_line(self) -> str | None:
        """One line counting what was not sent because it was history (None: nothing)."""
        if not self.skipped:
            return None
        names = {"auto_reply": ("auto-reply", "auto-replies"), "notification": ("notification", "notifications")}
        parts = ", ".join(f"{n} {names[kind][n != 1]}" for kind, n in sorted(self.skipped.items()))
        return f"not sent (history: older than act_within, or resolved/closed): {parts}"


# -- batches ---------------------------------------------------------------------------------
class AsRule:
    """A batch whose events are recorded with actor `rule:NAME` (and the run's time)."""

    __slots__ = ("_batch", "actor", "ts")

    def __init__(self, batch, actor: str, ts: str | None = None):
        self._batch = batch
        self.actor = actor
        self.ts = ts

    def emit(self, type, ticket=None, contact=None, data=None, why=None, actor=None, ts=None) -> dict:
        return self._batch.emit(type, ticket=ticket, contact=contact, data=data, why=why,
                                actor=actor or self.actor, ts=ts or self.ts)

    def __getattr__(self, name):
        return getattr(self._batch, name)

    def __setattr__(self, name, value):
        # Helpers (outbox, notify) cache things on the batch: keep them on the real one.
        if name in AsRule.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._batch, name, value)


# -- auto-reply history ----------------------------------------------------------------------
class ReplyLog:
    """Earlier auto-replies (events `rule.auto_reply`), read lazily: once per run, if needed."""

    def __init__(self, store: Store):
        self.store = store
        self.done: set[tuple[int, str]] = set()
        self.sent: list[tuple[datetime, str]] = []
        self._history: set[tuple[int, str]] | None = None
        self._recent_from: datetime | None = None
        self.fresh: set[int] = set()  # tickets never routed or never answered: no earlier auto-reply
        self.oldest: datetime | None = None  # creation of the oldest other ticket: where history starts

    def already(self, ticket: int, rule: str) -> bool:
        if (ticket, rule) in self.done:
            return True
        if ticket in self.fresh:
            return False
        if self._history is None:
            segs = self.store.log.segments()
            if self.oldest is not None:
                segs = segs[_segment_index(segs, self.oldest):]
            rows = _event_query(self.store, segs, "SELECT ticket, actor FROM ev WHERE type = 'rule.auto_reply'")
            self._history = {(t, a[5:]) for t, a in rows if a and a.startswith("rule:")}
        return (ticket, rule) in self._history

    def recent(self, sender: str, hours: float, now: datetime) -> int:
        since = now - timedelta(hours=hours)
        if self._recent_from is None or since < self._recent_from:
            self._load_recent(since)
        return sum(1 for ts, to in self.sent if to == sender and ts >= since)

    def _load_recent(self, since: datetime) -> None:
        """The auto-replies since `since`, read backwards from the log's end: the cost is the
        log written since then (and a day more), not the month's segment (which grows with the
        shop). Route stamps its events with its own clock, so they are in time order: the first
        older than `since` ends the read (imported events, with their own old times, are skipped
        unread: they are never auto-replies)."""
        segs = self.store.log.segments()
        first = segs[_segment_index(segs, since)] if segs else None
        # Any event not imported (imports keep their items' own, older times) written a day
        # before the window also ends the read: every auto-reply before it is older still
        # (a day leaves room for the clock being set back), even when none is near the window.
        margin = since - timedelta(days=1)

        def passed(ev: dict) -> bool:
            return "import" not in str(ev.get("via") or "") and parse_ts(ev["ts"]) < margin

        rows = []
        for ev in self.store.log.read_backward(match=b'"rule.auto_reply"', first_segment=first, passed=passed):
            if ev.get("type") != "rule.auto_reply":
                continue
            ts = parse_ts(ev["ts"])
            if ts < since:
                break
            rows.append((ts, (ev.get("data") or {}).get("to")))
        known = set(self.sent)
        self.sent += [r for r in rows if r not in known]
        self._recent_from = since

    def add(self, ticket: int, rule: str, sender: str, now: datetime) -> None:
        self.done.add((ticket, rule))
        self.sent.append((now, sender))


def _segment_index(segments: list[str], when: datetime) -> int:
    """Index of the first segment that can hold events from `when` on (segments are monthly)."""
    month = when.strftime("%Y-%m")
    return max([i for i, s in enumerate(segments) if s[:7] <= month], default=0)


_EVENT_COLUMNS = "{'seq': 'BIGINT', 'ts': 'TIMESTAMP', 'actor': 'VARCHAR', 'type': 'VARCHAR', " \
                 "'ticket': 'BIGINT', 'data': 'JSON'}"


def _event_query(store: Store, segments: list[str], sql: str, params=None, con=None) -> list[tuple]:
    """Run `sql` over a view `ev` of the given log segments (one DuckDB scan)."""
    if not segments:
        return []
    import duckdb

    con = con or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = [str(store.log.dir / s) for s in segments]
    con.execute(f"CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM read_json({_sql_list(files)}, "
                f"format='newline_delimited', columns={_EVENT_COLUMNS}, ignore_errors=true)")
    return con.execute(sql, params or []).fetchall()


def _sql_list(paths: list[str]) -> str:
    # Paths are the store's own segment files (names we wrote), quoted for SQL.
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _segments_after(store: Store, seq: int) -> list[str]:
    """The newest segments that together hold every event with a seq above `seq`."""
    segs = store.log.segments()
    chosen: list[str] = []
    for name in reversed(segs):
        chosen.append(name)
        with open(store.log.dir / name, "rb") as fh:
            first = fh.readline()
        try:
            if first.endswith(b"\n") and orjson.loads(first)["seq"] <= seq + 1:
                break
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return list(reversed(chosen))


# -- the runtime of one run ------------------------------------------------------------------
class Runtime:
    """What actions need while a run applies them: the batch, agents, templates, outbox."""

    def __init__(self, store: Store, batch, dry_run: bool, now: datetime, con_factory):
        self.store = store
        self.config = store.config
        self.batch = batch
        self.dry_run = dry_run
        self.now = now
        self.site = Site(self.config)
        self.assigner = Assigner(self.config, store.path("state"), con_factory)
        self.templates = Templates(store.path("templates"))
        self.replies = ReplyLog(store)
        self.own_addresses = {a.email.lower() for a in self.config.agents.values() if a.email}
        self._as: dict[str, AsRule] = {}
        self.ts = iso(now)  # every event of a run carries the run's time: they are one batch
        self.act_from = now - timedelta(seconds=self.config.act_within())
        self.skipped: Counter = Counter()

    def history(self, ctx) -> str | None:
        """Why an action that reaches people must not run for this message (None: it may).

        Side effects only on what is recent (DESIGN invariant 9, issue 17): never for a
        resolved or closed ticket, never for a message older than `act_within`, such as
        imported history. Classifying, tagging and assigning still happen.
        """
        status = ctx.ticket.get("status")
        if status in ("resolved", "closed"):
            return f"ticket is {status}"
        if ctx.arrived < self.act_from:
            return f"message older than act_within ({self.config.setting('act_within')})"
        return None

    def as_rule(self, rule) -> AsRule:
        b = self._as.get(rule.name)
        if b is None:
            b = self._as[rule.name] = AsRule(self.batch, f"rule:{rule.name}", self.ts)
        return b

    @staticmethod
    def why(rule) -> str:
        return f"rule {rule.name} ({rule.where})"

    def template_context(self, rule, ctx) -> dict:
        from tix.templates import with_fields

        ticket = with_fields(ctx.ticket)  # custom fields as a mapping: {{ ticket.fields.order_id }}
        ticket["ref"] = f"#{ticket['number']}"
        contact = with_fields(ctx.contact)
        # Templates are strict about undefined names: every message field is there, empty or not.
        message = {"channel": ticket.get("channel"), "from": "", "from_name": None, "to": [], "cc": [],
                   "subject": ticket.get("subject") or "", "text": "", "attachments": [], "inbox": None, **ctx.msg}
        return {"ticket": ticket, "message": message, "contact": contact, "rule": rule.name,
                "customer_name": ctx.msg.get("from_name") or contact.get("name") or "",
                "arrived": ctx.local, "now": self.now.astimezone(self.site.tz),
                "business_hours": self.site.in_business_hours(ctx.arrived),
                **hours_context(self.site, ctx.local, self.config.setting("locale")),
                **self.config.template_names(),
                "settings": dict(self.config.settings)}

    def resolve_email(self, target: str, ctx) -> str | None:
        if target == "assignee":
            agent = self.config.agents.get(ctx.ticket.get("assignee") or "")
            return agent.email if agent and agent.email else None
        if target in self.config.agents:
            return self.config.agents[target].email or None
        return target

    def send_auto_reply(self, rule, ctx, channel, text, template, subject) -> str:
        """Queue the reply through the outbox: "queued", "capped" (the outbox's own per-recipient
        cap), or "recorded" when there is no outbox to queue it in."""
        try:
            from tix import outbox  # type: ignore[attr-defined]
        except ImportError:
            return "recorded"
        if self.dry_run:
            return "queued"
        params = inspect.signature(outbox.queue).parameters
        kwargs: dict = {"actor": f"rule:{rule.name}", "auto": True}
        if channel == "email":
            kwargs["template"] = template  # for WhatsApp, `template` names an approved Meta template
        if "extra" in params:
            kwargs["extra"] = {"rule": rule.name, "rules_template": template}
        if subject and "subject" in params:
            kwargs["subject"] = subject
        sent = outbox.queue(self.as_rule(rule), ctx.ticket, channel, text, **kwargs)
        return "capped" if isinstance(sent, dict) and sent.get("state") == "capped" else "queued"

    def notify(self, rule, ctx, how, target, subject, body, key) -> bool:
        try:
            from tix.outbox import notify
        except ImportError:
            notify = None
        if notify is not None and not self.dry_run:
            notify(self.as_rule(rule), kind=how, target=target, subject=subject, body=body, key=key,
                   ticket=ctx.ticket["number"])
        if notify is None:
            self.as_rule(rule).emit("rule.notify", ticket=ctx.ticket["number"],
                                    data={"kind": how, "target": target, "subject": subject, "key": key},
                                    why=self.why(rule))
        return notify is not None


# -- evaluation ------------------------------------------------------------------------------
def apply_rules(rt: Runtime, ruleset: RuleSet, ctx: Context, result: RouteResult) -> list[str]:
    """Evaluate every rule on one message, applying the actions of those that match."""
    number = ctx.ticket["number"]
    matched = []
    record = result.record
    for rule in ruleset.plan(ctx.when).candidates(ctx):
        try:
            if not rule.condition.fn(ctx):
                continue
            matched.append(rule.name)
            for action in rule.actions:
                text = action.apply(rt, rule, ctx)
                if text and record:
                    result.lines.append(Line(number, rule.name, text))
        except Exception as exc:  # noqa: BLE001 - one bad rule never stops the batch
            message = f"{type(exc).__name__}: {exc}"
            result.failed(rule.where, rule.name, number, message)
            rt.as_rule(rule).emit("rule.failed", ticket=number, data={"error": message}, why=rt.why(rule))
            continue
        if rule.stop:
            if record:
                result.lines.append(Line(number, rule.name, "stop"))
            break
    result.matched.update(matched)
    return matched


def build_message(events: list[tuple], ticket: dict) -> tuple[str, dict, int, datetime]:
    """(when, message, seq, arrived) from a ticket's unrouted intake events, in seq order.

    Each event is (seq, ts, type, data dict).
    """
    created = next((e for e in events if e[2] == "ticket.created"), None)
    received = [e for e in events if e[2] == "message.received"]
    if created is not None:
        cdata = created[3]
        msg = {k: cdata[k] for k in ("channel", "inbox", "subject") if cdata.get(k) is not None}
        first = next((e for e in received if e[0] > created[0]), received[0] if received else None)
        if first is not None:
            msg.update(first[3])
            return "new", msg, first[0], _aware(first[1])
        note = next((e for e in events if e[2] == "ticket.note" and e[3].get("kind") == "intake"), None)
        if note is not None:
            msg["text"] = note[3].get("body") or ""
        return "new", msg, created[0], _aware(created[1])
    if received:
        last = received[-1]
        return "reply", dict(last[3]), last[0], _aware(last[1])
    return "reply", {}, int(ticket.get("intake_seq") or 0), _aware(ticket.get("updated_at"))


def _aware(ts) -> datetime:
    return utcnow() if ts is None else parse_ts(ts)


# -- the run ---------------------------------------------------------------------------------
def load(store: Store) -> RuleSet:
    """The store's rules, validated (ConfigError lists every problem)."""
    return load_rules(store.path("rules"), store.config, Templates(store.path("templates")))


def route(store: Store, *, dry_run: bool = False, reroute: bool = False, numbers: list[int] | None = None,
          now: datetime | None = None, ruleset: RuleSet | None = None, record: bool = True,
          on_lines=None) -> RouteResult:
    """Route every ticket with unrouted customer input (or `numbers`; `reroute`: again).

    Args:
        dry_run: compute everything, write nothing; the events are in `result.planned`.
        reroute: route the given tickets (default: all open ones) even if already routed,
            as if they were new; auto-replies are still sent at most once per ticket and rule.
        numbers: only these tickets.
        record: keep a line per action in `result.lines` (for -v and --dry-run).
        on_lines: given the lines of each chunk a long run commits (ROUTE_CHUNK tickets), which
            `result.lines` then lets go (`tix -v route` over a whole history held every line
            to the end: 0.7 GB at a million tickets); the last chunk's stay in `result.lines`.
    Returns:
        RouteResult with counts, what was done per ticket, and errors (exit code 1).
    Raises:
        ConfigError when the rules are invalid (nothing written); StoreLocked.
    """
    ruleset = ruleset or load(store)
    now = now or utcnow()
    result = RouteResult(dry_run=dry_run, record=record or dry_run, on_lines=None if dry_run else on_lines)
    if dry_run:
        reader = store.read(messages=True)
        _run(store, DryBatch(store, reader), reader, ruleset, result, reroute, numbers, now)
        return result
    with store.writing(actor="system", via="tix route") as batch:
        batch.use_reader(store.read(messages=True))  # the new messages' text, from the tail
        rt = _run(store, batch, batch.reader, ruleset, result, reroute, numbers, now)
        batch.flush()
        rt.assigner.save()
        index = store.cache.get("mail_index")  # loaded to thread auto-replies: keep it warm (a cache)
        if index is not None:
            index.save(store)
    return result


ROUTE_CHUNK = 20_000  # tickets read, routed and written at a time (a whole imported history: flat memory)


def _run(store, batch, reader, ruleset, result, reroute, numbers, now) -> Runtime:
    con = reader.connect()
    rt = Runtime(store, batch, batch.__class__ is DryBatch, now, lambda: con)
    found = _pending(con, reroute, numbers)
    if not found:
        return rt
    # An auto-reply is a routed, sent message: a ticket never routed or never answered has had none.
    rt.replies.fresh = {f[0] for f in found if not f[1] or not f[2]}
    others = [f[3] for f in found if f[0] not in rt.replies.fresh and f[3]]
    rt.replies.oldest = _aware(min(others)) if others else None
    first = batch.seq
    tail = reader.tail if reader.messages else None
    chunked = len(found) > ROUTE_CHUNK
    if chunked:  # the intake events of them all, read from the log once, kept by DuckDB (spilled to disk)
        _stage_intake(store, con, found, reroute)
    for i in range(0, len(found), ROUTE_CHUNK):
        tickets = _rows(con, [f[0] for f in found[i:i + ROUTE_CHUNK]])
        cutoffs = {t["number"]: (0 if reroute else int(t["routed_seq"] or 0)) for t in tickets}
        intake = _intake_events(store, con, tickets, cutoffs, tail, staged=chunked)
        contacts = _contacts(con, tickets) if ruleset.uses_contact else {}
        for ticket in tickets:
            number = ticket["number"]
            when, msg, seq, arrived = build_message(intake.get(number, []), ticket)
            ctx = Context(msg, ticket, contacts.get(ticket.get("contact")), when, arrived, rt.site,
                          ruleset.bank, ruleset.kwbank)
            ctx.seq = seq
            matched = apply_rules(rt, ruleset, ctx, result)
            batch.emit("ticket.routed", ticket=number, data={"upto": int(ticket["intake_seq"] or 0),
                                                             "rules": matched}, ts=rt.ts)
            result.routed += 1
        del tickets, intake, contacts
        if chunked and not rt.dry_run:  # each chunk committed (a crash leaves the rest to route next
            batch.flush()  # run, as ever) and its events let go: memory stays flat however long
            batch.forget_written()
            if result.on_lines is not None and result.lines:  # what was committed, said now
                result.on_lines(result.lines)
                result.lines = []
    result.events = batch.seq - first
    result.skipped.update(rt.skipped)
    if rt.dry_run:
        result.planned = list(batch.pending[len(batch.pending) - result.events:])
    return rt


def _pending(con, reroute: bool, numbers) -> list[tuple]:
    """(number, routed_seq, messages_out, created_at, intake_seq) of the tickets to route, by number."""
    where, params = [], []
    if numbers is not None:
        where.append("number IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(numbers))
    if not reroute:
        where.append("intake_seq > coalesce(routed_seq, 0)")
    elif numbers is None:
        where.append("status IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(OPEN_STATUSES))
    # The few columns first, then the rows a chunk at a time (`_rows`): DuckDB does not push a
    # filter comparing two columns into the scan, so `SELECT *` with it read every column of
    # every ticket (0.26 s of CPU of each cron run at a million tickets, for the 50 new ones).
    return con.execute("SELECT number, routed_seq, messages_out, created_at, intake_seq FROM tickets"
                       + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY number", params).fetchall()


def _rows(con, numbers: list[int]) -> list[dict]:
    """The rows of these tickets, by number."""
    cur = con.execute("SELECT * FROM tickets WHERE number IN (SELECT CAST(unnest(string_split(?, ',')) AS BIGINT)) "
                      "ORDER BY number", [",".join(map(str, numbers))])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _stage_intake(store: Store, con, found: list[tuple], reroute: bool) -> None:
    """A run over more tickets than a chunk (the first route after importing a history): the
    intake events of them all, read from the log in one scan into DuckDB's table
    `_route_intake`, sorted by ticket, under a memory limit (the rest spills to
    state/duckdb-tmp); each chunk then reads its own range of tickets from it."""
    import pyarrow as pa

    con.execute("SET memory_limit = '400MB'")
    con.execute("SET temp_directory = ?", [str(store.path("state", "duckdb-tmp"))])
    con.execute("SET preserve_insertion_order = true")
    segments = _segments_after(store, min(0 if reroute else int(f[1] or 0) for f in found))
    con.register("_route_pending", pa.table({
        "number": pa.array([f[0] for f in found], pa.int64()),
        "cutoff": pa.array([0 if reroute else int(f[1] or 0) for f in found], pa.int64()),
        "upto": pa.array([int(f[4] or 0) for f in found], pa.int64())}))
    if not segments:
        con.execute("CREATE OR REPLACE TEMP TABLE _route_intake AS SELECT NULL::BIGINT AS ticket, "
                    "NULL::BIGINT AS seq, NULL::TIMESTAMP AS ts, NULL::VARCHAR AS type, NULL::JSON AS data WHERE false")
        return
    _event_query(store, segments,
                 "CREATE OR REPLACE TEMP TABLE _route_intake AS "
                 "SELECT e.ticket, e.seq, e.ts, e.type, e.data FROM ev e JOIN _route_pending p "
                 "ON e.ticket = p.number WHERE e.type IN (SELECT unnest(?::VARCHAR[])) "
                 "AND e.seq > p.cutoff AND e.seq <= p.upto ORDER BY e.ticket, e.seq",
                 [list(INTAKE_TYPES)], con=con)
    con.unregister("_route_pending")


def _intake_events(store: Store, con, tickets: list[dict], cutoffs: dict[int, int], tail=None,
                   staged: bool = False) -> dict[int, list]:
    """Each pending ticket's intake events after its cutoff.

    From the reader's tail (the events after the snapshot, already parsed) when it holds
    them all, which is the usual case for a cron run after `tix fetch`; otherwise from one
    DuckDB scan of the newest segments. `staged`: from `_route_intake` (`_stage_intake`),
    which holds the events of every pending ticket; `tickets` are a range of numbers.
    """
    out: dict[int, list] = {}
    loads = orjson.loads
    if staged:
        rows = con.execute("SELECT ticket, seq, ts, type, data FROM _route_intake WHERE ticket BETWEEN ? AND ? "
                           "ORDER BY seq", [tickets[0]["number"], tickets[-1]["number"]]).fetchall()
        for number, seq, ts, kind, data in rows:
            out.setdefault(number, []).append((seq, ts, kind, loads(data) if data else {}))
        return out
    if tail:
        # the tail holds every intake event of a ticket routed since it began, and of a
        # ticket created in it (a new ticket's cutoff is 0, but it has no earlier events)
        born = {ev["ticket"] for ev in tail if ev["type"] == "ticket.created"}
        first = tail[0]["seq"]
        covered = [t for t in tickets if cutoffs[t["number"]] + 1 >= first or t["number"] in born]
        if covered:
            out = _intake_from_tail(tail, covered, cutoffs)
            if len(covered) == len(tickets):
                return out
            done = {t["number"] for t in covered}
            tickets = [t for t in tickets if t["number"] not in done]
    import pyarrow as pa

    segments = _segments_after(store, min(cutoffs[t["number"]] for t in tickets))
    if not segments:
        return out
    numbers = [t["number"] for t in tickets]
    con.register("_route_pending", pa.table({
        "number": pa.array(numbers, pa.int64()),
        "cutoff": pa.array([cutoffs[n] for n in numbers], pa.int64()),
        "upto": pa.array([int(t["intake_seq"] or 0) for t in tickets], pa.int64())}))
    rows = _event_query(store, segments,
                        "SELECT e.ticket, e.seq, e.ts, e.type, e.data FROM ev e JOIN _route_pending p "
                        "ON e.ticket = p.number WHERE e.type IN (SELECT unnest(?::VARCHAR[])) "
                        "AND e.seq > p.cutoff AND e.seq <= p.upto ORDER BY e.seq",
                        [list(INTAKE_TYPES)], con=con)
    loads = orjson.loads
    for number, seq, ts, kind, data in rows:
        out.setdefault(number, []).append((seq, ts, kind, loads(data) if data else {}))
    return out


def _intake_from_tail(tail: list[dict], tickets: list[dict], cutoffs: dict[int, int]) -> dict[int, list]:
    upto = {t["number"]: int(t["intake_seq"] or 0) for t in tickets}
    out: dict[int, list] = {}
    kinds = INTAKE_TYPES
    for ev in tail:
        number = ev.get("ticket")
        if number is None or ev["type"] not in kinds or number not in upto:
            continue
        if cutoffs[number] < ev["seq"] <= upto[number]:
            out.setdefault(number, []).append((ev["seq"], ev["ts"], ev["type"], ev.get("data") or {}))
    return out


def _contacts(con, tickets: list[dict]) -> dict[int, dict]:
    ids = sorted({t["contact"] for t in tickets if t.get("contact") is not None})
    if not ids:
        return {}
    cur = con.execute("SELECT * FROM contacts WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

