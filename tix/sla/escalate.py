"""`tix escalate`: compute every open ticket's SLA clocks and run the escalation steps due.

The run, in order (the store lock is held from 2 to 6, never while sending):

1. Load and validate `calendars:` and `sla:` (every problem at once, `file:line`; nothing runs).
2. Load the persisted clock tracks and fold the log tail into them (`tix.sla.state`).
3. Match each open ticket to its policy (one SQL query over `tickets` + `contacts`).
4. Compute all clocks with numpy (`tix.sla.clock`): used, due, state.
5. Plan: a `sla.breached` event for each clock that breached and was not recorded yet, and
   each configured step whose clock is in the step's state (`warning`, `breached`) or whose
   WhatsApp window is about to close, unless its key (ticket:target:cycle:step) was recorded.
6. Act (unless dry run): per policy one batch with actor `sla:POLICY`: the `sla.step` event,
   field changes (`tix.tickets.set_fields` / `tag`), notifications queued in the outbox.
   Then save the tracks and the `sla` rows (Parquet) with the log position they reflect.
7. Flush the outbox (send email / webhooks; failures are kept and retried next run).

A policy change in tix.yaml applies from the next run on (policies are matched every run);
breaches already recorded stay recorded (`sla.breached` events, and `breached` in the view).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tix import config as configmod
from tix.errors import ConfigError
from tix.model import OPEN_STATUSES, PRIORITIES, PRIORITY_RANK
from tix.sla.calendar import Calendar, format_duration, parse_calendars
from tix.sla.clock import DONE, compute
from tix.sla.policy import TARGETS, SlaConfig, parse_sla, policy_case_sql
from tix.store.log import iso

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

    def describe(self) -> str:
        if self.step is None:
            return "record breach"
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
    notify: object | None = None  # tix.notify.FlushReport
    timings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.notify is None or self.notify.ok


# -- settings -----------------------------------------------------------------------------------
@dataclass
class SlaSettings:
    sla: SlaConfig
    calendars: dict  # name -> Calendar; None -> 24/7 in the site zone
    tz: str


def load_settings(store) -> SlaSettings:
    """Validate the whole tix.yaml (like `tix config check`); raise ConfigError on any problem."""
    path = store.root / configmod.CONFIG_NAME
    cfg = configmod.load(path, validate_sections=True)
    store._config = cfg
    tz = cfg.setting("timezone")
    specs, problems = parse_calendars(cfg.raw.get("calendars"), str(path), tz)
    sla, more = parse_sla(cfg.raw.get("sla"), str(path), specs, cfg.teams, cfg.agents)
    if problems or more:
        raise ConfigError(problems + more)
    cals: dict = {name: Calendar(spec) for name, spec in specs.items()}
    cals[None] = Calendar.always("24/7", tz)
    return SlaSettings(sla, cals, tz)


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
    Raises ConfigError (exit 2, nothing done) on any problem in calendars/sla.
    """
    from tix.sla.state import SlaState

    now = now or datetime.now(timezone.utc)
    report = EscalateReport(now, dry_run=dry_run)
    clock = time.perf_counter()
    settings = load_settings(store)
    lock = None if dry_run else store.lock()
    if lock is not None:
        lock.acquire()
    try:
        st = SlaState.load(store, rebuild=rebuild)
        report.cold = st.cold
        report.timings["load"] = time.perf_counter() - clock
        ctx = _compute(store, st, settings, now.timestamp(), report)
        report.timings["compute"] = time.perf_counter() - clock
        _plan(ctx, settings, now.timestamp(), report)
        if not dry_run:
            written = _act(store, ctx, settings, report)
            report.events_written = len(written)
            st.fold_written(written)
            if written:  # the recorded steps/breaches added keys to tracks: refresh those columns
                ctx["table"] = _refresh_columns(ctx["table"], ctx["tracks"], ("keys", "gen"))
            st.save(ctx["table"], ctx["done_mask"])
            store.maybe_refresh_snapshot()
        report.timings["act"] = time.perf_counter() - clock
    finally:
        if lock is not None:
            lock.release()
    if flush_outbox and not dry_run:
        from tix import notify

        report.notify = notify.flush(store, now)
    report.timings["total"] = time.perf_counter() - clock
    return report


