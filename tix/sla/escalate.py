"""`tix escalate`: compute every open ticket's SLA clocks and run the escalation steps due.

The run, in order (the store lock is held from 2 to 6, never while sending):

1. Load and validate `calendars:` and `sla:` (every problem at once, `file:line`; nothing runs).
2. Load the persisted clock tracks and fold the log tail into them (`tix.sla.state`): of
   the tickets new events name and of those whose clocks reach a warning or breach by now
   (the due-time index); of every open ticket on a cold start or when the settings'
   `fingerprint` changed. The other saved rows stay as they are.
3. Match each of those tickets to its policy (one SQL query over `tickets` + `contacts`).
4. Compute their clocks with numpy (`tix.sla.clock`): used, due, state, next change.
5. Plan: a `sla.breached` event for each clock that breached and was not recorded yet, and
   each configured step whose clock is in the step's state (`warning`, `breached`) or whose
   WhatsApp window is about to close, unless its key (ticket:target:cycle:step) was recorded.
6. Act (unless dry run): per policy one batch with actor `sla:POLICY`: the `sla.step` event,
   field changes (`tix.tickets.set_fields` / `tag`), notifications queued in the outbox
   (`tix.outbox.notify`; one whose template raises is queued as failed, with the reason).
   Then save the tracks and the `sla` rows (Parquet) with the log position they reflect.
   Repeat 2-6 until a round plans nothing: a step that sets priority, team or assignee can
   move its ticket to another policy whose clocks are due at the same moment, and one run
   takes those steps too, so a second run at the same time changes nothing (issue 15). At
   most `max_rounds` rounds; a run that does not settle by then stops with DidNotSettle,
   naming the tickets and the policies they kept moving between. A dry run plans one round.
7. Flush the outbox's notifications (email / webhooks; each recorded as it is sent;
   failures are kept and retried next run).

SLA is not retroactive: the first run on a store records when the watch starts (one
`sla.started` event, with per policy how many breaches and steps were already overdue), and no
run ever acts on a clock that came due before that (`_since_start`); the start is read from the
log (tix.sla.state.watch_start) and kept in the state's meta.

A policy change in tix.yaml applies from the next run on (it changes the fingerprint);
breaches already recorded stay recorded (`sla.breached` events, and `breached` in the view).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tix import config as configmod
from tix import tickets
from tix.errors import ConfigError, TixError
from tix.model import PRIORITIES, PRIORITY_RANK
from tix.durations import format_duration
from tix.sla.calendar import Calendar, parse_calendars
from tix.sla.clock import DONE
from tix.sla.policy import SlaConfig, parse_sla, policy_case_sql
from tix.store.log import iso, parse_ts, utcnow

USES = {"tickets", "contacts"}  # the views a run's queries read (no `sla` or `events` view is made)
WINDOW = 86400.0  # WhatsApp's customer-service window after the customer's last message
TARGET_LABEL = {"first_response": "first response", "next_response": "next response",
                "resolution": "resolution", "whatsapp_window": "WhatsApp 24-hour window"}


@dataclass
class Planned:
    ticket: int
    policy: str
    target: str
    cycle: int
    state: str
    key: str
    step: object | None = None  # a policy Step, or None for recording a breach
    due: float | None = None
    used: float = 0.0
    target_s: float = 0.0
    window_close: float | None = None
    window_in: float = 0.0
    history: bool = False  # a notifying step of a breach before act_within: nobody is notified (issue 17)

    def describe(self) -> str:
        if self.step is None:
            return "record breach"
        if self.history:
            return f"step {self.step.name}: {self.step.describe()} (history: breached before act_within, no notice)"
        return f"step {self.step.name}: {self.step.describe()}"


@dataclass
class EscalateReport:
    now: datetime
    dry_run: bool = False
    cold: bool = False
    open_tickets: int = 0
    clocks: int = 0
    states: Counter = field(default_factory=Counter)
    planned: list[Planned] = field(default_factory=list)
    events_written: int = 0
    rounds: int = 0  # compute-plan-act rounds until nothing more was due (see _settle)
    notify: object | None = None  # tix.outbox.FlushReport of the notifications sent at the end
    errors: list[str] = field(default_factory=list)  # notifications that could not be made (queued as failed)
    start: str | None = None  # when SLA began watching the store (ISO UTC; this run's now on the first run)
    started: bool = False  # this run is the first on the store: it records the start (`sla.started`)
    before_start: dict = field(default_factory=dict)  # first run: policy -> {"breaches": n, "steps": {step: n}}
    timings: dict = field(default_factory=dict)
    unwatched: bool = False  # no policy, and none ever kept clocks here: nothing was computed
    next_due: str | None = None  # the earliest a clock or window could warn or breach (ISO UTC; tix.idle)
    computed: int = 0  # tickets whose rows the run computed (the due-time index leaves the others as saved)

    @property
    def ok(self) -> bool:
        return not self.errors and (self.notify is None or self.notify.ok)

    @property
    def skipped(self) -> int:
        """Notifying steps whose notices were not sent: their breach is older than act_within."""
        return sum(1 for p in self.planned if p.history)


# -- settings -----------------------------------------------------------------------------------
@dataclass
class SlaSettings:
    sla: SlaConfig
    calendars: dict  # name -> Calendar; None -> 24/7 in the site zone
    tz: str
    window: float = WINDOW  # WhatsApp's window (`whatsapp: window_hours`, default 24)
    agents: dict = field(default_factory=dict)  # login -> tix.config.Agent (for `email: assignee`)
    act_within: float = 4 * 3600.0  # steps of a breach older than this are history (settings.act_within)


def load_settings(store) -> SlaSettings:
    """Validate the whole tix.yaml (like `tix config check`); raise ConfigError on any problem."""
    path = store.root / configmod.CONFIG_NAME
    cfg = configmod.load(path, validate_sections=True)
    store.set_config(cfg)
    tz = cfg.setting("timezone")
    specs, problems = parse_calendars(cfg.raw.get("calendars"), str(path), tz, cfg.setting("locale"))
    sla, more = parse_sla(cfg.raw.get("sla"), str(path), specs, cfg.teams, cfg.agents)
    if problems or more:
        raise ConfigError(problems + more)
    cals: dict = {name: Calendar(spec) for name, spec in specs.items()}
    cals[None] = Calendar.always("24/7", tz)
    wa = cfg.raw.get("whatsapp") if isinstance(cfg.raw.get("whatsapp"), dict) else {}
    try:
        window = float(wa.get("window_hours") or 24) * 3600
    except (TypeError, ValueError):
        window = WINDOW  # the whatsapp section's own validator reports it
    return SlaSettings(sla, cals, tz, window, cfg.agents, cfg.act_within())


def fingerprint(settings: SlaSettings) -> str:
    """A hash of everything the saved `sla` rows depend on besides the events and the time: the
    policies and calendars (not the lines they are on), the WhatsApp window, act_within, the
    state's FORMAT and the holidays package (its data). When it changes, a run computes every
    open ticket again (tix.sla.state: the due-time index)."""
    import dataclasses
    import hashlib

    from tix.sla.state import FORMAT

    pols = [{k: v for k, v in dataclasses.asdict(p).items() if k != "line"} for p in settings.sla.policies]
    cals = {str(name): dataclasses.asdict(cal.spec) for name, cal in settings.calendars.items()}
    holidays = ""
    if any(cal.spec.holidays for cal in settings.calendars.values()):
        import importlib.util
        from pathlib import Path

        # its dist-info's name holds the version (importlib.metadata takes 0.1 s to say so)
        spec = importlib.util.find_spec("holidays")
        site = Path(spec.origin).parent.parent if spec and spec.origin else None
        holidays = repr(sorted(p.name for p in site.glob("holidays-*-info"))) if site else "?"
    text = repr((FORMAT, pols, settings.sla.warn_at, settings.sla.window_warning, sorted(cals.items()),
                 settings.tz, settings.window, settings.act_within, holidays))
    return hashlib.sha256(text.encode()).hexdigest()


# -- the run ------------------------------------------------------------------------------------------
def escalate(store, now: datetime | None = None, dry_run: bool = False, rebuild: bool = False,
             flush_outbox: bool = True) -> EscalateReport:
    """Compute all open tickets' clocks and take the escalation steps due (see module doc).

    Args:
        now: the time to evaluate at (default: the current time); UTC-aware.
        dry_run: plan only; nothing is written or sent.
        rebuild: ignore the saved SLA state and fold the whole log again.
        flush_outbox: send queued notifications at the end (as `tix notify flush` does).

    Returns an EscalateReport; `report.ok` is False when a notification failed to send.
    Raises ConfigError (exit 2, nothing done) on any problem in calendars/sla, and
    DidNotSettle (exit 1) when rounds of steps keep changing tickets past `max_rounds`.
    """
    now = parse_ts(now or utcnow())
    report = EscalateReport(now, dry_run=dry_run)
    clock = time.perf_counter()
    from tix.sla.state import SlaState

    settings = load_settings(store)
    if not settings.sla.policies and not SlaState.saved(store):
        # No policy, and no state from a time there were some: no clock can be due, so the log
        # is not folded (a first run at a million tickets took 10 s and 789 MB for nothing).
        # A policy added later changes tix.yaml: that run folds the log as any first run does.
        report.unwatched = True
    else:
        _escalate_locked(store, settings, now, report, dry_run, rebuild, clock)
    if flush_outbox and not dry_run:
        from tix import outbox

        report.notify = outbox.flush(store, now, purposes=("notification",), via="tix escalate")
    report.timings["total"] = time.perf_counter() - clock
    return report


def _escalate_locked(store, settings, now: datetime, report: EscalateReport, dry_run: bool, rebuild: bool,
                     clock) -> None:
    lock = None if dry_run else store.lock()
    if lock is not None:
        lock.acquire()
        if lock.depth == 1:  # as Store.writing does: cut a torn last line before appending
            store.log.repair(store.path("quarantine"))
    try:
        _settle(store, settings, now, report, rebuild, clock)
    finally:
        if lock is not None:
            lock.release()


def max_rounds(policies) -> int:
    """How many rounds a run may take before it is called a loop.

    A round takes the steps due; a step that sets priority, team or assignee can move its
    ticket to another policy, whose clocks may be due as well: the next round takes those.
    Each step runs once per ticket, target and cycle, so a ticket's policy changes at most
    once per policy it has not yet been through: one round per policy, and one to find
    nothing more to do, is enough for any configuration; more means something is wrong.
    """
    return len(policies) + 2


class DidNotSettle(TixError):
    """The steps kept changing tickets round after round (exit 1: what was done is recorded)."""


def _settle(store, settings: SlaSettings, now: datetime, report: EscalateReport, rebuild: bool, clock) -> None:
    """Rounds of compute, plan, act, until a round plans nothing (issue 15: one run settles).

    The events of a round are folded into the SLA state before the next round computes, so
    a ticket whose priority a step raised is matched to its new policy at the same `now`.
    A dry run plans the first round only: it writes nothing for a second round to see.
    A round after the first plans only for the tickets the round before wrote events for: it
    took every step due at `now` on every other ticket, whose clocks and policy it left as
    they were; so it starts from the rows the round before saved and computes those tickets'
    rows again (`_recompute`), instead of loading and computing every open ticket's.
    """
    from tix.sla.state import SlaState

    t = now.timestamp()
    moves: dict[int, list[str]] = {}
    limit = max_rounds(settings.sla.policies)
    written: list[dict] = []
    prev = None  # the round before's context, with the rows it saved
    for n in range(1, limit + 1):
        rnd = EscalateReport(now, dry_run=report.dry_run)  # this round's plan, stats and events
        if prev is None:
            st = SlaState.load(store, rebuild=rebuild, fingerprint=fingerprint(settings), now=t)
            report.cold = st.cold
            ctx = _compute(store, st, settings, t, rnd, write_closed=not report.dry_run)
            since = st.watched_since()
            # the first run on this store with a policy: the watch starts now
            report.started = since is None and bool(settings.sla.policies)
            start = float(since) if since is not None else t
            report.start = iso(_dt(start))
        else:
            ctx = _recompute(store, prev, written, settings, t, rnd)
        ctx["start"], ctx["count_before"] = start, report.started and prev is None
        _plan(ctx, settings, t, rnd)
        _absorb(report, rnd, n, clock)
        try:
            report.next_due = next_due(ctx, settings, t)
        except Exception:  # noqa: BLE001 - only a hint for the idle exit: "due now" keeps the next run full
            report.next_due = iso(now)
        if report.dry_run:
            return
        written = _mark_start(store, start, report.before_start) if ctx["count_before"] else []
        st.start = start if report.started or st.start is not None else None
        written += _act(store, ctx, settings, rnd)
        _absorb_acted(report, rnd, written)
        saved = st.fold_written(ctx["table"], written)
        st.save(saved, ctx["done"], ctx["write_done"])
        if written:
            store.maybe_refresh_snapshot()
        _note_moves(moves, ctx, written)
        if not any(ev.get("ticket") is not None for ev in written):  # nothing a next round could see
            return
        if ctx["con"] is not None:
            ctx["con"].close()  # the next round reads the tickets as this round's events left them
        prev = {**ctx, "table": saved, "con": None}
        ctx = saved = None
    _note_moves(moves, _compute(store, SlaState.load(store), settings, t, None), [{"ticket": n} for n in moves])
    raise DidNotSettle(f"tix escalate did not settle after {limit} rounds: its steps keep moving tickets between "
                       f"SLA policies ({_shown_moves(moves)}); check the steps that set priority, team or assignee")


def _mark_start(store, start: float, before: dict) -> list[dict]:
    """The first run on a store records when the watch starts (`sla.started`): no step due
    before then is ever taken; instead of an event per ticket, how many were overdue and left
    (`before_start`: per policy, breaches not recorded and steps not taken, by step name)."""
    with store.writing(actor="system", via="tix escalate") as batch:
        batch.emit("sla.started", data={"start": iso(_dt(start)), "before_start": before})
    return list(batch.written)


def _absorb(report: EscalateReport, rnd: EscalateReport, n: int, clock) -> None:
    """The run's report: every round's plan; the last round's picture of the clocks."""
    report.rounds = n
    if rnd.before_start:
        report.before_start = rnd.before_start
    report.computed = max(report.computed, rnd.computed)  # a later round computes some of the first's again
    report.planned += rnd.planned
    report.open_tickets, report.clocks, report.states = rnd.open_tickets, rnd.clocks, rnd.states
    report.timings.setdefault("load", time.perf_counter() - clock)
    report.timings["compute"] = time.perf_counter() - clock


