"""`tix sla N`: every clock of one ticket, with the arithmetic shown so a lead can check it.

For each target: the policy and calendar, start, due time in local time, business time used
and left, each counted interval (opening hours the clock ran in) and each paused interval
(pending or resolved), and the calendar days skipped as holidays or site dates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tix.errors import NotFound
from tix.durations import format_duration
from tix.sla.clock import DONE, Track, clock_inputs, fold_event, used_and_due
from tix.sla.policy import TARGETS, policy_case_sql
from tix.store.log import utcnow


@dataclass
class ClockExplained:
    target: str
    policy: str
    calendar: str
    cycle: int
    goal: float
    start: float
    met: float | None
    due: float
    used: float
    state: str
    counted: list = field(default_factory=list)  # (start, end, business seconds)
    paused: list = field(default_factory=list)  # (start, end, business seconds in it)
    skipped: list = field(default_factory=list)  # (date, why)


@dataclass
class Explanation:
    ticket: int
    status: str
    policy: str | None
    tz: str
    now: float
    clocks: list[ClockExplained]
    window_close: float | None = None
    recorded: list = field(default_factory=list)  # keys of sla.breached / sla.step events
    watched_since: float | None = None  # when tix escalate began watching the store (None: not yet)


def track_for(store, number: int) -> Track:
    """The ticket's track: from the saved SLA state plus the log tail, else folded from its events."""
    import orjson

    from tix.sla.state import SlaState
    from tix.store.log import Position

    st = SlaState(store)
    try:
        meta = orjson.loads((st.dir / "sla-meta.json").read_bytes())
    except (FileNotFoundError, ValueError):
        meta = None
    tracks: dict[int, Track] = {}
    if meta:
        st.meta = meta
        if st._position_ok():
            for name in [meta["live"], meta.get("delta"), *meta.get("done", [])]:
                for tr in st._read_tracks(name, {number}):
                    if number not in tracks or tracks[number].gen < tr.gen:
                        tracks[number] = tr
            key = b'"ticket":%d' % number
            for raw, _s, _o in store.log.read_raw(Position(meta["segment"], meta["offset"])):
                if key in raw:
                    ev = orjson.loads(raw)
                    if ev.get("ticket") == number:
                        fold_event(tracks, ev)
            if number in tracks:
                return tracks[number]
    for ev in store.events_for(ticket=number):
        fold_event(tracks, ev)
    if number not in tracks:
        raise NotFound(f"ticket #{number} not found")
    return tracks[number]


def explain(store, number: int, now: datetime | None = None) -> Explanation:
    from tix.sla.escalate import load_settings

    now_t = (now or utcnow()).timestamp()
    settings = load_settings(store)
    tr = track_for(store, number)
    con = store.read().connect()
    case, params = policy_case_sql(settings.sla.policies)
    row = con.execute(f"SELECT {case}, t.channel FROM tickets t LEFT JOIN contacts c ON c.id = t.contact "
                      f"WHERE t.number = ?", [*params, number]).fetchone()
    if row is None:
        raise NotFound(f"ticket #{number} not found")
    pol = settings.sla.policies[row[0]] if row[0] >= 0 else None
    if tr.status in DONE and tr.policy:
        pol = settings.sla.by_name(tr.policy) or pol
    out = Explanation(number, tr.status, pol.name if pol else None, settings.tz, now_t, [], recorded=list(tr.keys))
    out.watched_since = _watched_since(store)
    if row[1] == "whatsapp" and tr.awaiting and tr.last_customer:
        out.window_close = tr.last_customer + 86400
    if pol is None:
        return out
    cal = settings.calendars[pol.calendar]
    for target in TARGETS:
        if target in pol.targets:
            c = _one(tr, target, pol, cal, now_t)
            if c is not None:
                out.clocks.append(c)
    return out


def _watched_since(store) -> float | None:
    """The watch start `tix escalate` keeps in its state's meta, else searched in the log."""
    import orjson

    from tix.sla.state import watch_start

    try:
        meta = orjson.loads(store.path("snapshot", "sla", "sla-meta.json").read_bytes())
        if isinstance(meta, dict) and "start" in meta:
            return meta["start"]
    except (OSError, ValueError):
        pass
    return watch_start(store)


def _before_watch(ex: "Explanation", c: "ClockExplained") -> bool:
    """Whether this clock breached before tix escalate watched the store: never acted on."""
    return ex.watched_since is not None and c.used > c.goal - 1e-6 and c.due < ex.watched_since


