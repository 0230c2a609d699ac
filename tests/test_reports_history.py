"""Reports a manager can trust (issue 20), on the helpdesk history of tests/plugins/reports.py (`desk`).

Three kinds of test:

- known answers: every figure written here by hand from the table in tests/plugins/reports.py;
- the issue's findings, each as the test that failed on the code before the fix (`test_why_*`);
- the past is stable (a report for W47 is the same whatever happens later), and every built-in
  report's JSON equals an independent recomputation in plain Python over the raw JSONL log.
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.plugins.reports import DESK_NOW, utc
from tix.reports import render, run_report

W46 = {"since": "2026-11-09", "until": "2026-11-16"}
W47 = {"since": "2026-11-16", "until": "2026-11-23"}
JAKARTA = timezone(timedelta(hours=7))


def metrics(result, section):
    return {r["metric"]: (r["value"], r["previous"]) for r in result.section(section).dicts()}


def rows(result, section):
    return result.section(section).dicts()


def by(result, section, key):
    return {r[key]: r for r in rows(result, section)}


def weekly(store, week="2026-W47", now=DESK_NOW, **params):
    return run_report(store, "weekly", params=params or None, week=week, now=now, locale="en")


# -- known answers ---------------------------------------------------------------------------------
def test_weekly_headline_known_answers(desk):
    m = metrics(weekly(desk.store), "headline")
    assert m["new_tickets"] == (5, 2)  # W47: 4 5 8 9 10 (not the spam 6, not the out-of-office 7); W46: 2 3
    assert m["excluded_tickets"] == (2, 0)
    assert m["resolved_tickets"] == (3, 2)  # W47: 3 5 10 (9 closed without a reply); W46: 1 (again) and 2
    assert m["closed_unanswered"] == (1, 0)
    assert m["backlog"] == (2, 1)  # open at the end of W47: 4 (pending) and 8; of W46: 3
    fr, fr90 = m["first_response_median_hours"], m["first_response_p90_hours"]
    assert fr == (pytest.approx(1.0), pytest.approx(2.0))  # 4: 1 h, 5: 1 h, 10: 1 h, 8: 6 h, 3: 8.5 h; W46: 2: 2 h
    assert fr90[0] == pytest.approx(6 + 0.6 * (8.5 - 6))
    assert m["resolution_median_hours"] == (pytest.approx(24.0), pytest.approx(17.5))  # 9.5 30 24; 10 (1 again) 25
    assert m["reopen_rate"] == (0, pytest.approx(0.5))  # W46: 1 reopen, 2 resolutions


def test_weekly_trend_teams_agents_known_answers(desk):
    r = weekly(desk.store)
    trend = {t["week"]: (t["new_tickets"], t["resolved_tickets"], t["backlog"]) for t in rows(r, "trend")}
    assert trend["2026-W45"] == (1, 1, 0) and trend["2026-W46"] == (2, 2, 1) and trend["2026-W47"] == (5, 3, 2)
    teams = {t["team"]: t for t in rows(r, "by_team")}
    assert set(teams) == {"support", "billing"}
    support = teams["support"]
    assert (support["new_tickets"], support["resolved_tickets"], support["backlog"]) == (4, 3, 1)
    assert (teams["billing"]["new_tickets"], teams["billing"]["backlog"]) == (1, 1)
    assert teams["billing"]["first_response_median_hours"] == pytest.approx(6.0)
    agents = {a["agent"]: a for a in rows(r, "agents")}
    assert (agents["ani"]["handled"], agents["ani"]["resolved"], agents["ani"]["replies"]) == (3, 2, 4)
    assert agents["ani"]["first_response_median_hours"] == pytest.approx(1.0)
    assert agents["ani"]["resolution_median_hours"] == pytest.approx(27.0)
    assert (agents["citra"]["handled"], agents["citra"]["resolved"], agents["citra"]["replies"]) == (2, 1, 1)
    assert (agents["budi"]["handled"], agents["budi"]["resolved"], agents["budi"]["replies"]) == (1, 0, 1)
    oldest = [(o["ticket"], o["status"], o["team"]) for o in rows(r, "oldest")]
    assert oldest == [(4, "pending", "support"), (8, "open", "billing")]
    channels = by(r, "by_channel", "channel")
    assert (channels["email"]["new_tickets"], channels["email"]["responded"]) == (5, 5)


def test_sla_known_answers_every_cycle(desk):
    r = run_report(desk.store, "sla", params=W47, now=DESK_NOW, locale="en")
    pol = {p["target"]: p for p in rows(r, "by_policy")}
    # first response: 4, 5, 10 on time; 3 (8.5 h) and 8 (6 h: its 1 h reply was never delivered) late
    assert (pol["first_response"]["measured"], pol["first_response"]["breached"]) == (5, 2)
    # next response: 5's first cycle answered in 1 h, its second ("thanks") never: breached
    assert (pol["next_response"]["measured"], pol["next_response"]["breached"]) == (2, 1)
    assert pol["next_response"]["compliance"] == pytest.approx(0.5)
    # resolution: 3, 5, 10 in time; 8 open since 11-18 03:00, due 11-20 03:00; 9 was closed unanswered
    assert (pol["resolution"]["measured"], pol["resolution"]["breached"]) == (4, 1)
    breaches = [(b["ticket"], b["target"], b["overdue_hours"]) for b in rows(r, "breaches")]
    assert breaches == [(8, "resolution", 62.0), (5, "next_response", 21.0), (3, "first_response", 4.5),
                        (8, "first_response", 2.0)]
    teams = by(r, "by_team", "team")
    assert (teams["billing"]["measured"], teams["billing"]["breached"]) == (2, 2)
    assert (teams["support"]["measured"], teams["support"]["breached"]) == (9, 2)
    w = metrics(weekly(desk.store), "sla_headline")
    assert w["sla_compliance"][0] == pytest.approx(7 / 11) and w["breached"] == (4, 0)


def test_response_times_volume_agents_known_answers(desk):
    s = desk.store
    rt = run_report(s, "response-times", params=W46, now=DESK_NOW)
    o = metrics(rt, "overall")
    assert o["resolved"][0] == 2 and o["resolution_median_hours"][0] == pytest.approx(17.5)  # 1: 10 h, 2: 25 h
    vol = run_report(s, "volume", params={"since": "2026-11-02", "until": "2026-11-23"}, now=DESK_NOW)
    weeks = {w["week"]: (w["new_tickets"], w["resolved"], w["closed_unanswered"], w["excluded"])
             for w in rows(vol, "by_week")}
    assert weeks == {"2026-W45": (1, 1, 0, 0), "2026-W46": (2, 2, 0, 0), "2026-W47": (5, 3, 1, 2)}
    ag = by(run_report(s, "agents", params=W46, now=DESK_NOW), "agents", "agent")
    assert (ag["budi"]["first_responses"], ag["budi"]["replies"], ag["budi"]["resolved"]) == (1, 1, 0)
    assert (ag["citra"]["first_responses"], ag["citra"]["replies"], ag["citra"]["resolved"]) == (0, 0, 1)
    assert (ag["ani"]["resolved"], ag["ani"]["reopened"], ag["ani"]["reopen_rate"]) == (1, 1, 1)
    assert ag["citra"]["resolution_median_hours"] == pytest.approx(25.0)
    # credited to the current assignee, on request
    ag = by(run_report(s, "agents", params={**W46, "by": "assignee"}, now=DESK_NOW), "agents", "agent")
    assert ag["citra"]["first_responses"] == 1 and ag.get("budi", {}).get("first_responses", 0) == 0


def test_local_midnight_boundary(desk):
    """#3 came at 23:30 on Sunday in Jakarta (W46), #4 at 00:30 on Monday (W47); both UTC Sunday."""
    vol = run_report(desk.store, "volume", params={"since": "2026-11-15", "until": "2026-11-17"}, now=DESK_NOW)
    assert {w["week"]: w["new_tickets"] for w in rows(vol, "by_week")} == {"2026-W46": 1, "2026-W47": 2}
    cells = {(c["weekday"], c["hour"]): c["tickets"] for c in rows(vol, "heatmap")}
    assert cells[(7, 23)] == 1 and cells[(1, 0)] == 1  # #3 Sunday 23h, #4 Monday 0h (#5 Monday 9h)


