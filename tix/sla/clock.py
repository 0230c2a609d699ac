"""SLA clocks: what each ticket's events say about its clocks, and their due times and states.

Two halves, on purpose:

1. **Tracks** (`Track`, `fold_event`): per ticket, the calendar-independent facts folded from
   its events: when it was created, the closed pause intervals, the current pause, when the
   first agent reply came, the current next-response cycle (started by the first customer
   message after an agent reply; met by the next public agent reply), when it was resolved,
   and the keys of SLA steps and breaches already recorded. Tracks are persisted (see
   `tix.sla.state`) and advanced incrementally from the log tail, so a run reads only the
   events written since the previous run.

2. **Clocks** (`compute`): given tracks, each ticket's policy and the calendars, every target's
   business time used, due time and state, computed with numpy over all clocks at once.

Automatic messages (`auto: true`: auto-replies we sent, out-of-office replies we received)
count for nothing: they meet no target, start no cycle and resume no clock.

Pause rule. A clock is paused while the ticket is `pending` (waiting on the customer) and
resumes when the customer writes back (a `message.received`, even before anyone sets the
status back to open) or the status leaves `pending`; an agent's public reply on a pending
ticket pauses it again. While a ticket is `resolved`/`closed` every clock is stopped (this
counts as a pause, so a reopened ticket's resolution clock carries on where it stopped).

States: `met` (the target was reached: reply sent / ticket resolved), `breached` (business
time used reached the target), `paused`, `warning` (used >= warn_at x target), `ok`, and
`stopped` (the ticket was closed before the target was met and before it breached).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tix.store.log import epoch


RUNNING = ("new", "open")
DONE = ("resolved", "closed")


@dataclass
class Track:
    ticket: int
    created: float = 0.0
    status: str = "new"
    customer_wrote: bool = False  # a customer message arrived while pending (clock resumed)
    awaiting: bool = False  # a customer message is unanswered
    paused_since: float | None = None
    pauses: list = field(default_factory=list)  # closed pauses, flat: [start0, end0, start1, end1, …]
    fr_met: float | None = None
    nr_cycle: int = 0
    nr_start: float | None = None
    nr_met: float | None = None
    resolved: float | None = None
    last_customer: float | None = None
    keys: list = field(default_factory=list)  # sla.step / sla.breached keys recorded for this ticket
    policy: str | None = None
    gen: int = 0  # seq of the last event folded in

    # -- pause bookkeeping ------------------------------------------------------------------
    def paused(self) -> bool:
        return self.status in DONE or (self.status == "pending" and not self.customer_wrote)

    def _settle(self, was_paused: bool, t: float) -> None:
        now = self.paused()
        if now and not was_paused:
            self.paused_since = t
        elif was_paused and not now:
            if self.paused_since is not None and t > self.paused_since:
                self.pauses += [self.paused_since, t]
            self.paused_since = None

    def pause_list(self, now: float | None = None) -> list[tuple[float, float]]:
        """Closed pauses plus the current one (ending `now`) as (start, end) pairs."""
        out = [(self.pauses[i], self.pauses[i + 1]) for i in range(0, len(self.pauses), 2)]
        if self.paused_since is not None and now is not None and now > self.paused_since:
            out.append((self.paused_since, now))
        return out


TRACK_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent", "sla.step", "sla.breached")


def fold_event(tracks: dict[int, Track], ev: dict) -> Track | None:
    """Advance the ticket's track by one event (in log order). Returns the track it touched."""
    kind = ev.get("type")
    number = ev.get("ticket")
    if number is None or kind not in TRACK_TYPES:
        return None
    t = epoch(ev["ts"])
    data = ev.get("data") or {}
    tr = tracks.get(number)
    if tr is None:
        tr = tracks[number] = Track(number, created=t)
        tr.status = "new"
    tr.gen = ev.get("seq", tr.gen)
    was = tr.paused()
    if kind == "ticket.created":
        tr.created = t
        tr.status = str(data.get("status") or "new")
        if tr.status in DONE:
            tr.resolved = t
    elif kind == "ticket.updated":
        status = (data.get("set") or {}).get("status")
        if status is None:
            return tr
        if status != tr.status:
            if status == "pending" or tr.status == "pending":
                tr.customer_wrote = False
            if status in DONE:
                tr.resolved = tr.resolved if tr.status in DONE else t
            else:
                tr.resolved = None
            tr.status = status
    elif kind == "message.received":
        if data.get("auto"):  # an out-of-office or other automatic message is not the customer writing
            return tr
        tr.last_customer = t
        if tr.fr_met is not None and not tr.awaiting:
            tr.nr_cycle += 1
            tr.nr_start, tr.nr_met = t, None
        tr.awaiting = True
        if tr.status == "pending":
            tr.customer_wrote = True
    elif kind == "message.sent":
        if data.get("auto"):
            return tr
        if tr.fr_met is None:
            tr.fr_met = t
        if tr.nr_start is not None and tr.nr_met is None:
            tr.nr_met = t
        tr.awaiting = False
        tr.customer_wrote = False
    else:  # sla.step / sla.breached: remember the key so that it is never repeated
        key = data.get("key")
        if key and key not in tr.keys:
            tr.keys.append(key)
        return tr
    tr._settle(was, t)
    return tr