def _absorb_acted(report: EscalateReport, rnd: EscalateReport, written: list[dict]) -> None:
    report.events_written += len(written)
    for name, value in vars(rnd).items():  # e.g. notifications that could not be made
        if isinstance(value, list) and name != "planned":
            getattr(report, name).extend(value)
    report.timings["act"] = rnd.timings.get("act", 0.0)


def _note_moves(moves: dict[int, list[str]], ctx: dict, written: list[dict]) -> None:
    """Each ticket's policy in this round, for the error of a run that does not settle."""
    names = [p.name for p in ctx["policies"]]
    index = {int(num): i for i, num in enumerate(ctx["numbers"].tolist())}
    for ticket in sorted({ev["ticket"] for ev in written if ev.get("ticket") is not None}):
        i = index.get(ticket)
        pol = names[ctx["pol"][i]] if i is not None and ctx["pol"][i] >= 0 else "-"
        if not moves.get(ticket) or moves[ticket][-1] != pol:
            moves.setdefault(ticket, []).append(pol)


def _shown_moves(moves: dict[int, list[str]]) -> str:
    longest = sorted(moves.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:3]
    return "; ".join(f"#{t}: {' -> '.join(path)}" for t, path in longest) or "no ticket named"


def _policy_rows(con, sla: SlaConfig, numbers: list[int] | None, only: bool = False):
    """(numbers, policy index, channel) arrays, sorted by number, for open tickets and `numbers`
    (every ticket when `numbers` is None; just `numbers` with `only`). One query; policies are
    matched in SQL."""
    case, params = policy_case_sql(sla.policies)
    where = ""
    if numbers is not None:
        where = "WHERE t.number IN (SELECT unnest(?::BIGINT[]))"
        if not only:
            where += " OR t.status IN ('new', 'open', 'pending')"
        params = [*params, numbers]
    sql = (f"SELECT t.number, {case} AS pol, t.channel = 'whatsapp' AS wa FROM tickets t "
           f"LEFT JOIN contacts c ON c.id = t.contact {where} ORDER BY t.number")
    tbl = con.sql(sql, params=params).to_arrow_table()
    import pyarrow.compute as pc

    return (tbl["number"].to_numpy(), tbl["pol"].to_numpy().astype(np.int64),
            pc.fill_null(tbl["wa"], False).to_numpy(zero_copy_only=False))