def _policy_rows(con, sla: SlaConfig, numbers: list[int] | None) -> dict[int, tuple]:
    """ticket -> (policy index, channel, status) for open tickets and `numbers` (or all if None)."""
    case, params = policy_case_sql(sla.policies)
    where = ""
    if numbers is not None:
        where = "WHERE t.status IN ('new', 'open', 'pending') OR t.number IN (SELECT unnest(?::BIGINT[]))"
        params = [*params, numbers]
    sql = (f"SELECT t.number, {case} AS pol, t.channel, t.status FROM tickets t "
           f"LEFT JOIN contacts c ON c.id = t.contact {where}")
    tbl = con.sql(sql, params=params).to_arrow_table()
    nums = tbl["number"].to_numpy()
    pols = tbl["pol"].to_numpy()
    chans = tbl["channel"].to_pylist()
    stats = tbl["status"].to_pylist()
    return {int(n): (int(p), c, s) for n, p, c, s in zip(nums, pols, chans, stats)}


def _compute(store, st, settings: SlaSettings, now: float, report: EscalateReport | None,
             con=None, pol_rows=None) -> dict:
    """Clocks of every open (and every touched) ticket; the Parquet table of their rows."""
    import pyarrow as pa

    from tix.sla.state import PREFIX, TRACK_FIELDS, schema

    if con is None:
        con = store.read().connect()
    if pol_rows is None:
        pol_rows = _policy_rows(con, settings.sla, None if st.cold else sorted(st.touched))
    names = [p.name for p in settings.sla.policies]
    tracks = [tr for n, tr in st.tracks.items()
              if tr.status not in DONE or n in st.touched or st.cold]
    tracks.sort(key=lambda tr: tr.ticket)
    live = [tr for tr in tracks if tr.status not in DONE]
    for tr in live:  # a policy change applies from now on: re-match open tickets every run
        row = pol_rows.get(tr.ticket)
        tr.policy = names[row[0]] if row and row[0] >= 0 else None
    for tr in tracks:
        if tr.policy is None and tr.ticket in pol_rows and pol_rows[tr.ticket][0] >= 0:
            tr.policy = names[pol_rows[tr.ticket][0]]
    policy_of = {tr.ticket: tr.policy for tr in tracks}
    policies = {p.name: p for p in settings.sla.policies}
    pos = {tr.ticket: i for i, tr in enumerate(tracks)}
    n = len(tracks)
    cols: dict = {name: [getattr(tr, name) for tr in tracks] for name in TRACK_FIELDS}
    by_target: dict = {}
    for target, p in PREFIX.items():
        groups = compute(tracks, target, policy_of, policies, settings.calendars, now)
        by_target[target] = groups
        arr = {k: np.full(n, np.nan) for k in ("started", "due", "met", "bsec", "csec")}
        cyc = np.zeros(n, np.int64)
        has = np.zeros(n, bool)
        state = np.full(n, None, dtype=object)
        breached = np.zeros(n, bool)
        for clocks in groups.values():
            idx = np.fromiter((pos[int(t)] for t in clocks.ticket), np.int64, len(clocks.ticket))
            has[idx] = True
            arr["started"][idx] = clocks.start
            arr["due"][idx] = clocks.due
            arr["met"][idx] = clocks.met
            arr["bsec"][idx] = clocks.used
            arr["csec"][idx] = np.where(np.isnan(clocks.met), np.nan, clocks.met - clocks.start)
            cyc[idx] = clocks.cycle
            state[idx] = clocks.state
            recorded = np.fromiter((f"{int(t)}:{target}:{int(c)}:breached" in tracks[i].keys
                                    for t, c, i in zip(clocks.ticket, clocks.cycle, idx)), bool, len(idx))
            breached[idx] = clocks.breached | recorded
            if report is not None:
                report.clocks += len(idx)
                report.states.update(s for s, i in zip(clocks.state, idx) if tracks[i].status not in DONE)
        cols[f"{p}_cycle"] = pa.array(cyc, mask=~has)
        for k in ("started", "due", "met", "bsec", "csec"):
            cols[f"{p}_{k}"] = pa.array(arr[k], mask=np.isnan(arr[k]))
        cols[f"{p}_state"] = pa.array(state.tolist(), pa.string())
        cols[f"{p}_breached"] = pa.array(breached, mask=~has)
    table = pa.Table.from_pydict(cols, schema=schema())
    done_mask = [tr.status in DONE for tr in tracks]
    if report is not None:
        report.open_tickets = len(live)
    return {"con": con, "pol_rows": pol_rows, "tracks": tracks, "pos": pos, "by_target": by_target,
            "table": table, "done_mask": done_mask, "policies": policies, "cold": st.cold,
            "touched": st.touched}