# -- computing clocks -----------------------------------------------------------------------------
@dataclass
class Clocks:
    """One target's clocks for every row of a tracks table, as parallel arrays (`compute_columns`)."""

    target: str
    has: np.ndarray  # the row's policy has this target and the clock started
    start: np.ndarray
    met: np.ndarray  # nan where not met
    cycle: np.ndarray
    target_s: np.ndarray
    used: np.ndarray
    due: np.ndarray
    state: np.ndarray  # object array of state names (None where not has)
    breached: np.ndarray
    paused: np.ndarray
    next: np.ndarray = None  # when the state next changes with no new event (warning, breach); inf: never


def _f64(table, name: str) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(table[name], np.nan).to_numpy().astype(np.float64, copy=False)


_STATES = np.array([None, "met", "breached", "stopped", "paused", "warning", "ok"], dtype=object)
_STATE_CODES = list(range(len(_STATES) - 1))  # the conditions' codes; "ok" when none holds
_WARNING, _OK = 5, 6  # codes of "warning" and "ok"


def compute_columns(table, pol: np.ndarray, policies: list, calendars: dict, now: float) -> dict[str, Clocks]:
    """All clocks of all rows of a tracks table (sorted by ticket), vectorised.

    `pol[i]` is the index into `policies` of row i's policy, or -1. Rows are grouped by their
    policy's calendar; each group costs a few numpy calls whatever its size.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    created = _f64(table, "created")
    done = pc.is_in(table["status"], value_set=pa.array(list(DONE))).to_numpy(zero_copy_only=False)
    paused_since = _f64(table, "paused_since")
    col = table["pauses"].combine_chunks() if n else None
    if n and len(col):
        flat = pc.list_flatten(col).to_numpy().astype(np.float64)
        parents = pc.list_parent_indices(col).to_numpy()
        p_owner, p_s, p_e = parents[0::2], flat[0::2], flat[1::2]
    else:
        p_owner, p_s, p_e = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    cur = np.nonzero(~np.isnan(paused_since))[0]
    p_owner = np.concatenate([p_owner, cur]).astype(np.int64)
    p_s = np.concatenate([p_s, paused_since[cur]])
    p_e = np.concatenate([p_e, np.full(len(cur), now)])
    cal_names = sorted({p.calendar for p in policies}, key=lambda c: (c is not None, c or ""))
    cal_of = np.array([cal_names.index(p.calendar) for p in policies] + [-1], np.int64)
    row_cal = cal_of[pol]  # pol == -1 picks the trailing -1
    warn = np.array([p.warn_at for p in policies] + [np.nan])[pol]
    out = {}
    for target in ("first_response", "next_response", "resolution"):
        goal = np.array([p.targets.get(target, np.nan) for p in policies] + [np.nan])[pol]
        if target == "first_response":
            start, met, cycle = created, _f64(table, "fr_met"), np.zeros(n, np.int64)
        elif target == "next_response":
            start, met = _f64(table, "nr_start"), _f64(table, "nr_met")
            cycle = pc.fill_null(table["nr_cycle"], 0).to_numpy().astype(np.int64)
        else:
            start, met, cycle = created, np.where(done, _f64(table, "resolved"), np.nan), np.zeros(n, np.int64)
        has = ~np.isnan(goal) & ~np.isnan(start)
        used = np.full(n, np.nan)
        due = np.full(n, np.nan)
        for g, name in enumerate(cal_names):
            rows = np.nonzero(has & (row_cal == g))[0]
            if not len(rows):
                continue
            where = np.full(n, -1, np.int64)
            where[rows] = np.arange(len(rows))
            sub = where[p_owner] if len(p_owner) else p_owner
            keep = sub >= 0
            upto = np.where(np.isnan(met[rows]), now, met[rows])
            u, d = used_and_due(calendars[name], start[rows], upto, goal[rows], sub[keep], p_s[keep], p_e[keep])
            used[rows], due[rows] = u, d
        is_met = ~np.isnan(met)
        paused_now = ~np.isnan(paused_since) & ~is_met
        eps = 1e-6
        breached = has & (used >= goal - eps) & (~is_met | (used > goal + eps))
        # the first that holds, as small codes (np.select over object arrays took 0.3 s per
        # target for the 1M store's closed tickets), then the names
        code = np.select([~has, is_met, breached, done, paused_now, used >= warn * goal],
                         _STATE_CODES, len(_STATE_CODES)).astype(np.int8)
        state = _STATES[code]
        # a running clock (ok or warning: not met, breached, stopped or paused) changes at its
        # warning, then at its breach (its due time); business time from now on counts without
        # a pause until an event comes, so its warning is warn x target - used business seconds on
        nxt = np.where(code == _WARNING, due, np.inf)
        for g, name in enumerate(cal_names):
            rows = np.nonzero((code == _OK) & (row_cal == g))[0]
            if len(rows):
                cal = calendars[name]
                nxt[rows] = cal.Cinv(cal.C(np.full(len(rows), now)) + warn[rows] * goal[rows] - used[rows])
        out[target] = Clocks(target, has, start, met, cycle, goal, used, due, state, breached & has, paused_now, nxt)
    return out


def clock_inputs(tr: Track, target: str) -> tuple[float, float | None, int] | None:
    """(start, met, cycle) of a track's clock for `target`, or None if that clock never started."""
    if target == "first_response":
        return tr.created, tr.fr_met, 0
    if target == "next_response":
        if tr.nr_start is None:
            return None
        return tr.nr_start, tr.nr_met, tr.nr_cycle
    return tr.created, (tr.resolved if tr.status in DONE else None), 0


