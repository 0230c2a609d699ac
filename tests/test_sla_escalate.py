"""`tix escalate`: clocks from real events, steps taken once, the sla view, config errors."""
from __future__ import annotations

import orjson
import pytest

from tests.plugins.sla import jkt
from tix.sla.escalate import escalate


def events(store, type_=None):
    return [ev for ev, _p in store.log.read() if type_ is None or ev["type"] == type_]


def sla_rows(store, ticket):
    cur = store.connect().execute("SELECT * FROM sla WHERE ticket = ? ORDER BY target", [ticket])
    names = [d[0] for d in cur.description]
    return {r[names.index("target")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_first_response_pauses_while_pending_and_resumes_on_customer_reply(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))  # Monday, policy normal (office calendar)
    timeline.status(n, jkt(2026, 11, 23, 10, 0), "pending")
    timeline.customer(n, jkt(2026, 11, 23, 14, 0))  # the customer writes back: the clock runs again
    report = escalate(sla_store, now=jkt(2026, 11, 23, 17, 0))
    assert report.planned == []
    fr = sla_rows(sla_store, n)["first_response"]
    assert fr["policy"] == "normal"
    assert fr["business_seconds_used"] == pytest.approx(4 * 3600)  # 09-10 and 14-17
    assert fr["state"] == "ok"
    # 4 h left: Tuesday 08-12
    assert fr["due_at"].isoformat() == "2026-11-24T05:00:00"  # 12:00 WIB in naive UTC


def test_breach_runs_steps_once_with_sla_actor(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    before = len(events(sla_store))
    report = escalate(sla_store, now=jkt(2026, 11, 24, 13, 30))  # 8 h used at Tue 12:00 (+ 30 min)
    assert {(p.target, p.step.name if p.step else None) for p in report.planned} == {
        ("first_response", None), ("first_response", "breach")}
    steps = events(sla_store, "sla.step")
    assert len(steps) == 1
    assert steps[0]["actor"] == "sla:normal"
    assert steps[0]["data"] == {"policy": "normal", "target": "first_response", "state": "breached",
                                "step": "breach", "key": f"{n}:first_response:0:breach", "cycle": 0,
                                "actions": "raise priority; assignee=ani"}
    breached = events(sla_store, "sla.breached")
    assert [b["data"]["key"] for b in breached] == [f"{n}:first_response:0:breached"]
    assert breached[0]["data"]["due_at"] == "2026-11-24T02:00:00.000000Z"  # Tue 09:00 WIB
    row = sla_store.ticket(n)
    assert (row["priority"], row["assignee"]) == ("high", "ani")
    updated = [e for e in events(sla_store, "ticket.updated") if e["actor"] == "sla:normal"]
    assert updated and updated[0]["data"]["set"] == {"priority": "high", "assignee": "ani"}
    written = len(events(sla_store)) - before

    again = escalate(sla_store, now=jkt(2026, 11, 24, 14, 0))
    assert again.planned == [] and again.events_written == 0
    from tix.sla.explain import explain, render_text

    text = render_text(explain(sla_store, n, now=jkt(2026, 11, 24, 14, 0)))
    assert ("recorded (never repeated):\n  breach of first response (cycle 0)\n"
            "  step breach of first response (cycle 0)") in text
    assert len(events(sla_store)) - before == written  # a second run does nothing
    assert sla_store.ticket(n)["priority"] == "high"  # not raised twice


def test_dry_run_writes_nothing(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    size = sum(p.stat().st_size for p in sla_store.path("events").iterdir())
    report = escalate(sla_store, now=jkt(2026, 11, 25, 9, 0), dry_run=True)
    assert any(p.ticket == n and p.step is not None for p in report.planned)
    assert sum(p.stat().st_size for p in sla_store.path("events").iterdir()) == size
    assert not sla_store.path("snapshot", "sla", "sla-meta.json").exists()


def test_next_response_cycles_and_auto_replies(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")  # urgent: 24/7, next response 2 h
    timeline.reply(n, jkt(2026, 11, 23, 9, 5), auto=True)  # an auto-reply is not a response
    timeline.reply(n, jkt(2026, 11, 23, 9, 30))
    timeline.customer(n, jkt(2026, 11, 23, 10, 0))  # cycle 1
    timeline.reply(n, jkt(2026, 11, 23, 11, 0))
    timeline.customer(n, jkt(2026, 11, 23, 12, 0))  # cycle 2
    timeline.customer(n, jkt(2026, 11, 23, 12, 30))  # same cycle
    escalate(sla_store, now=jkt(2026, 11, 23, 14, 30))
    rows = sla_rows(sla_store, n)
    assert rows["first_response"]["state"] == "met"
    assert rows["first_response"]["business_seconds_to_meet"] == pytest.approx(1800)
    assert rows["first_response"]["calendar_seconds_to_meet"] == pytest.approx(1800)
    nr = rows["next_response"]
    assert (nr["cycle"], nr["state"], nr["breached"]) == (2, "breached", True)
    assert nr["started_at"].isoformat() == "2026-11-23T05:00:00"
    keys = {e["data"]["key"] for e in events(sla_store, "sla.breached")}
    assert f"{n}:next_response:2:breached" in keys
    assert f"{n}:next_response:1:breached" not in keys
    tagged = events(sla_store, "ticket.tagged")
    assert tagged[-1]["actor"] == "sla:urgent" and tagged[-1]["data"] == {"add": ["sla-breached"]}
    assert sla_store.ticket(n)["team"] == "billing"


def test_resolution_clock_stops_while_resolved_and_carries_on_when_reopened(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(n, jkt(2026, 11, 23, 9, 20))
    timeline.status(n, jkt(2026, 11, 23, 10, 0), "resolved")
    escalate(sla_store, now=jkt(2026, 11, 23, 12, 0))
    res = sla_rows(sla_store, n)["resolution"]
    assert (res["state"], res["business_seconds_to_meet"]) == ("met", pytest.approx(3600))
    timeline.status(n, jkt(2026, 11, 23, 15, 0), "open")
    escalate(sla_store, now=jkt(2026, 11, 23, 16, 0))
    res = sla_rows(sla_store, n)["resolution"]
    assert res["state"] == "ok"
    assert res["business_seconds_used"] == pytest.approx(2 * 3600)  # 09-10 and 15-16


def test_incremental_state_equals_a_rebuild_from_the_log(sla_store, timeline):
    a = timeline.create(jkt(2026, 11, 23, 9, 0))
    b = timeline.create(jkt(2026, 11, 23, 9, 30), priority="urgent")
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    timeline.reply(b, jkt(2026, 11, 23, 10, 15))
    timeline.status(a, jkt(2026, 11, 23, 11, 0), "pending")
    escalate(sla_store, now=jkt(2026, 11, 23, 12, 0))
    timeline.customer(a, jkt(2026, 11, 24, 9, 0))
    timeline.status(b, jkt(2026, 11, 24, 9, 30), "closed")
    c = timeline.create(jkt(2026, 11, 24, 10, 0))
    timeline.status(c, jkt(2026, 11, 24, 10, 30), "resolved")
    now = jkt(2026, 11, 24, 16, 0)
    escalate(sla_store, now=now)
    query = "SELECT * EXCLUDE (status) FROM sla ORDER BY ticket, target"
    incremental = sla_store.connect().execute(query).fetchall()
    again = escalate(sla_store, now=now, rebuild=True)
    assert again.cold and again.events_written == 0
    assert sla_store.connect().execute(query).fetchall() == incremental
    assert {r[0] for r in incremental} == {a, b, c}


def test_cold_start_writes_resolved_and_closed_tickets_apart_in_chunks(sla_store, timeline, monkeypatch):
    """Issue 16: a cold start computes the tickets already resolved or closed a chunk at a time
    and streams their rows into one done part; the rows are the same whatever the chunk, and
    a ticket reopened later carries on from its row in that part."""
    import pyarrow.parquet as pq

    from tix.sla import escalate as esc
    from tix.sla import state

    numbers = []
    for i in range(7):
        n = timeline.create(jkt(2026, 11, 23, 9, i), priority="urgent" if i % 3 == 0 else "normal")
        timeline.reply(n, jkt(2026, 11, 23, 9, 20 + i))
        if i % 2 == 0:
            timeline.status(n, jkt(2026, 11, 23, 10, i), "resolved" if i % 4 == 0 else "closed")
        numbers.append(n)
    now = jkt(2026, 11, 24, 16, 0)
    query = "SELECT * FROM sla ORDER BY ticket, target"
    first = escalate(sla_store, now=now)
    whole = sla_store.connect().execute(query).fetchall()
    assert first.cold and {r[0] for r in whole} == set(numbers)
    monkeypatch.setattr(esc, "CLOSED_CHUNK", 2)  # 4 closed tickets: 2 chunks
    monkeypatch.setattr(state, "ROW_GROUP", 1)  # and a row group each
    files = sorted(sla_store.path("snapshot", "sla").iterdir())
    dry = escalate(sla_store, now=now, rebuild=True, dry_run=True)
    assert sorted(sla_store.path("snapshot", "sla").iterdir()) == files  # a dry run writes nothing
    assert dry.clocks == len(whole)  # one round: every ticket's clocks, closed ones too
    again = escalate(sla_store, now=now, rebuild=True)
    assert again.cold and again.events_written == 0 and again.clocks == len(whole)
    assert sla_store.connect().execute(query).fetchall() == whole
    meta = orjson.loads(sla_store.path("snapshot", "sla", "sla-meta.json").read_bytes())
    assert [p for p in meta["done"] if p.endswith("-closed.parquet")] == meta["done"] and len(meta["done"]) == 1
    assert sorted(p.name for p in sla_store.path("snapshot", "sla").glob("*.parquet")) == \
        sorted([meta["live"], *meta["done"]])
    timeline.status(numbers[0], jkt(2026, 11, 25, 9, 0), "open")  # reopened: its track comes from the part
    timeline.create(jkt(2026, 11, 25, 9, 1))  # a new ticket: in no part
    groups = []
    read = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups",
                        lambda self, rg, **kw: groups.append(list(rg)) or read(self, rg, **kw))
    escalate(sla_store, now=jkt(2026, 11, 25, 9, 30))
    assert groups == [[0]]  # of the closed part, only the reopened ticket's row group was read
    res = sla_rows(sla_store, numbers[0])["resolution"]
    assert res["state"] == "ok" and res["business_seconds_used"] == pytest.approx(3600 + 1800)


def test_policy_change_applies_from_then_on_and_past_breaches_stay(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 30))  # 1 h first response: breached
    assert sla_rows(sla_store, n)["first_response"]["state"] == "breached"
    path = sla_store.path("tix.yaml")
    text = path.read_text().replace("targets: {first_response: 1h, next_response: 2h, resolution: 8h}",
                                    "targets: {first_response: 4h, next_response: 2h, resolution: 8h}")
    path.write_text(text)
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 35))
    fr = sla_rows(sla_store, n)["first_response"]
    assert fr["state"] == "ok"  # under the new 4 h target
    assert fr["breached"] is True  # but the breach recorded under the old one stays
    assert len(events(sla_store, "sla.breached")) == 1


def test_whatsapp_window_warning_before_it_closes(sla_store, timeline):
    path = sla_store.path("tix.yaml")  # the English text below needs locale en (issue 15: texts follow it)
    path.write_text(path.read_text().replace("  locale: id ", "  locale: en ", 1))
    n = timeline.create(jkt(2026, 11, 27, 18, 0), channel="whatsapp")  # Friday after hours
    # first response due Mon 12:00 (Sat 09-13, Mon 08-12); the window closes Sat 18:00
    early = escalate(sla_store, now=jkt(2026, 11, 28, 16, 0), dry_run=True)
    assert not [p for p in early.planned if p.target == "whatsapp_window"]
    report = escalate(sla_store, now=jkt(2026, 11, 28, 17, 15), flush_outbox=False)
    win = [p for p in report.planned if p.target == "whatsapp_window"]
    assert len(win) == 1 and win[0].step.name == "wa"
    queued = events(sla_store, "outbox.queued")
    assert len(queued) == 1
    q = queued[0]["data"]
    assert q["target"] == "wa-lead@example.co.id"
    assert f"[#{n}] WhatsApp window closes" in q["subject"]
    assert "window closes in 45m" in q["body"] and "only a template can be sent" in q["body"]
    again = escalate(sla_store, now=jkt(2026, 11, 28, 17, 30), flush_outbox=False)
    assert not [p for p in again.planned if p.target == "whatsapp_window"]


def test_whatsapp_window_length_comes_from_the_whatsapp_section(sla_store, timeline):
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text() + "\nwhatsapp:\n  window_hours: 20\n")
    timeline.create(jkt(2026, 11, 27, 18, 0), channel="whatsapp")
    report = escalate(sla_store, now=jkt(2026, 11, 28, 13, 15), dry_run=True)  # closes Sat 14:00
    win = [p for p in report.planned if p.target == "whatsapp_window"]
    assert len(win) == 1 and win[0].window_in == 45 * 60