def _one(tr: Track, target: str, pol, cal, now: float) -> ClockExplained | None:
    inputs = clock_inputs(tr, target)
    if inputs is None:
        return None
    start, met, cycle = inputs
    upto = met if met is not None else now
    pauses = [(max(a, start), min(b, upto)) for a, b in tr.pause_list(now) if min(b, upto) > max(a, start)]
    goal = pol.targets[target]
    owner = np.zeros(len(pauses), np.int64)
    used, due = used_and_due(cal, np.array([start]), np.array([upto]), np.array([goal]), owner,
                             np.array([p[0] for p in pauses], np.float64), np.array([p[1] for p in pauses], np.float64))
    used_f, due_f = float(used[0]), float(due[0])
    paused_now = tr.paused_since is not None and met is None
    if met is not None:
        state = "met"
    elif used_f >= goal - 1e-6:
        state = "breached"
    elif tr.status in DONE:
        state = "stopped"
    elif paused_now:
        state = "paused"
    else:
        state = "warning" if used_f >= pol.warn_at * goal else "ok"
    counted = []
    for a, b in cal.intervals(start, upto):
        for lo, hi in _minus(a, b, pauses):
            counted.append((lo, hi, hi - lo))
    paused = [(a, b, float(cal.between(a, b))) for a, b in pauses]
    skipped = cal.closed_days(start, max(upto, due_f))
    return ClockExplained(target, pol.name, cal.name, cycle, goal, start, met, due_f, used_f, state,
                          counted, paused, skipped)


def _minus(a: float, b: float, pauses: list) -> list[tuple[float, float]]:
    pieces = [(a, b)]
    for pa, pb in pauses:
        nxt = []
        for lo, hi in pieces:
            if pb <= lo or pa >= hi:
                nxt.append((lo, hi))
                continue
            if pa > lo:
                nxt.append((lo, pa))
            if pb < hi:
                nxt.append((pb, hi))
        pieces = nxt
    return pieces


def render_text(ex: Explanation) -> str:
    """The explanation as plain text, times in the site zone."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(ex.tz)

    def t(x: float) -> str:
        return datetime.fromtimestamp(x, tz).strftime("%a %Y-%m-%d %H:%M")

    lines = [f"Ticket #{ex.ticket} ({ex.status}); policy: {ex.policy or '(none matches)'}; times in {ex.tz}"]
    if ex.window_close:
        left = ex.window_close - ex.now
        lines.append(f"WhatsApp window closes {t(ex.window_close)}"
                     + (f" (in {format_duration(left)})" if left > 0 else " (closed: only a template can be sent)"))
    for c in ex.clocks:
        label = c.target.replace("_", " ") + (f" (cycle {c.cycle})" if c.target == "next_response" else "")
        lines.append("")
        late = " (LATE)" if c.state == "met" and c.used > c.goal + 1e-6 else ""
        lines.append(f"{label}: {c.state.upper()}{late}  target {format_duration(c.goal)} on calendar {c.calendar}")
        lines.append(f"  started   {t(c.start)}")
        lines.append(f"  due       {t(c.due)}")
        if c.met is not None:
            lines.append(f"  met       {t(c.met)}")
        lines.append(f"  used      {format_duration(c.used)} business time; left {format_duration(c.goal - c.used)}")
        if _before_watch(ex, c):
            lines.append(f"  breached before tix escalate watched this store (since {t(ex.watched_since)}): "
                         f"not acted on")
        for a, b, s in c.counted[:50]:
            lines.append(f"  counted   {t(a)} - {datetime.fromtimestamp(b, tz).strftime('%H:%M')}  "
                         f"{format_duration(s)}")
        if len(c.counted) > 50:
            lines.append(f"  counted   … and {len(c.counted) - 50} more intervals")
        for a, b, s in c.paused:
            lines.append(f"  paused    {t(a)} - {t(b)}  ({format_duration(s)} of business time not counted)")
        for d, why in c.skipped:
            lines.append(f"  skipped   {d.strftime('%a %Y-%m-%d')}  {why}")
    if ex.recorded:
        lines.append("")
        lines.append("recorded (never repeated):")
        for key in ex.recorded:
            _t, target, cycle, step = (key.split(":") + ["", "", ""])[:4]
            what = "breach" if step == "breached" else f"step {step}"
            lines.append(f"  {what} of {target.replace('_', ' ')} (cycle {cycle})")
    return "\n".join(lines) + "\n"


def to_json(ex: Explanation) -> dict:
    def iso(x):
        return None if x is None else datetime.fromtimestamp(x, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {"ticket": ex.ticket, "status": ex.status, "policy": ex.policy,
            "whatsapp_window_closes": iso(ex.window_close), "recorded": ex.recorded,
            "watched_since": iso(ex.watched_since),
            "clocks": [{"target": c.target, "cycle": c.cycle, "state": c.state, "calendar": c.calendar,
                        "breached_before_watch": _before_watch(ex, c),
                        "target_seconds": c.goal, "started_at": iso(c.start), "due_at": iso(c.due),
                        "met_at": iso(c.met), "business_seconds_used": round(c.used, 3),
                        "business_seconds_left": round(c.goal - c.used, 3),
                        "counted": [[iso(a), iso(b), round(s, 3)] for a, b, s in c.counted],
                        "paused": [[iso(a), iso(b), round(s, 3)] for a, b, s in c.paused],
                        "skipped": [[d.isoformat(), why] for d, why in c.skipped]} for c in ex.clocks]}