def used_and_due(cal, start: np.ndarray, upto: np.ndarray, target_s: np.ndarray,
                 pause_owner: np.ndarray, pause_s: np.ndarray, pause_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Business seconds used in [start, upto] minus pauses, and the due time, for many clocks.

    `pause_owner[k]` is the clock index of pause k (start `pause_s[k]`, end `pause_e[k]`); a
    clock's pauses do not overlap. Pauses only count inside [start, upto]. The due time is
    found by walking each clock's pauses in time order (all clocks at once, one numpy round
    per pause rank): due = Cinv(C(start) + target + paused business time so far), and a pause
    that begins before that candidate due time is wholly taken into account (no time counts
    while paused, so the target cannot be reached inside it).
    """
    n = len(start)
    base = cal.C(start)
    used = cal.C(upto) - base
    due = cal.Cinv(base + target_s)
    if not len(pause_owner):
        return np.maximum(used, 0.0), due
    order = _pause_order(pause_owner, pause_s)
    owner, ps, pe = pause_owner[order], pause_s[order], pause_e[order]
    ps = np.maximum(ps, start[owner])
    pe = np.maximum(np.minimum(pe, upto[owner]), ps)
    biz = cal.C(pe) - cal.C(ps)
    used = np.maximum(used - np.bincount(owner, weights=biz, minlength=n), 0.0)
    first = np.searchsorted(owner, owner, side="left")
    rank = np.arange(len(owner)) - first
    paused = np.zeros(n)
    for k in range(int(rank.max()) + 1):
        sel = np.nonzero(rank == k)[0]
        o = owner[sel]
        hit = due[o] > ps[sel]
        if not hit.any():
            continue
        o, add = o[hit], biz[sel][hit]
        paused[o] += add
        due[o] = cal.Cinv(base[o] + target_s[o] + paused[o])
    return used, due


def _pause_order(owner: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The order of the pauses by clock, then start (`np.lexsort((start, owner))`).

    The pauses of a track come in time order and the tracks by ticket (with the pauses still
    running appended after them), so a stable sort by clock alone is nearly always the
    answer: timsort does it in a pass or two, where lexsort took 0.7 s on the 1M store's
    closed tickets (issue 16). Checked, and lexsort when not.
    """
    order = np.argsort(owner, kind="stable")
    o, s = owner[order], start[order]
    if len(o) > 1 and not np.all((o[1:] != o[:-1]) | (s[1:] >= s[:-1])):
        return np.lexsort((start, owner))
    return order