def _compute(store, st, settings: SlaSettings, now: float, report: EscalateReport | None,
             write_closed: bool = False) -> dict:
    """Clocks of the tickets this run computes, and the Parquet table of their rows: every open
    (and every touched) ticket when `st.full`; else those named by new events and those due
    (tix.sla.state: the due-time index), the report counting the other saved rows as they are.

    On a cold start the tickets already resolved or closed are done first, apart, a chunk at a
    time (`_closed_rows`): no step runs on them in this run, so only their rows are needed,
    written as a done part (`write_closed`) and never held with the open tickets' in memory.
    """
    con = None
    if st.full or st.table.num_rows or st.tracks or (st.contacts and _reads_contacts(settings.sla)):
        con = store.read().connect(only=USES)
    if not st.full and st.contacts and _reads_contacts(settings.sla):
        rows = con.execute("SELECT number FROM tickets WHERE contact IN (SELECT unnest(?::BIGINT[])) "
                           "AND status IN ('new', 'open', 'pending')", [sorted(st.contacts)]).fetchall()
        st.add({r[0] for r in rows})
    table = None if st.cold else st.all_tracks()
    if st.cold:
        q = _policy_rows(con, settings.sla, None)
    elif st.full:
        q = _policy_rows(con, settings.sla, sorted(st.touched))
    elif table.num_rows:
        q = _policy_rows(con, settings.sla, table["ticket"].to_pylist(), only=True)
    else:
        q = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    if st.cold and (write_closed or report is not None):
        _closed_rows(st, q, settings, now, report, write_closed)
    if table is None:
        table = st.all_tracks()
    out, numbers, done, wa, pol, clocks = _clock_rows(table, q, settings, now, report)
    n = len(numbers)
    rest, rest_next = st.rest(numbers)
    if report is not None:
        report.open_tickets = int((~done).sum())
        report.computed = n
        _count_rest(report, rest)
    touched = np.isin(numbers, np.fromiter(st.touched, np.int64, len(st.touched))) if st.touched else np.zeros(n, bool)
    return {"con": con, "table": out, "numbers": numbers, "done": done, "wa": wa, "pol": pol,
            "clocks": clocks, "eligible": ~done | (touched & ~st.cold), "write_done": done & touched,
            "policies": settings.sla.policies, "st": st, "rest_next": rest_next}