def _refresh_columns(table, tracks, names):
    import pyarrow as pa

    for name in names:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array([getattr(tr, name) for tr in tracks],
                                                                    table.schema.field(i).type))
    return table


# -- planning -------------------------------------------------------------------------------------
def _plan(ctx: dict, settings: SlaSettings, now: float, report: EscalateReport) -> None:
    tracks, pos, policies = ctx["tracks"], ctx["pos"], ctx["policies"]
    response_due: dict[int, float] = {}
    for target, groups in ctx["by_target"].items():
        for clocks in groups.values():
            st = np.asarray(clocks.state, dtype=object)
            cand = np.nonzero((st == "warning") | (st == "breached") | clocks.breached)[0]
            if target != "resolution":
                running = np.nonzero(np.isnan(clocks.met))[0]
                for i in running:
                    response_due[int(clocks.ticket[i])] = float(clocks.due[i])
            for i in cand:
                t = int(clocks.ticket[i])
                tr = tracks[pos[t]]
                if tr.status in DONE and not (t in ctx["touched"] and not ctx["cold"]):
                    continue
                _plan_clock(report, tr, policies[clocks.policy[i]], target, int(clocks.cycle[i]), clocks.state[i],
                            bool(clocks.breached[i]), float(clocks.due[i]), float(clocks.used[i]),
                            float(clocks.target_s[i]))
    _plan_window(ctx, settings, now, report, response_due)


def _plan_clock(report, tr, pol, target, cycle, state, breached, due, used, target_s) -> None:
    base = f"{tr.ticket}:{target}:{cycle}"
    if breached and f"{base}:breached" not in tr.keys:
        report.planned.append(Planned(tr.ticket, pol.name, target, cycle, "breached", f"{base}:breached",
                                      None, due, used, target_s))
    if state not in ("warning", "breached") or tr.status in DONE:
        return
    for step in pol.steps:
        if step.on != state or target not in step.targets:
            continue
        key = f"{base}:{step.name}"
        if key not in tr.keys:
            report.planned.append(Planned(tr.ticket, pol.name, target, cycle, state, key, step, due, used, target_s))


def _plan_window(ctx, settings, now, report, response_due) -> None:
    """WhatsApp: warn when the 24 h window closes before the reply is due, within the lead time."""
    lead = settings.sla.window_warning
    pol_rows = ctx["pol_rows"]
    for tr in ctx["tracks"]:
        if tr.status in DONE or not tr.awaiting or tr.last_customer is None or tr.policy is None:
            continue
        row = pol_rows.get(tr.ticket)
        if not row or row[1] != "whatsapp":
            continue
        close = tr.last_customer + WINDOW
        due = response_due.get(tr.ticket)
        if due is None or close >= due or not (close - lead <= now < close):
            continue
        pol = ctx["policies"][tr.policy]
        cycle = int(tr.last_customer)
        for step in pol.steps:
            if step.on != "whatsapp_window":
                continue
            key = f"{tr.ticket}:whatsapp_window:{cycle}:{step.name}"
            if key not in tr.keys:
                report.planned.append(Planned(tr.ticket, pol.name, "whatsapp_window", cycle, "warning", key,
                                              step, due, window_close=close, window_in=close - now))