def test_email_ticket_gets_no_window_warning(sla_store, timeline):
    timeline.create(jkt(2026, 11, 27, 18, 0), channel="email")
    report = escalate(sla_store, now=jkt(2026, 11, 28, 17, 15), dry_run=True)
    assert not [p for p in report.planned if p.target == "whatsapp_window"]


def test_policy_conditions_match_contact_tier(sla_store, timeline):
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text().replace("\n    - name: urgent\n", """
    - name: vip
      when: {tier: gold, channel: [email, whatsapp]}
      calendar: always
      targets: {first_response: 30m}
    - name: urgent
""", 1))
    with sla_store.writing() as batch:
        cid = batch.new_contact_id()
        batch.emit("contact.created", contact=cid, data={"name": "Sari", "emails": ["sari@example.id"],
                                                         "phones": [], "fields": {"tier": "gold"}})
    vip = timeline.create(jkt(2026, 11, 23, 9, 0), contact=cid)
    plain = timeline.create(jkt(2026, 11, 23, 9, 0))
    escalate(sla_store, now=jkt(2026, 11, 23, 9, 40))
    assert sla_rows(sla_store, vip)["first_response"]["policy"] == "vip"
    assert sla_rows(sla_store, vip)["first_response"]["state"] == "breached"
    assert sla_rows(sla_store, plain)["first_response"]["policy"] == "normal"