def _reads_contacts(sla: SlaConfig) -> bool:
    """Whether a policy's `when` reads contact fields (then a contact's change can move its tickets)."""
    return any(k == "tier" or k.startswith("contact.") for p in sla.policies for k in p.when)


def _count_rest(report: EscalateReport, rest: dict) -> None:
    """Add the saved rows a run did not compute (tix.sla.state.SlaState.rest) to its counts."""
    report.open_tickets += rest["open"]
    report.clocks += rest["clocks"]
    report.states.update(rest["states"])


CLOSED_CHUNK = 200_000  # tickets per chunk of a cold start's resolved and closed tickets


def _closed_rows(st, q, settings: SlaSettings, now: float, report: EscalateReport | None, write: bool) -> None:
    """Cold start: the rows of the tickets already resolved or closed (9 in 10 of a big store),
    CLOSED_CHUNK at a time, streamed into one done part (tix.sla.state.SlaState.write_part)."""
    closed = st.split_closed()
    chunks = (_clock_rows(closed.slice(i, CLOSED_CHUNK), q, settings, now, report)[0]
              for i in range(0, closed.num_rows, CLOSED_CHUNK))
    if write:
        st.write_part(chunks)
    else:  # a dry run: counted, not written
        for _ in chunks:
            pass


def _clock_rows(table, q, settings: SlaSettings, now: float, report: EscalateReport | None):
    """The `sla` rows (tix.sla.state.schema) of a tracks table sorted by ticket, with the arrays
    the plan reads: (rows, numbers, done, wa, pol, clocks). `q`: `_policy_rows` of its tickets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tix.sla.clock import compute_columns
    from tix.sla.state import PREFIX, schema

    q_num, q_pol, q_wa = q
    numbers = table["ticket"].to_numpy()
    n = len(numbers)
    names = [p.name for p in settings.sla.policies]
    stored = pc.fill_null(pc.index_in(table["policy"], value_set=pa.array(names, pa.string())), -1)
    stored = stored.to_numpy().astype(np.int64)
    at = np.minimum(np.searchsorted(q_num, numbers), max(len(q_num) - 1, 0))
    found = (q_num[at] == numbers) if len(q_num) else np.zeros(n, bool)
    done = pc.is_in(table["status"], value_set=pa.array(list(DONE))).to_numpy(zero_copy_only=False)
    # open tickets are matched again every run (a policy change applies from then on); a closed
    # ticket keeps the policy it had, unless it is new to us
    pol = np.where(found & (~done | (stored < 0)), q_pol[at] if len(q_num) else -1, stored)
    wa = np.where(found, q_wa[at] if len(q_num) else False, False)
    clocks = compute_columns(table, pol, settings.sla.policies, settings.calendars, now)
    breach_keys = _breach_keys(table)
    cols = {name: table[name] for name in table.column_names}
    cols["policy"] = pa.array([*names, None], pa.string()).take(pa.array(np.where(pol >= 0, pol, len(names))))
    for target, p in PREFIX.items():
        c = clocks[target]
        c.breached = c.breached | (_recorded(table, target, c.cycle, breach_keys) & c.has)
        cols[f"{p}_cycle"] = pa.array(c.cycle, mask=~c.has)
        cols[f"{p}_started"] = pa.array(c.start, mask=~c.has)
        cols[f"{p}_due"] = pa.array(c.due, mask=~c.has)
        cols[f"{p}_met"] = pa.array(c.met, mask=~c.has | np.isnan(c.met))
        cols[f"{p}_state"] = pa.array(c.state, pa.string())  # object array of names or None
        cols[f"{p}_breached"] = pa.array(c.breached, mask=~c.has)
        cols[f"{p}_bsec"] = pa.array(c.used, mask=~c.has)
        cols[f"{p}_csec"] = pa.array(c.met - c.start, mask=~c.has | np.isnan(c.met))
    nxt = _next_change(table, clocks, done, wa, pol, settings, now)
    cols["next_change"] = pa.array(nxt, mask=np.isinf(nxt))
    cols["computed"] = pa.array(np.full(n, now))
    cols["rev"] = pa.array(np.zeros(n, np.int64))  # set when saved (tix.sla.state)
    if report is not None:
        _count(report, clocks, done)
    return pa.Table.from_pydict(cols, schema=schema()), numbers, done, wa, pol, clocks


EARLY = 1.0  # seconds: a row is due this much before its clocks change (rounding never makes it late)


def _next_change(table, clocks: dict, done, wa, pol, settings: SlaSettings, now: float) -> np.ndarray:
    """When each row, with no new event, next changes: the earliest warning or breach of a running
    clock (tix.sla.clock.Clocks.next), or the warning of a WhatsApp window; +inf when nothing
    changes until an event comes. The key of the due-time index (tix.sla.state)."""
    from tix.sla.clock import _f64

    nxt = np.full(len(done), np.inf)
    for c in clocks.values():
        nxt = np.minimum(nxt, c.next)
    if len(done):
        awaiting = table["awaiting"].to_numpy(zero_copy_only=False)
        close = _f64(table, "last_customer") + settings.window
        warn_at = close - settings.sla.window_warning
        live = wa & awaiting & ~done & (pol >= 0)
        nxt = np.where(live & (warn_at > now), np.minimum(nxt, warn_at), nxt)
        # inside the warning period, whether it warns depends on the reply's due time, which
        # moves while a clock is paused: such a row is computed again every run until it closes
        paused = np.zeros(len(done), bool)
        for c in clocks.values():
            paused |= c.paused
        nxt = np.where(live & paused & (warn_at <= now) & (now < close), np.minimum(nxt, now), nxt)
    return nxt - EARLY


def _count(report: EscalateReport, clocks: dict, done: np.ndarray) -> None:
    """Add the clocks of these rows to the report: how many, and the open tickets' by state."""
    for c in clocks.values():
        report.clocks += int(c.has.sum())
        vals, counts = np.unique(c.state[c.has & ~done].astype(str), return_counts=True)
        report.states.update(dict(zip(vals.tolist(), counts.tolist(), strict=True)))