# -- the findings, each failing before the fix --------------------------------------------
def test_why_1_open_at_end_of_week_follows_reopen_and_resolution(desk):
    """#1 was resolved 11-03 and reopened 11-10: not open at the end of W45 (the latest
    `resolved_at` said it was); a past week's resolved count does not shrink after a reopen;
    resolution time is per episode (10 h after the reopen, not 178 h from creation)."""
    s = desk.store
    trend = {t["week"]: t["backlog"] for t in rows(run_report(s, "backlog", now=DESK_NOW), "trend")}
    assert (trend["2026-W45"], trend["2026-W46"], trend["2026-W47"]) == (0, 1, 2)
    w46 = metrics(weekly(s, "2026-W46"), "headline")
    assert w46["backlog"] == (1, 0)
    assert w46["resolved_tickets"] == (2, 1) and w46["resolution_median_hours"][0] == pytest.approx(17.5)
    before = metrics(weekly(s), "headline")["resolved_tickets"]
    desk.mail("2026-11-23T02:30", "c10", "Warna berbeda", "Warnanya masih beda kak.", ticket=10)  # reopens #10
    later = DESK_NOW + timedelta(hours=1)
    assert metrics(weekly(s, now=later), "headline")["resolved_tickets"] == before == (3, 2)
    assert metrics(weekly(s, now=later), "headline")["backlog"] == (2, 1)