def test_view_exists_and_is_empty_before_the_first_run(sla_store):
    assert sla_store.connect().execute("SELECT count(*) FROM sla").fetchone() == (0,)


def test_config_errors_exit_2_with_file_and_line_and_nothing_written(sla_store, tix):
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text() + """
    - name: broken
      calendar: ofice
      targets: {first_response: soon, resolve: 8h}
""")
    lines = path.read_text().splitlines()
    size = sum(p.stat().st_size for p in sla_store.path("events").iterdir()) if sla_store.path("events").exists() else 0
    proc = tix("escalate")
    assert proc.returncode == 2, proc.stderr
    cal_line = next(i for i, ln in enumerate(lines, 1) if "calendar: ofice" in ln)
    tgt_line = next(i for i, ln in enumerate(lines, 1) if "first_response: soon" in ln)
    err = proc.stderr
    assert f"tix.yaml:{cal_line}: sla policy 'broken': unknown calendar 'ofice' (did you mean 'office'?)" in err
    assert f"tix.yaml:{tgt_line}: sla policy 'broken': target first_response is not a duration: 'soon'" in err
    assert f"tix.yaml:{tgt_line}: sla policy 'broken': unknown target 'resolve'" in err
    after = (sum(p.stat().st_size for p in sla_store.path("events").iterdir())
             if sla_store.path("events").exists() else 0)
    assert after == size
    check = tix("config", "check")
    assert check.returncode == 2 and "unknown calendar 'ofice'" in check.stderr