def _recompute(store, prev: dict, written: list[dict], settings: SlaSettings, now: float,
               report: EscalateReport | None) -> dict:
    """A round after the first (see `_settle`): the rows of the open tickets the round before
    saved (its live part), with those of the tickets it wrote events for computed again (their
    keys changed, and a step may have moved them to another policy). The same context as
    `_compute` on the saved state would give, for the cost of the tickets written to."""
    import dataclasses

    import pyarrow as pa

    from tix.sla.state import TRACK_FIELDS

    keep = np.nonzero(~prev["done"])[0]  # what the live part holds; done rows went to a done part
    table = prev["table"].take(pa.array(keep))
    numbers, done = prev["numbers"][keep], prev["done"][keep].copy()
    wa, pol = prev["wa"][keep].copy(), prev["pol"][keep].copy()
    clocks = {t: dataclasses.replace(c, **{f.name: getattr(c, f.name)[keep].copy()
                                           for f in dataclasses.fields(c) if f.name != "target"})
              for t, c in prev["clocks"].items()}
    changed = np.array(sorted({ev["ticket"] for ev in written if ev.get("ticket") is not None}), np.int64)
    at = np.searchsorted(numbers, changed)
    ok = at < len(numbers)
    ok[ok] = numbers[at[ok]] == changed[ok]
    rows = at[ok]
    con = store.read().connect(only=USES)
    if len(rows):
        q = _policy_rows(con, settings.sla, numbers[rows].tolist(), only=True)
        sub = table.take(pa.array(rows)).select(TRACK_FIELDS)
        out, _numbers, s_done, s_wa, s_pol, s_clocks = _clock_rows(sub, q, settings, now, None)
        index = np.arange(table.num_rows)
        index[rows] = table.num_rows + np.arange(len(rows))
        table = pa.concat_tables([table, out]).take(pa.array(index))
        done[rows], wa[rows], pol[rows] = s_done, s_wa, s_pol
        for t, c in clocks.items():
            for f in dataclasses.fields(c):
                if f.name != "target":
                    getattr(c, f.name)[rows] = getattr(s_clocks[t], f.name)
    rest, rest_next = prev["st"].rest(numbers)
    if report is not None:
        _count(report, clocks, done)
        report.open_tickets = int((~done).sum())
        report.computed = len(rows)
        _count_rest(report, rest)
    return {"con": con, "table": table, "numbers": numbers, "done": done, "wa": wa, "pol": pol,
            "clocks": clocks, "eligible": ~done & np.isin(numbers, changed),
            "write_done": np.zeros(len(numbers), bool), "policies": settings.sla.policies, "st": prev["st"],
            "rest_next": rest_next}


def next_due(ctx: dict, settings: SlaSettings, now: float) -> str | None:
    """The earliest time after `now` at which, with no new event, a clock could reach its
    warning or its breach, or a WhatsApp window its warning: what an idle run waits for.

    The earliest `next_change` (tix.sla.state: the due-time index) of the rows this run
    computed and of the saved rows it left as they were. None: nothing ever comes due.
    """
    from tix.sla.clock import _f64

    nxt = _f64(ctx["table"], "next_change")
    nxt = nxt[~ctx["done"] & ~np.isnan(nxt)]
    # a row computed now whose change is less than EARLY away is due in the index already; its
    # change itself is still ahead (a run at this very instant, as a fixed clock repeats, would
    # compute it again and find the same: it never let a run be idle)
    nxt = np.where(nxt <= now, nxt + EARLY, nxt)
    best = min(float(nxt.min()) if len(nxt) else np.inf, ctx.get("rest_next", np.inf))
    return None if best == np.inf else iso(_dt(max(best, now)))