# -- acting ------------------------------------------------------------------------------------------
def _ticket_rows(con, numbers: list[int]) -> dict[int, dict]:
    if not numbers:
        return {}
    cur = con.execute("SELECT * FROM tickets WHERE number IN (SELECT unnest(?::BIGINT[]))", [numbers])
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def _act(store, ctx, settings: SlaSettings, report: EscalateReport) -> list[dict]:
    if not report.planned:
        return []
    rows = _ticket_rows(ctx["con"], sorted({p.ticket for p in report.planned}))
    written: list[dict] = []
    by_policy: dict[str, list[Planned]] = {}
    for p in report.planned:
        by_policy.setdefault(p.policy, []).append(p)
    renderer = _Renderer(store, settings.tz)
    for policy, items in by_policy.items():
        with store.writing(actor=f"sla:{policy}", via="tix escalate") as batch:
            for p in items:
                row = rows.get(p.ticket)
                if row is None:
                    continue
                _do(batch, p, row, renderer)
        written += batch.written
    return written


def _do(batch, p: Planned, row: dict, renderer) -> None:
    from tix import notify, tickets

    if p.step is None:
        batch.emit("sla.breached", ticket=p.ticket, data={
            "policy": p.policy, "target": p.target, "cycle": p.cycle, "key": p.key,
            "due_at": iso(datetime.fromtimestamp(p.due, timezone.utc)) if p.due else None,
            "business_seconds": round(p.target_s)})
        return
    step = p.step
    batch.emit("sla.step", ticket=p.ticket, data={"policy": p.policy, "target": p.target, "state": p.state,
                                                  "step": step.name, "key": p.key, "cycle": p.cycle,
                                                  "actions": step.describe()})
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
    if step.email or step.webhook:
        subject, body = renderer.render(p, row)
        for addr in step.email:
            notify.queue(batch, "email", addr, subject, body, key=f"{p.key}:email:{addr}")
        if step.webhook:
            payload = {"slack": step.slack, "ticket": p.ticket, "policy": p.policy, "target": p.target,
                       "state": p.state, "step": step.name}
            notify.queue(batch, "webhook", step.webhook, subject, body, payload=payload, key=f"{p.key}:webhook")


class _Renderer:
    """SLA notification texts from `templates/sla_<state>.j2` (the store's copy first)."""

    def __init__(self, store, tz: str):
        import jinja2

        from tix.store import examples_dir

        self.tz = tz
        dirs = [str(store.path("templates")), str(examples_dir() / "templates")]
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), autoescape=False,
                                      keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)

    def render(self, p: Planned, row: dict) -> tuple[str, str]:
        import jinja2

        from tix.render import local

        name = "sla_whatsapp_window.j2" if p.target == "whatsapp_window" else f"sla_{p.state}.j2"
        fmt = "%Y-%m-%d %H:%M %Z"
        ctx = {"ticket": row, "number": p.ticket, "policy": p.policy, "target": p.target,
               "target_label": TARGET_LABEL[p.target], "state": p.state, "step": p.step.name,
               "due": local(_dt(p.due), self.tz, fmt) if p.due else "",
               "used": format_duration(p.used), "goal": format_duration(p.target_s),
               "left": format_duration(p.target_s - p.used),
               "window_closes": local(_dt(p.window_close), self.tz, fmt) if p.window_close else "",
               "window_in": format_duration(p.window_in), "timezone": self.tz}
        try:
            text = self.env.get_template(name).render(**ctx)
        except jinja2.TemplateNotFound:
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


def open_statuses() -> tuple[str, ...]:
    return OPEN_STATUSES


__all__ = ["escalate", "EscalateReport", "load_settings", "TARGETS"]