def test_why_2_agents_credited_to_who_acted(desk):
    s = desk.store
    ag = by(run_report(s, "agents", params=W46, now=DESK_NOW), "agents", "agent")
    # citra (#2's assignee now) never replied to #2: the first response is budi's
    assert ag["citra"]["first_response_median_hours"] is None
    assert ag.get("budi", {}).get("first_response_median_hours") == pytest.approx(2.0)
    assert ag["citra"]["resolved"] == 1  # she did resolve it
    w47 = by(run_report(s, "agents", params=W47, now=DESK_NOW), "agents", "agent")
    assert w47["ani"]["replies"] == 4  # her replies in W47; not the 3 auto-replies on her tickets
    assert w47["budi"]["replies"] == 1  # the reply the SMTP server refused is not a reply


def test_why_3_volume_resolved_column_is_stable(desk):
    s = desk.store
    params = {"since": "2026-11-02", "until": "2026-11-23"}
    first = rows(run_report(s, "volume", params=params, now=DESK_NOW), "by_week")
    desk.mail("2026-11-23T02:30", "c10", "Warna berbeda", "Warnanya masih beda kak.", ticket=10)  # reopens #10
    again = rows(run_report(s, "volume", params=params, now=DESK_NOW + timedelta(hours=1)), "by_week")
    assert again == first
    assert {w["week"]: w["resolved"] for w in first} == {"2026-W45": 1, "2026-W46": 2, "2026-W47": 3}


def test_why_4_one_ticket_set_per_first_response_figure(desk):
    """W46: #2 was answered in 2 h; #3 was created in W46 but first answered in W47 (8.5 h).
    The channel's median takes the same tickets as the headline: those first answered in W46."""
    r = weekly(desk.store, "2026-W46")
    head = metrics(r, "headline")["first_response_median_hours"][0]
    assert head == pytest.approx(2.0)
    assert by(r, "by_channel", "channel")["email"]["first_response_median_hours"] == pytest.approx(head)


def _escalate(store):
    from tix.sla.escalate import escalate

    escalate(store, now=DESK_NOW)  # what cron does; the reports must not depend on it (why 7)


def test_why_5_next_response_compliance_over_all_cycles(desk):
    _escalate(desk.store)
    w = weekly(desk.store)
    r = run_report(desk.store, "sla", params=W47, now=DESK_NOW)
    nr = by(r, "by_policy", "target")["next_response"]
    assert (nr["measured"], nr["met"], nr["compliance"]) == (2, 1, pytest.approx(0.5))
    assert metrics(w, "sla_headline")["sla_compliance"][0] == pytest.approx(7 / 11)


def test_why_6_overdue_stops_when_the_clock_stops(desk):
    _escalate(desk.store)
    r = run_report(desk.store, "sla", params=W47, now=DESK_NOW)
    nr = [b for b in rows(r, "breaches") if b["target"] == "next_response"]
    # #5's second cycle fell due 11-16 11:00; the ticket was resolved 11-17 08:00: 21 h, not 150 h
    assert [(b["ticket"], b["overdue_hours"]) for b in nr] == [(5, 21.0)]


def test_why_7_sla_sections_agree_without_escalate(desk):
    """`tix escalate` never ran on this store: the SLA sections still count what the others show."""
    r = weekly(desk.store)
    assert r.section("sla_headline").note is None
    assert metrics(r, "sla_headline")["breached"][0] == 4
    fr = by(run_report(desk.store, "sla", params=W47, now=DESK_NOW), "by_policy", "target")["first_response"]
    assert (fr["measured"], fr["breached"]) == (5, 2)


