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
from datetime import datetime, timezone

import numpy as np

from tix.sla.policy import TARGETS

RUNNING = ("new", "open")
DONE = ("resolved", "closed")


def epoch(ts: str) -> float:
    """Store time `2026-11-24T07:57:05.123456Z` -> epoch seconds (fast path for our own format)."""
    return datetime.fromisoformat(ts).timestamp()


def from_epoch(t: float | None) -> datetime | None:
    """Epoch seconds -> naive UTC datetime (the DuckDB/Parquet convention of the store)."""
    if t is None or t != t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).replace(tzinfo=None)


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
    """All clocks of one target for many tickets, as parallel arrays (see `compute`)."""

    target: str
    ticket: np.ndarray
    policy: list
    cycle: np.ndarray
    start: np.ndarray
    met: np.ndarray  # nan where not met
    target_s: np.ndarray
    used: np.ndarray
    due: np.ndarray
    state: list
    breached: np.ndarray
    paused: np.ndarray


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
    order = np.lexsort((pause_s, pause_owner))
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


def compute(tracks: list[Track], target: str, policy_of: dict, policies: dict, calendars: dict,
            now: float) -> dict[str, Clocks]:
    """Clocks of `target` for the tracks whose policy has that target, grouped by calendar.

    `policy_of[ticket]` names the ticket's policy; `policies[name]` is a Policy; calendars maps
    a calendar name (or None for 24/7 in UTC) to a Calendar.
    """
    groups: dict = {}
    for tr in tracks:
        pname = policy_of.get(tr.ticket)
        pol = policies.get(pname) if pname else None
        if pol is None or target not in pol.targets:
            continue
        inputs = clock_inputs(tr, target)
        if inputs is None:
            continue
        groups.setdefault(pol.calendar, []).append((tr, pol, inputs))
    return {cal: _compute_group(items, target, calendars[cal], now) for cal, items in groups.items()}


def _compute_group(items, target, cal, now) -> Clocks:
    n = len(items)
    start = np.fromiter((it[2][0] for it in items), np.float64, n)
    met = np.fromiter((np.nan if it[2][1] is None else it[2][1] for it in items), np.float64, n)
    cycle = np.fromiter((it[2][2] for it in items), np.int64, n)
    target_s = np.fromiter((it[1].targets[target] for it in items), np.float64, n)
    warn = np.fromiter((it[1].warn_at for it in items), np.float64, n)
    ticket = np.fromiter((it[0].ticket for it in items), np.int64, n)
    is_met = ~np.isnan(met)
    upto = np.where(is_met, met, now)
    owner, ps, pe = [], [], []
    paused_now = np.zeros(n, dtype=bool)
    for i, (tr, _pol, _inp) in enumerate(items):
        if tr.pauses or tr.paused_since is not None:
            for a, b in tr.pause_list(now):
                owner.append(i)
                ps.append(a)
                pe.append(b)
            paused_now[i] = tr.paused_since is not None
    used, due = used_and_due(cal, start, upto, target_s, np.asarray(owner, np.int64),
                             np.asarray(ps, np.float64), np.asarray(pe, np.float64))
    done = np.fromiter((it[0].status in DONE for it in items), bool, n)
    eps = 1e-6
    breached = used >= target_s - eps
    breached &= ~is_met | (used > target_s + eps)  # met exactly on the due time is in time
    state = np.where(is_met, "met", np.where(breached, "breached", np.where(
        done, "stopped", np.where(paused_now, "paused", np.where(used >= warn * target_s, "warning", "ok")))))
    return Clocks(target, ticket, [it[1].name for it in items], cycle, start, met, target_s, used, due,
                  state.tolist(), breached, paused_now)