def _recorded(table, target: str, cycle: np.ndarray, breach_keys) -> np.ndarray:
    """Rows whose `TICKET:target:CYCLE:breached` key was recorded (string work done in Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(breach_keys) == 0:
        return np.zeros(table.num_rows, bool)
    expected = pc.binary_join_element_wise(pc.cast(table["ticket"], pa.string()), pa.scalar(target),
                                           pc.cast(pa.array(cycle), pa.string()), pa.scalar("breached"), ":")
    return pc.is_in(expected, value_set=breach_keys).to_numpy(zero_copy_only=False)


def _breach_keys(table):
    import pyarrow.compute as pc

    flat = pc.list_flatten(table["keys"].combine_chunks())
    return pc.unique(flat.filter(pc.ends_with(flat, ":breached")))


# -- planning -------------------------------------------------------------------------------------
def _plan(ctx: dict, settings: SlaSettings, now: float, report: EscalateReport) -> None:
    numbers, policies, eligible = ctx["numbers"], ctx["policies"], ctx["eligible"]
    keys_col = ctx["table"]["keys"]
    import pyarrow.compute as pc

    all_keys = pc.unique(pc.list_flatten(keys_col.combine_chunks()))
    cands = {target: np.nonzero(c.has & eligible & ((c.state == "warning") | (c.state == "breached")
                                                    | c.breached))[0]
             for target, c in ctx["clocks"].items()}
    cands = _since_start(ctx, cands, settings, now, report)
    new = _anything_new(ctx, cands, all_keys)
    for target, c in ctx["clocks"].items():
        cand = cands[target][new[target]]
        if not len(cand):
            continue
        keys = keys_col.take(cand).to_pylist()
        for row, ks in zip(cand.tolist(), keys, strict=True):
            pol = policies[ctx["pol"][row]]
            _plan_clock(report, int(numbers[row]), set(ks or ()), pol, target, int(c.cycle[row]), c.state[row],
                        bool(c.breached[row]), bool(ctx["done"][row]), float(c.due[row]), float(c.used[row]),
                        float(c.target_s[row]))
    _plan_window(ctx, settings, now, report)
    for p in report.planned:  # side effects only on what is recent (DESIGN invariant 9)
        p.history = p.step is not None and bool(p.step.email or p.step.webhook) and p.state == "breached" \
            and p.due is not None and p.due < now - settings.act_within


def _since_start(ctx, cands: dict[str, np.ndarray], settings: SlaSettings, now: float,
                 report: EscalateReport) -> dict[str, np.ndarray]:
    """Per target, the candidate rows whose clock came due since the watch started (ctx
    "start"): a breach (its record and the `breached` steps) due at or after it, a warning
    reached at or after it. SLA is not retroactive: what came due before is never acted on
    (the `sla` view still shows it). On the first run (ctx "count_before") the rest is counted
    into `report.before_start` for the `sla.started` event."""
    start = ctx.get("start", -np.inf)
    out = {}
    for target, rows in cands.items():
        c = ctx["clocks"][target]
        due = c.due[rows]
        warning = c.state[rows] == "warning"
        moment = due.copy()
        if warning.any():
            moment[warning] = _warned_at(ctx, c, rows[warning], settings, now)
        before = moment < start
        if ctx.get("count_before") and before.any():
            _count_before(ctx, report, c, rows[before], target)
        out[target] = rows[~before]
    return out


def _warned_at(ctx, c, rows: np.ndarray, settings: SlaSettings, now: float) -> np.ndarray:
    """When these running clocks (in their warning) reached it: `warn_at` x target less the
    business time used, counted back from now on the policy's calendar (a clock paused and
    resumed since then gets a later time: its warning step is then taken, as before)."""
    out = np.full(len(rows), -np.inf)
    pol = ctx["pol"][rows]
    for i, policy in enumerate(ctx["policies"]):
        sel = np.nonzero(pol == i)[0]
        if not len(sel):
            continue
        cal = settings.calendars[policy.calendar]
        over = c.used[rows[sel]] - policy.warn_at * c.target_s[rows[sel]]
        out[sel] = cal.Cinv(cal.C(np.full(len(sel), now)) - np.maximum(over, 0.0))
    return out


def _count_before(ctx, report: EscalateReport, c, rows: np.ndarray, target: str) -> None:
    """Add to `report.before_start` what these rows' clocks would have had done (first run)."""
    pol, state, live = ctx["pol"][rows], c.state[rows], ~ctx["done"][rows]
    for i, policy in enumerate(ctx["policies"]):
        mine = pol == i
        if not mine.any():
            continue
        entry = report.before_start.setdefault(policy.name, {"breaches": 0, "steps": {}})
        entry["breaches"] += int((mine & c.breached[rows]).sum())
        for step in policy.steps:
            if step.on in ("warning", "breached") and target in step.targets:
                n = int((mine & (state == step.on) & live).sum())
                if n:
                    entry["steps"][step.name] = entry["steps"].get(step.name, 0) + n