def test_why_8_spam_auto_mail_failed_send_and_closing_unanswered(desk):
    s = desk.store
    m = metrics(weekly(s), "headline")
    assert m["new_tickets"][0] == 5 and m["excluded_tickets"][0] == 2  # spam #6 and out-of-office #7
    assert m["resolved_tickets"][0] == 3 and m["closed_unanswered"][0] == 1  # #9 closed without a reply
    rt = run_report(s, "response-times", params=W47, now=DESK_NOW)
    dist = {d["bucket"]: d["tickets"] for d in rows(rt, "distribution")}
    assert dist["< 1"] == 0 and dist["4–8"] == 1  # #8's first response is the 6 h one that was sent
    sla = run_report(s, "sla", params=W47, now=DESK_NOW)
    assert 6 not in {b["ticket"] for b in rows(sla, "breaches")}
    res = by(sla, "by_policy", "target")["resolution"]
    assert res["measured"] == 4  # 3 5 10 met, 8 breached; not the spam's 0 h, not #9 closed unanswered


def test_why_9_demo_weekly_report_has_the_demos_week(tmp_path, monkeypatch):
    """The demo's messages arrive "now": its weekly report is about this week, and the backlog's
    point for now counts what arrived at this very moment."""
    from tix.demo import run_demo

    now = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)  # a Friday: the demo's week is W47
    monkeypatch.setenv("TIX_NOW", "2026-11-20T03:00:00Z")
    result = run_demo(tmp_path / "demo", now=now)
    html = result.report_path.read_text(encoding="utf-8")
    assert "Minggu 2026-W47" in html  # the report's own period, not the week before
    m = metrics(run_report(result.store, "weekly", week="2026-W47", now=now, locale="en"), "headline")
    open_now = result.store.connect().execute(
        "SELECT count(*) FROM tickets WHERE status IN ('new', 'open', 'pending')").fetchall()[0][0]
    assert m["new_tickets"][0] > 0 and m["backlog"][0] == open_now > 0
    trend = rows(run_report(result.store, "backlog", now=now), "trend")
    assert trend[-1] == {"week": "2026-W47", "backlog": open_now}


# -- the past stays as it was ---------------------------------------------------------------------
REPORTS = [("weekly", {}, "2026-W47"), ("volume", W47, None), ("response-times", W47, None),
           ("agents", W47, None), ("sla", W47, None), ("weekly", {"team": "support"}, "2026-W47")]
NOW_COLUMNS = {"assigned_open"}  # "open now" columns: about the present, not the period


def _snapshot(store, now):
    out = {}
    for name, params, week in REPORTS:
        r = run_report(store, name, params=params or None, week=week, now=now)
        buf = io.StringIO()
        render(r, "json", buf)
        for s in json.loads(buf.getvalue())["sections"]:
            kept = [{k: v for k, v in row.items() if k not in NOW_COLUMNS} for row in s["rows"]]
            # a line there only for its "now" columns (an agent with open tickets and nothing done)
            out[(name, str(params), s["name"])] = [r for r in kept if any(v not in (0, None) for k, v in r.items()
                                                                          if k != "agent")]
    trend = rows(run_report(store, "backlog", now=now), "trend")
    out["backlog-trend"] = [t for t in trend if t["week"] <= "2026-W47"]
    return out


def test_a_past_week_gives_the_same_figures_whenever_it_is_run(desk):
    s = desk.store
    first = _snapshot(s, DESK_NOW)
    # later events: a reopen, a reassignment to another team, replies, resolutions, a new ticket
    desk.mail("2026-11-23T03:10", "c10", "Warna berbeda", "Warnanya masih beda kak.", ticket=10)
    desk.act("2026-11-23T03:20", "ani", 5, "assign", to="budi", team="billing")
    desk.act("2026-11-23T03:30", "budi", 8, "reply", text="Dana sudah kembali.")
    desk.act("2026-11-23T03:40", "budi", 8, "resolve")
    desk.act("2026-11-23T03:50", "citra", 9, "reopen")
    desk.act("2026-11-23T04:00", "ani", 4, "resolve")
    desk.mail("2026-11-23T04:10", "c11", "Pesanan baru")
    later = utc("2026-11-24T03:00")
    again = _snapshot(s, later)
    assert again == first