def test_saved_state_is_rebuilt_when_missing_or_the_log_was_rewritten(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    meta = orjson.loads(sla_store.path("snapshot", "sla", "sla-meta.json").read_bytes())
    meta["seq"] += 5  # as if the log had been rewritten (an erasure) under the saved position
    sla_store.path("snapshot", "sla", "sla-meta.json").write_bytes(orjson.dumps(meta))
    assert escalate(sla_store, now=jkt(2026, 11, 23, 10, 5)).cold
    for p in sla_store.path("snapshot", "sla").glob("sla-*"):
        p.unlink()
    report = escalate(sla_store, now=jkt(2026, 11, 23, 10, 10))
    assert report.cold and sla_rows(sla_store, n)["first_response"]["state"] == "ok"


def test_state_survives_a_snapshot_refresh_and_the_next_run_is_incremental(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    sla_store.refresh_snapshot()
    timeline.reply(n, jkt(2026, 11, 23, 10, 30))
    report = escalate(sla_store, now=jkt(2026, 11, 23, 11, 0))
    assert not report.cold and report.clocks == 2  # only the open ticket's clocks were computed
    assert sla_rows(sla_store, n)["first_response"]["state"] == "met"


def test_cli_sla_explains_the_arithmetic(sla_store, timeline, tix):
    n = timeline.create(jkt(2026, 3, 17, 16, 0))  # the eve of Nyepi and Idul Fitri
    timeline.status(n, jkt(2026, 3, 17, 16, 30), "pending")
    timeline.customer(n, jkt(2026, 3, 17, 16, 45))
    proc = tix("sla", str(n), "--now", "2026-03-25T10:00:00+07:00", check=0)
    out = proc.stdout
    assert f"Ticket #{n} (pending); policy: normal; times in Asia/Jakarta" in out
    assert "first response: OK  target 8h00m on calendar office" in out
    assert "due       Wed 2026-03-25 16:15" in out
    assert "used      2h45m business time; left 5h15m" in out
    assert "counted   Tue 2026-03-17 16:00 - 16:30  30m" in out
    assert "counted   Tue 2026-03-17 16:45 - 17:00  15m" in out
    assert "paused    Tue 2026-03-17 16:30 - Tue 2026-03-17 16:45  (15m of business time not counted)" in out
    assert "skipped   Wed 2026-03-18" in out and "skipped   Tue 2026-03-24" in out
    assert "skipped   Thu 2026-03-19  Hari Suci Nyepi" in out  # holiday names in the site's locale (id)
    js = orjson.loads(tix("sla", str(n), "--now", "2026-03-25T10:00:00+07:00", "-f", "json", check=0).stdout)
    fr = js["clocks"][0]
    assert fr["target"] == "first_response" and fr["business_seconds_used"] == 2.75 * 3600
    assert tix("sla", "99999").returncode == 1


def test_cli_escalate_dry_run_lists_actions(sla_store, timeline, tix):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    proc = tix("escalate", "--dry-run", "--now", "2026-11-25T09:00:00+07:00", check=0)
    assert f"{n}" in proc.stdout and "step breach: raise priority; assignee=ani" in proc.stdout
    assert not list(sla_store.path("snapshot", "sla").glob("sla-*"))
    quiet = tix("escalate", "--now", "2026-11-25T09:00:00+07:00", check=0)
    assert quiet.stdout == "" and quiet.stderr == ""  # silent on success (cron)


def test_cli_escalate_lists_at_most_a_screenful_of_actions_as_a_table(sla_store, timeline, tix):
    """Issue 16: a first run on a big store plans hundreds of thousands of actions; -v and
    --dry-run list the first SHOWN as a table, then a count per action and how many were left
    out. csv and json still list every one."""
    from tix.cli.sla import SHOWN

    numbers = [timeline.create(jkt(2026, 11, 23, 9, i)) for i in range(30)]
    now = "2026-11-25T09:00:00+07:00"
    every = tix("escalate", "--dry-run", "--now", now, "-f", "csv", check=0).stdout.splitlines()[1:]
    assert len(every) > SHOWN and {int(line.split(",")[0]) for line in every} == set(numbers)
    out = tix("escalate", "--dry-run", "--now", now, check=0).stdout
    listed = [line for line in out.splitlines() if line.split()[1:2] == ["normal"]]  # table rows
    assert len(listed) == SHOWN
    assert f"{len(every) - SHOWN} more actions not listed ({len(every)} in all)" in out
    assert "       30  normal: step breach: raise priority; assignee=ani" in out
    verbose = tix("-v", "escalate", "--now", now, check=0).stdout
    assert f"{len(every) - SHOWN} more actions not listed ({len(every)} in all)" in verbose


def test_done_parts_are_compacted_and_rows_stay_current(sla_store, timeline, monkeypatch):
    from tix.sla import state

    monkeypatch.setattr(state, "MAX_DONE_PARTS", 2)
    numbers = []
    for i in range(5):
        n = timeline.create(jkt(2026, 11, 23, 9, i))
        timeline.status(n, jkt(2026, 11, 23, 10, i), "resolved")
        numbers.append(n)
        escalate(sla_store, now=jkt(2026, 11, 23, 11, i))
    timeline.status(numbers[0], jkt(2026, 11, 23, 12, 0), "open")  # reopened: back in the live part
    escalate(sla_store, now=jkt(2026, 11, 23, 12, 30))
    meta = orjson.loads(sla_store.path("snapshot", "sla", "sla-meta.json").read_bytes())
    assert len(meta["done"]) <= 3
    rows = sla_store.connect().execute(
        "SELECT ticket, state FROM sla WHERE target = 'resolution' ORDER BY ticket").fetchall()
    assert rows == [(numbers[0], "ok")] + [(n, "met") for n in numbers[1:]]


def test_without_sla_config_escalate_does_nothing_and_sla_explains_why(store, tix):
    from tests.plugins.sla import Timeline

    n = Timeline(store).create(jkt(2026, 11, 23, 9, 0))
    report = escalate(store, now=jkt(2026, 11, 25, 9, 0))
    # no policy: nothing is computed at all (the open tickets are not even counted)
    assert report.unwatched and report.planned == [] and report.clocks == 0 and report.open_tickets == 0
    out = tix("sla", str(n), check=0).stdout
    assert out.startswith(f"Ticket #{n} (new); policy: (none matches)")


def test_an_out_of_office_reply_does_not_resume_a_pending_clock(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(n, jkt(2026, 11, 23, 9, 10))
    timeline.status(n, jkt(2026, 11, 23, 9, 20), "pending")
    timeline.emit("message.received", n, jkt(2026, 11, 23, 9, 21), {"text": "Out of office", "auto": True})
    escalate(sla_store, now=jkt(2026, 11, 23, 12, 0))
    rows = sla_rows(sla_store, n)
    assert rows["resolution"]["state"] == "paused"
    assert rows["resolution"]["business_seconds_used"] == pytest.approx(20 * 60)
    assert "next_response" not in rows


def test_a_torn_last_line_is_repaired_before_escalate_appends(sla_store, timeline):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    seg = sorted(sla_store.path("events").iterdir())[-1]
    with open(seg, "ab") as fh:
        fh.write(b'{"seq": 999, "ts": "2026-11-23T0')  # a crash in the middle of a write
    escalate(sla_store, now=jkt(2026, 11, 25, 9, 0))
    assert not seg.read_bytes().endswith(b'"2026-11-23T0')  # the torn line is cut off
    # escalate appends to the segment of the month it runs in, which need not be the ticket's
    lines = [line for s in sorted(sla_store.path("events").iterdir()) for line in s.read_bytes().splitlines()]
    assert all(orjson.loads(line)["seq"] for line in lines)  # every line whole
    assert any(b'"type":"sla.step"' in line and str(n).encode() in line for line in lines)
    assert list(sla_store.path("quarantine").iterdir())