def _anything_new(ctx, cands: dict[str, np.ndarray], all_keys) -> dict[str, np.ndarray]:
    """Per target, for its candidate rows, whether any key _plan_clock could want is not
    recorded yet.

    Most candidates of a run are clocks breached long ago whose steps were all taken; this
    vectorised check keeps them out of the loop: the keys each candidate could want (breach,
    and each step of its policy in its state) are built in Arrow and looked up in one `is_in`
    (each call builds a hash of every recorded key: one call, not one per target and step).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {target: np.ones(len(rows), bool) if len(all_keys) == 0 else np.zeros(len(rows), bool)
           for target, rows in cands.items()}
    if len(all_keys) == 0:
        return out
    wanted, where = [], []  # key arrays, and (target, candidate indices) each belongs to
    for target, rows in cands.items():
        if not len(rows):
            continue
        c = ctx["clocks"][target]
        state, pol, live = c.state[rows], ctx["pol"][rows], ~ctx["done"][rows]
        asks = [("breached", c.breached[rows])]
        for i, policy in enumerate(ctx["policies"]):
            for step in policy.steps:
                if step.on in ("warning", "breached") and target in step.targets:
                    asks.append((step.name, (pol == i) & (state == step.on) & live))
        for suffix, mask in asks:
            idx = np.nonzero(mask)[0]
            if not len(idx):
                continue
            sel = rows[idx]
            wanted.append(pc.binary_join_element_wise(
                pc.cast(pa.array(ctx["numbers"][sel]), pa.string()), pa.scalar(target),
                pc.cast(pa.array(c.cycle[sel]), pa.string()), pa.scalar(suffix), ":"))
            where.append((target, idx))
    if not wanted:
        return out
    found = pc.is_in(pa.concat_arrays(wanted), value_set=all_keys).to_numpy(zero_copy_only=False)
    at = 0
    for target, idx in where:
        out[target][idx[~found[at:at + len(idx)]]] = True
        at += len(idx)
    return out


def _plan_clock(report, ticket, keys, pol, target, cycle, state, breached, done, due, used, target_s) -> None:
    base = f"{ticket}:{target}:{cycle}"
    if breached and f"{base}:breached" not in keys:
        report.planned.append(Planned(ticket, pol.name, target, cycle, "breached", f"{base}:breached",
                                      None, due, used, target_s))
    if state not in ("warning", "breached") or done:
        return
    for step in pol.steps:
        if step.on != state or target not in step.targets:
            continue
        key = f"{base}:{step.name}"
        if key not in keys:
            report.planned.append(Planned(ticket, pol.name, target, cycle, state, key, step, due, used, target_s))


def _plan_window(ctx, settings, now, report) -> None:
    """WhatsApp: warn when the 24 h window closes before the reply is due, within the lead time."""
    from tix.sla.clock import _f64

    table, lead = ctx["table"], settings.sla.window_warning
    fr, nr = ctx["clocks"]["first_response"], ctx["clocks"]["next_response"]
    due = np.where(nr.has & np.isnan(nr.met), nr.due, np.where(fr.has & np.isnan(fr.met), fr.due, np.nan))
    awaiting = table["awaiting"].to_numpy(zero_copy_only=False)
    close = _f64(table, "last_customer") + settings.window
    cand = np.nonzero(ctx["wa"] & ~ctx["done"] & awaiting & (ctx["pol"] >= 0) & (close < due)
                      & (close - lead <= now) & (now < close))[0]
    if len(cand) and "start" in ctx:  # a warning due before the watch started is never given (_since_start)
        before = close[cand] - lead < ctx["start"]
        if ctx.get("count_before"):
            for row in cand[before].tolist():
                pol = ctx["policies"][ctx["pol"][row]]
                entry = report.before_start.setdefault(pol.name, {"breaches": 0, "steps": {}})
                for step in pol.steps:
                    if step.on == "whatsapp_window":
                        entry["steps"][step.name] = entry["steps"].get(step.name, 0) + 1
        cand = cand[~before]
    if not len(cand):
        return
    keys = table["keys"].take(cand).to_pylist()
    for row, ks in zip(cand.tolist(), keys, strict=True):
        pol = ctx["policies"][ctx["pol"][row]]
        ticket, cycle = int(ctx["numbers"][row]), int(close[row] - settings.window)
        for step in pol.steps:
            key = f"{ticket}:whatsapp_window:{cycle}:{step.name}"
            if step.on == "whatsapp_window" and key not in (ks or ()):
                report.planned.append(Planned(ticket, pol.name, "whatsapp_window", cycle, "warning", key, step,
                                              float(due[row]), window_close=float(close[row]),
                                              window_in=float(close[row] - now)))


# -- acting ------------------------------------------------------------------------------------------
# What a step that notifies nobody reads of its ticket's row (raise_priority, set_fields, tag);
# the template of a notification gets the whole row.
STEP_COLUMNS = ("number", "status", "priority", "team", "assignee", "tags")


def _ticket_rows(con, numbers: list[int], columns: tuple[str, ...] | None = None) -> dict[int, dict]:
    """Rows of the tickets `numbers` (of `columns` only, `number` first; default all)."""
    if not numbers:
        return {}
    cols = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
    cur = con.execute(f"SELECT {cols} FROM tickets WHERE number IN (SELECT unnest(?::BIGINT[]))", [numbers])
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


# Events a policy's batch encodes and writes at once before the rest (`Batch.flush(commit=False)`):
# a first run writes ~250k for one policy, and encoding them in one piece (each line, the
# joined batch, the copy that adds the commit mark) was the run's peak memory (~1 GB).
ACT_PART = 20_000


def _notifies(p: Planned) -> bool:
    return p.step is not None and bool(p.step.email or p.step.webhook) and not p.history


def _act(store, ctx, settings: SlaSettings, report: EscalateReport) -> list[dict]:
    if not report.planned:
        return []
    # the whole row only for the tickets a notification is made for (most steps tag or raise a
    # priority: reading every column of 100k+ rows was a second of the first run, issue 16)
    full = sorted({p.ticket for p in report.planned if _notifies(p)})
    rows = _ticket_rows(ctx["con"], sorted({p.ticket for p in report.planned} - set(full)), STEP_COLUMNS)
    rows.update(_ticket_rows(ctx["con"], full))
    written: list[dict] = []
    by_policy: dict[str, list[Planned]] = {}
    for p in report.planned:
        by_policy.setdefault(p.policy, []).append(p)
    renderer = _Renderer(store, settings.tz, settings.agents)
    from tix.outbox import OutboxIndex

    box = OutboxIndex.load(store) if full else None  # one index for all batches, saved below
    due_at = _due_at(report.planned)
    memo: dict = {}
    for policy, items in by_policy.items():
        with store.writing(actor=f"sla:{policy}", via="tix escalate") as batch:
            for p in items:
                row = rows.get(p.ticket)
                if row is None:
                    continue
                error = _do(batch, p, row, renderer, box, due_at, memo)
                if error:
                    report.errors.append(f"ticket #{p.ticket}, SLA step {p.key}: {error}")
                if len(batch.pending) >= ACT_PART:
                    batch.flush(commit=False)  # a part of the batch; the block's end commits them all
        written += batch.written
        if box is not None:
            box.advance()  # this batch's keys, for the next policy's batch
    if box is not None:
        box.save()
    return written


def _due_at(planned: list[Planned]) -> dict[int, str]:
    """`due_at` of each breach to record (by id of its Planned), formatted in one go (iso_many)."""
    from tix.store.log import iso_many

    todo = [p for p in planned if p.step is None and p.due and np.isfinite(p.due)]  # else as _do did
    return dict(zip(map(id, todo), iso_many(np.array([p.due for p in todo], np.float64)), strict=True))


def _do(batch, p: Planned, row: dict, renderer, box=None, due_at: dict | None = None,
        memo: dict | None = None) -> str | None:
    """Take one planned step in `batch`; returns why its notifications could not be made, if so.
    `due_at`: breach times already formatted (`_due_at`); `memo`: per step, what every ticket's
    event of it shares (kept by the caller across calls)."""
    if p.step is None:
        due = (due_at or {}).get(id(p)) or (iso(datetime.fromtimestamp(p.due, timezone.utc)) if p.due else None)
        batch.emit("sla.breached", ticket=p.ticket, data={
            "policy": p.policy, "target": p.target, "cycle": p.cycle, "key": p.key,
            "due_at": due, "business_seconds": round(p.target_s)})
        return None
    step = p.step
    if memo is None:
        memo = {}
    actions = memo.get(id(step))
    if actions is None:
        actions = memo[id(step)] = step.describe()
    batch.emit("sla.step", ticket=p.ticket, data={"policy": p.policy, "target": p.target, "state": p.state,
                                                  "step": step.name, "key": p.key, "cycle": p.cycle,
                                                  "actions": actions,
                                                  **({"history": True} if p.history else {})})
    why = f"SLA {p.policy}: {TARGET_LABEL[p.target]} {p.state}"
    changes = {}
    if step.raise_priority and row.get("priority") in PRIORITY_RANK:
        changes["priority"] = PRIORITIES[min(PRIORITY_RANK[row["priority"]] + 1, len(PRIORITIES) - 1)]
    if step.priority:
        changes["priority"] = step.priority
    if step.team:
        changes["team"] = step.team
    if step.assignee:
        changes["assignee"] = step.assignee
    if changes:
        tickets.set_fields(batch, row, changes, why=why)
    if step.tags:
        tickets.tag(batch, row, add=step.tags, why=why)
    if (step.email or step.webhook) and not p.history:  # history: recorded once, nobody notified
        return _notify(batch, p, row, renderer, box)
    return None


def _notify(batch, p: Planned, row: dict, renderer, box) -> str | None:
    from tix.outbox import notify

    step, error = p.step, None
    try:
        subject, body = renderer.render(p, row)
    except Exception as exc:  # noqa: BLE001 - a site template that raises fails its notifications, not the run
        from tix.errors import TixError

        subject, body = f"[#{p.ticket}] SLA {p.state}", ""
        why = exc if isinstance(exc, TixError) else f"template {renderer.template_name(p)}: {type(exc).__name__}: {exc}"
        error = f"cannot make the notification: {why}"
    for addr in step.email:
        to = renderer.address(addr, row)
        if to:
            notify(batch, "email", to, subject, body, key=f"{p.key}:email:{addr}", ticket=p.ticket, index=box,
                   error=error)
    if step.webhook:
        payload = {"slack": step.slack, "ticket": p.ticket, "policy": p.policy, "target": p.target,
                   "state": p.state, "step": step.name}
        notify(batch, "webhook", step.webhook, subject, body, payload=payload, key=f"{p.key}:webhook",
               ticket=p.ticket, index=box, error=error)
    return error


class _Renderer:
    """SLA notification texts from `templates/sla_<state>.j2` (the store's copy first)."""

    def __init__(self, store, tz: str, agents: dict | None = None):
        from tix.templates import environment

        self.tz = tz
        self.agents = agents or {}
        self.env = environment(store)

    def address(self, addr: str, row: dict) -> str | None:
        """`assignee` -> the ticket's agent's email (None when unassigned or without one)."""
        if addr != "assignee":
            return addr
        agent = self.agents.get(row.get("assignee") or "")
        return agent.email if agent is not None and agent.email else None

    @staticmethod
    def template_name(p: Planned) -> str:
        return "sla_whatsapp_window.j2" if p.target == "whatsapp_window" else f"sla_{p.state}.j2"

    def render(self, p: Planned, row: dict) -> tuple[str, str]:
        """(subject, body); a template that fails raises TemplateFailed (`templates/NAME:LINE: …`)."""
        from tix.render import local
        from tix.templates import TemplateMissing, render, with_fields

        name = self.template_name(p)
        fmt = "%Y-%m-%d %H:%M %Z"
        ctx = {"ticket": with_fields(row), "number": p.ticket, "policy": p.policy, "target": p.target,
               "target_label": TARGET_LABEL[p.target], "state": p.state, "step": p.step.name,
               "due": local(_dt(p.due), self.tz, fmt) if p.due else "",
               "used": format_duration(p.used), "goal": format_duration(p.target_s),
               "left": format_duration(p.target_s - p.used),
               "window_closes": local(_dt(p.window_close), self.tz, fmt) if p.window_close else "",
               "window_in": format_duration(p.window_in), "timezone": self.tz}
        try:
            text = render(self.env, name, ctx)
        except TemplateMissing:
            text = (f"Subject: [#{p.ticket}] SLA {p.state}: {ctx['target_label']}\n\n"
                    f"Ticket #{p.ticket} ({row.get('subject')}): {ctx['target_label']} is {p.state} "
                    f"under policy {p.policy}; due {ctx['due']}.\n")
        return _split_subject(text, f"[#{p.ticket}] SLA {p.state}")


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def _split_subject(text: str, default: str) -> tuple[str, str]:
    lines = text.lstrip("\n").split("\n")
    if lines and lines[0].lower().startswith("subject:"):
        subject = lines[0].split(":", 1)[1].strip()
        body = "\n".join(lines[1:]).lstrip("\n")
        return subject, body
    return default, text