# -- an independent recomputation from the raw log ------------------------------------------------
class Recount:
    """The report definitions, computed again in plain Python from the JSONL events."""

    OPEN = ("new", "open", "pending")
    DONE = ("resolved", "closed")

    def __init__(self, store, exclude=("spam", "auto", "otomatis")):
        events = []
        for path in sorted(store.path("events").glob("*.jsonl")):
            events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        events.sort(key=lambda e: e["seq"])
        self.t = {}
        failed = set()
        for e in events:
            if e["type"] == "outbox.failed" and e["data"].get("permanent"):
                failed.add(e["data"].get("outbox") or e["data"].get("id"))
        for e in events:
            n = e.get("ticket")
            if n is None:
                continue
            ts = datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
            d = e.get("data") or {}
            t = self.t.setdefault(n, {"tags": set(), "states": [], "replies": [], "msgs": []})
            if e["type"] == "ticket.created":
                t.update(created=ts, channel=d.get("channel"))
                t["tags"] |= set(d.get("tags") or [])
                t["states"].append((ts, d.get("status") or "new", d.get("team"), d.get("assignee"), e["actor"]))
            elif e["type"] == "ticket.updated":
                st = d.get("set") or {}
                if not {"status", "team", "assignee"} & set(st):
                    continue
                _, s0, tm, asg, _ = t["states"][-1]
                t["states"].append((ts, st.get("status", s0), st.get("team", tm), st.get("assignee", asg),
                                    e["actor"]))
            elif e["type"] == "ticket.tagged":
                t["tags"] |= set(d.get("add") or [])
                t["tags"] -= set(d.get("remove") or [])
            elif e["type"] == "message.sent":
                ok = not d.get("auto") and d.get("outbox") not in failed
                team = t["states"][-1][2]
                t["replies"].append((ts, ok, e["actor"], team))
                t["msgs"].append((ts, "A" if ok else None))
            elif e["type"] == "message.received" and not d.get("auto"):
                t["msgs"].append((ts, "R"))
        self.excluded = {n for n, t in self.t.items() if t["tags"] & set(exclude)}

    def tickets(self):
        return {n: t for n, t in self.t.items() if n not in self.excluded}

    def first_responses(self, a, b):
        out = []
        for n, t in self.tickets().items():
            ok = [r for r in t["replies"] if r[1]]
            if ok and a <= ok[0][0] < b:
                out.append((n, (ok[0][0] - t["created"]).total_seconds() / 3600, ok[0][2], ok[0][3]))
        return out

    def resolutions(self, a, b):
        out = []
        for n, t in self.tickets().items():
            start, prev = None, None
            for ts, st, team, _asg, actor in t["states"]:
                if prev is None or (prev in self.DONE and st in self.OPEN):
                    start = ts
                if st in self.DONE and (prev is None or prev in self.OPEN) and a <= ts < b:
                    answered = any(r[1] and r[0] <= ts for r in t["replies"])
                    out.append((n, (ts - start).total_seconds() / 3600, answered, actor, team))
                prev = st
        return out

    def reopens(self, a, b):
        return sum(1 for t in self.tickets().values() for (p, c) in zip(t["states"], t["states"][1:], strict=False)
                   if p[1] in self.DONE and c[1] in self.OPEN and a <= c[0] < b)

    def open_at(self, when, team=None):
        n = 0
        for t in self.tickets().values():
            before = [s for s in t["states"] if s[0] < when]
            if before and before[-1][1] in self.OPEN and (team is None or before[-1][2] == team):
                n += 1
        return n

    def new(self, a, b):
        return [n for n, t in self.tickets().items() if a <= t["created"] < b]


def median(values):
    return quantile(values, 0.5)


def quantile(values, q):
    v = sorted(values)
    if not v:
        return None
    pos = q * (len(v) - 1)
    lo = int(pos)
    return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (pos - lo)


def _week(monday: str):
    a = datetime.fromisoformat(monday).replace(tzinfo=JAKARTA)
    return a.astimezone(timezone.utc), (a + timedelta(days=7)).astimezone(timezone.utc)


def _json(store, name, **kw):
    buf = io.StringIO()
    render(run_report(store, name, now=DESK_NOW, **kw), "json", buf)
    return {s["name"]: s["rows"] for s in json.loads(buf.getvalue())["sections"]}


@pytest.mark.parametrize("week,monday,prev", [("2026-W47", "2026-11-16", "2026-11-09"),
                                              ("2026-W46", "2026-11-09", "2026-11-02")])
def test_every_report_equals_a_recount_of_the_log(desk, week, monday, prev):
    s = desk.store
    rc = Recount(s)
    a, b = _week(monday)
    pa, _ = _week(prev)
    fr = rc.first_responses(a, b)
    res = [r for r in rc.resolutions(a, b) if r[2]]
    unanswered = [r for r in rc.resolutions(a, b) if not r[2]]

    head = {r["metric"]: r for r in _json(s, "weekly", week=week)["headline"]}
    assert head["new_tickets"]["value"] == len(rc.new(a, b))
    assert head["new_tickets"]["previous"] == len(rc.new(pa, a))
    assert head["excluded_tickets"]["value"] == len([n for n in rc.excluded if a <= rc.t[n]["created"] < b])
    assert head["resolved_tickets"]["value"] == len(res)
    assert head["closed_unanswered"]["value"] == len(unanswered)
    assert head["backlog"]["value"] == rc.open_at(b) and head["backlog"]["previous"] == rc.open_at(a)
    assert head["first_response_median_hours"]["value"] == pytest.approx(median([f[1] for f in fr]))
    assert head["first_response_p90_hours"]["value"] == pytest.approx(quantile([f[1] for f in fr], 0.9))
    assert head["resolution_median_hours"]["value"] == pytest.approx(median([r[1] for r in res]))
    assert head["reopen_rate"]["value"] == pytest.approx(rc.reopens(a, b) / len(res))

    wk = _json(s, "weekly", week=week)
    trend = {t["week"]: t for t in wk["trend"]}
    for i in range(8):
        wa, wb = a - timedelta(days=7 * i), b - timedelta(days=7 * i)
        label = (wa.astimezone(JAKARTA)).strftime("%G-W%V")
        assert trend[label]["new_tickets"] == len(rc.new(wa, wb))
        assert trend[label]["resolved_tickets"] == len([r for r in rc.resolutions(wa, wb) if r[2]])
        assert trend[label]["backlog"] == rc.open_at(wb)
    teams = {t["team"]: t for t in wk["by_team"]}
    for team in ("support", "billing", "shipping"):
        got = teams.get(team, {"backlog": 0, "resolved_tickets": 0})
        assert got["backlog"] == rc.open_at(b, team)
        assert got["resolved_tickets"] == len([r for r in res if r[4] == team])
    agents = {g["agent"]: g for g in wk["agents"]}
    for agent in ("ani", "budi", "citra"):
        replies = [r for t in rc.tickets().values() for r in t["replies"]
                   if r[1] and r[2] == f"user:{agent}" and a <= r[0] < b]
        assert agents.get(agent, {}).get("replies", 0) == len(replies)
        assert agents.get(agent, {}).get("resolved", 0) == len([r for r in res if r[3] == f"user:{agent}"])

    rt = _json(s, "response-times", params={"since": monday, "until": b.astimezone(JAKARTA).date().isoformat()})
    overall = {r["metric"]: r["value"] for r in rt["overall"]}
    assert overall["responded"] == len(fr) and overall["resolved"] == len(res)
    by_channel = {c["channel"]: c for c in rt["by_channel"]}
    assert sum(c["responded"] for c in by_channel.values()) == len(fr)

    vol = _json(s, "volume", params={"since": monday, "until": b.astimezone(JAKARTA).date().isoformat()})
    assert [(w["new_tickets"], w["resolved"], w["closed_unanswered"]) for w in vol["by_week"]] == \
        [(len(rc.new(a, b)), len(res), len(unanswered))]

    until = b.astimezone(JAKARTA).date().isoformat()
    ag = {g["agent"]: g for g in _json(s, "agents", params={"since": monday, "until": until})["agents"]}
    for agent in ("ani", "budi", "citra"):
        firsts = [f for f in fr if f[2] == f"user:{agent}"]
        assert ag.get(agent, {}).get("first_responses", 0) == len(firsts)


def test_backlog_of_one_channel(report_store):
    """tests/plugins/reports.py: WhatsApp tickets #5 (open since W47) and #7 (new, W48)."""
    from tests.plugins.reports import NOW

    r = run_report(report_store, "backlog", params={"channel": "whatsapp"}, now=NOW)
    assert metrics(r, "summary")["open_tickets"] == (2, 1)  # a week before NOW: #5
    trend = {t["week"]: t["backlog"] for t in rows(r, "trend")}
    assert (trend["2026-W46"], trend["2026-W47"], trend["2026-W48"]) == (0, 1, 2)
    r = run_report(report_store, "volume", params={"channel": "web", **W47}, now=NOW)
    assert [(w["new_tickets"], w["resolved"]) for w in rows(r, "by_week")] == [(1, 0)]
