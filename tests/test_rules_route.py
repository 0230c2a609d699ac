"""`tix route`: conditions, actions as events by `rule:NAME`, routed marks, idempotency, dry run."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from tix import rules
from tix.store import Store

CLASSIFY = """
- name: refund
  if:
    text: {keywords: [refund, pengembalian dana]}
  then:
    - set: {category: refund, team: billing, priority: high}
    - tag: [refund]
- name: urgent
  when: any
  if:
    text: {keywords: [mendesak, urgent]}
  then:
    - priority: urgent
"""


def test_route_applies_actions_as_rule_events_and_marks_routed(rk, tix):
    rk.rules(CLASSIFY)
    n = rk.message(subject="Minta PENGEMBALIAN   Dana", text="pesanan INV-1")
    other = rk.message(subject="Halo", text="apa kabar")
    proc = tix("route")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    t = rk.ticket(n)
    assert (t["category"], t["team"], t["priority"], list(t["tags"])) == ("refund", "billing", "high", ["refund"])
    assert t["routed_seq"] == t["intake_seq"]
    evs = [e for e in rk.events(ticket=n) if e["actor"].startswith("rule:") or e["type"] == "ticket.routed"]
    assert [(e["type"], e["actor"], e["via"]) for e in evs] == [
        ("ticket.updated", "rule:refund", "tix route"),
        ("ticket.tagged", "rule:refund", "tix route"),
        ("ticket.routed", "system", "tix route"),
    ]
    assert evs[0]["data"] == {"set": {"category": "refund", "team": "billing", "priority": "high"},
                              "old": {"category": None, "team": None, "priority": "normal"}}
    assert evs[0]["why"] == "rule refund (rules/50-test.yaml:1)"
    assert evs[2]["data"] == {"upto": t["intake_seq"], "rules": ["refund"]}
    assert rk.ticket(other)["category"] is None
    assert rk.ticket(other)["routed_seq"] == rk.ticket(other)["intake_seq"]


def test_running_twice_changes_nothing(rk, tix):
    rk.rules(CLASSIFY)
    rk.message(subject="refund")
    tix("route", check=0)
    log = b"".join(p.read_bytes() for p in sorted(rk.store.path("events").iterdir()))
    proc = tix("-v", "route", check=0)
    assert proc.stdout == "routed 0 tickets, 0 events\n"
    assert b"".join(p.read_bytes() for p in sorted(rk.store.path("events").iterdir())) == log


def test_a_reply_is_routed_with_when_reply_rules_only(rk):
    rk.rules(CLASSIFY)
    n = rk.message(subject="Pertanyaan", text="halo")
    rules.route(rk.store)
    assert rk.ticket(n)["priority"] == "normal"
    rk.message(n, subject="Re: Pertanyaan", text="ini URGENT ya, juga refund")
    res = rules.route(Store(rk.store.root))
    assert res.routed == 1
    t = rk.ticket(n)
    assert t["priority"] == "urgent"  # `urgent` is when: any
    assert t["category"] is None  # `refund` is when: new only
    assert t["routed_seq"] == t["intake_seq"]


def test_keywords_whole_words_accents_and_all(rk):
    rk.rules("""
        - name: cafe
          if: {body: {keywords: [café]}}
          then: [{tag: [cafe]}]
        - name: both
          if: {body: {keywords: {all: [paket, rusak]}}}
          then: [{tag: [both]}]
        - name: phrase
          if: {subject: {keywords: ["J&T express"]}}
          then: [{tag: [jt]}]
        """)
    a = rk.message(text="Saya di CAFE sekarang")
    b = rk.message(text="refunded cafeteria")  # not whole words
    c = rk.message(text="Paket datang dalam keadaan rusak!")
    d = rk.message(text="paket oke")
    e = rk.message(subject="kirim pakai j&t  EXPRESS ya")
    rules.route(rk.store)
    tags = {n: list(rk.ticket(n)["tags"]) for n in (a, b, c, d, e)}
    assert tags == {a: ["cafe"], b: [], c: ["both"], d: [], e: ["jt"]}


def test_conditions_fields_operators_and_combinators(rk):
    cid = rk.contact("boss@partner.co.id", tier="vip")
    rk.rules("""
        - name: vip
          if:
            any:
              - contact.tier: vip
              - from_domain: [tokomitra.co.id]
          then: [{tag: [vip]}]
        - name: not-email
          if:
            not: {channel: email}
          then: [{tag: [non-email]}]
        - name: invoice
          if:
            all:
              - subject: {matches: 'INV-[0-9]{4}'}
              - has_attachments: true
          then: [{tag: [invoice]}]
        - name: starts
          if: {subject: {starts_with: ["re:", "fwd:"]}}
          then: [{tag: [forwarded]}]
        - name: recipients
          if: {recipients: {contains: "billing@"}}
          then: [{tag: [to-billing]}]
        """)
    vip = rk.message(sender="boss@partner.co.id", contact=cid, subject="Halo")
    dom = rk.message(sender="x@TokoMitra.co.id", subject="Halo")
    wa = rk.message(channel="whatsapp", sender="62811", subject="")
    inv = rk.message(subject="Bukti INV-2026", attachments=["bukti.pdf"])
    inv_no_att = rk.message(subject="Bukti INV-2026")
    fwd = rk.message(subject="FWD: pesanan", cc=["billing@toko.co.id"])
    rules.route(rk.store)
    tags = {n: list(rk.ticket(n)["tags"]) for n in (vip, dom, wa, inv, inv_no_att, fwd)}
    assert tags == {vip: ["vip"], dom: ["vip"], wa: ["non-email"], inv: ["invoice"], inv_no_att: [],
                    fwd: ["forwarded", "to-billing"]}


def test_arrival_time_conditions_use_the_site_time_zone(rk):
    rk.rules("""
        - name: after-hours
          if: {business_hours: false}
          then: [{tag: [after-hours]}]
        - name: weekend
          if: {weekday: [sabtu, minggu]}
          then: [{tag: [weekend]}]
        - name: night
          if: {hour: {between: [20, 6]}}
          then: [{tag: [night]}]
        """)
    # Tuesday 2026-11-24: 02:00 UTC = 09:00 WIB (inside), 14:00 UTC = 21:00 WIB (outside, night)
    inside = rk.message(at=datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc))
    night = rk.message(at=datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc))
    saturday = rk.message(at=datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc))
    rules.route(rk.store)
    assert list(rk.ticket(inside)["tags"]) == []
    assert list(rk.ticket(night)["tags"]) == ["after-hours", "night"]
    assert list(rk.ticket(saturday)["tags"]) == ["after-hours", "weekend"]


def test_stop_ends_the_rules_for_that_message(rk):
    rk.rules("""
        - name: noreply
          if: {from: {matches: '^no-?reply@'}}
          then: [{tag: [otomatis]}]
          stop: true
        - name: everything
          then: [{tag: [seen]}]
        """)
    robot = rk.message(sender="noreply@bank.co.id")
    person = rk.message(sender="rina@example.com")
    rules.route(rk.store)
    assert list(rk.ticket(robot)["tags"]) == ["otomatis"]
    assert list(rk.ticket(person)["tags"]) == ["seen"]


def test_later_rules_see_fields_set_by_earlier_ones(rk):
    rk.rules("""
        - name: classify
          if: {subject: {contains: refund}}
          then: [{set: {category: refund, order_id: INV-1}}]
        - name: by-category
          if:
            all:
              - ticket.category: refund
              - ticket.order_id: INV-1
          then: [{team: billing}]
        """)
    n = rk.message(subject="Refund")
    rules.route(rk.store)
    t = rk.ticket(n)
    assert (t["category"], t["team"], orjson.loads(t["fields"])) == ("refund", "billing", {"order_id": "INV-1"})


def test_dry_run_writes_nothing_and_shows_the_plan(rk, tix):
    rk.rules(CLASSIFY)
    n = rk.message(subject="refund please")
    before = [p.read_bytes() for p in sorted(rk.store.path("events").iterdir())]
    proc = tix("route", "--dry-run", check=0)
    assert proc.stdout.splitlines() == [
        "ticket    rule    action",
        "--------  ------  ------------------------------------------------",
        f"#{n}        refund  set category=refund, team=billing, priority=high",
        f"#{n}        refund  tag +refund",
        "dry run: would route 1 tickets with 3 events; nothing written",
    ]
    assert [p.read_bytes() for p in sorted(rk.store.path("events").iterdir())] == before
    assert rk.ticket(n)["routed_seq"] == 0


def test_reroute_applies_rules_again_to_routed_tickets(rk, tix):
    n = rk.message(subject="refund")
    tix("route", check=0)  # no rules yet: routed, nothing changed
    assert rk.ticket(n)["category"] is None
    rk.rules(CLASSIFY)
    tix("route", check=0)
    assert rk.ticket(n)["category"] is None  # already routed
    tix("route", "--reroute", str(n), check=0)
    assert rk.ticket(n)["category"] == "refund"


def _broken_rule(rk, more: str) -> None:
    """Rule `broken` (rules/50-test.yaml:1), whose auto-reply template fails on every email
    ticket, followed by the rules in `more`."""
    rk.template("rules_bad_runtime.txt.j2", "{{ ticket.number + 'x' }}\n")
    rk.rules("""
        - name: broken
          if: {channel: email}
          then:
            - auto_reply: rules_bad_runtime.txt.j2
""" + more.lstrip("\n"))


def test_a_failing_rule_is_recorded_and_the_run_goes_on(rk, tix):
    _broken_rule(rk, """
        - name: tagger
          then: [{tag: [seen]}]
        """)
    a = rk.message(subject="one")
    b = rk.message(subject="two")
    proc = tix("route")
    assert proc.returncode == 1
    # one line for the rule and its error, naming the tickets (each has its rule.failed event)
    assert proc.stderr.splitlines() == [
        f"rules/50-test.yaml:1: rule 'broken' failed on 2 tickets (#{a}, #{b}): TypeError: "
        "unsupported operand type(s) for +: 'int' and 'str'"]
    for n in (a, b):
        assert list(rk.ticket(n)["tags"]) == ["seen"]
        assert rk.ticket(n)["routed_seq"] == rk.ticket(n)["intake_seq"]
    failed = rk.events("rule.failed")
    assert [(e["ticket"], e["actor"]) for e in failed] == [(a, "rule:broken"), (b, "rule:broken")]
    assert tix("route").returncode == 0  # the next run does not trip on them again


def test_a_rule_failing_the_same_way_on_many_tickets_says_so_once(rk, tix):
    """A rule that cannot act fails the same way on every ticket: on a first route over an old
    store that was one line per ticket (100,000s of lines in cron's mail). Now one line per rule
    and error, with a count and the first tickets; a single ticket keeps its own line."""
    rk.template("rules_bad_division.txt.j2", "{{ ticket.number / 0 }}\n")
    _broken_rule(rk, """
        - name: picky
          if: {subject: lonely}
          then:
            - auto_reply: rules_bad_division.txt.j2
        """)
    numbers = [rk.message(subject=f"m{i}") for i in range(8)]
    lonely = rk.message(subject="lonely")
    proc = tix("route")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    shown = ", ".join(f"#{n}" for n in numbers[:5])
    assert lines[0] == (f"rules/50-test.yaml:1: rule 'broken' failed on 9 tickets ({shown} and 4 more): "
                        "TypeError: unsupported operand type(s) for +: 'int' and 'str'")
    assert len(lines) == 2 and lines[1].startswith(f"rules/50-test.yaml:5: rule 'picky' failed on ticket #{lonely}: ")
    assert sorted(e["ticket"] for e in rk.events("rule.failed") if e["actor"] == "rule:broken") == numbers + [lonely]


def test_notify_queues_once_and_never_shows_a_webhook_token(rk, tix):
    rk.rules("""
        - name: vip
          when: any
          if: {from_domain: tokomitra.co.id}
          then:
            - notify: {webhook: "https://hooks.example/services/T0K3N", subject: "VIP {{ ticket.ref }}"}
            - notify: {email: assignee, subject: "x"}
        """)
    n = rk.message(sender="owner@tokomitra.co.id")
    proc = tix("-v", "route", check=0)
    assert proc.stdout.splitlines()[:2] == [
        f"#{n} vip: notify webhook https://hooks.example/… queued",
        f"#{n} vip: no notification: assignee has no email address",
    ]
    assert "T0K3N" not in proc.stdout + proc.stderr
    queued = rk.events("outbox.queued")
    assert [(e["actor"], e["data"]["kind"], e["data"]["target"], e["data"]["subject"]) for e in queued] == [
        ("rule:vip", "webhook", "https://hooks.example/services/T0K3N", f"VIP #{n}")]
    tix("route", "--reroute", str(n), check=0)
    assert len(rk.events("outbox.queued")) == 1  # the same message never notifies twice


def test_routing_reads_messages_from_the_snapshot_as_well_as_the_tail(rk):
    """After `tix rebuild` the intake events are no longer in the tail: they are scanned from the log."""
    rk.rules(CLASSIFY)
    a = rk.message(subject="refund please", text="x")
    b = rk.message(subject="halo", text="ini mendesak")
    Store(rk.store.root).rebuild()
    assert Store(rk.store.root).read().tail == []
    res = rules.route(Store(rk.store.root))
    assert res.routed == 2
    assert (rk.ticket(a)["category"], rk.ticket(b)["priority"]) == ("refund", "urgent")
    rk.message(b, subject="Re: halo", text="refund juga")  # a reply, in the tail again
    res = rules.route(Store(rk.store.root))
    assert (res.routed, rk.ticket(b)["category"]) == (1, None)


def test_business_hours_follow_the_declared_calendar_and_its_holidays(rk):
    cfg = rk.store.path("tix.yaml")
    cfg.write_text(cfg.read_text() + """
calendars:
  office:
    timezone: Asia/Jakarta
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["09:00-13:00"]
    holidays: false
    dates:
      "2026-12-25": closed
""")
    rk.rules("""
        - name: after-hours
          if: {business_hours: false}
          then: [{tag: [after-hours]}]
        """)
    lunch = rk.message(at=datetime(2026, 11, 24, 5, 30, tzinfo=timezone.utc))  # Tue 12:30 WIB
    saturday = rk.message(at=datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc))  # Sat 10:00 WIB
    christmas = rk.message(at=datetime(2026, 12, 25, 3, 0, tzinfo=timezone.utc))  # Fri 10:00 WIB, closed
    morning = rk.message(at=datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc))  # Tue 09:00 WIB
    rules.route(Store(rk.store.root))
    tags = {n: list(rk.ticket(n)["tags"]) for n in (lunch, saturday, christmas, morning)}
    assert tags == {lunch: ["after-hours"], saturday: [], christmas: ["after-hours"], morning: []}


def test_new_tickets_after_the_snapshot_are_routed_from_the_tail_without_reading_the_log(rk, monkeypatch):
    """Issue 16 (growth): a ticket never routed has cutoff 0, which sent every run with a new
    ticket to scan the whole log from its first segment; a ticket created in the tail has all
    its events there. A ticket routed before the snapshot still reads its reply from the log."""
    from tix.rules import engine

    rk.rules(CLASSIFY)
    old = rk.message(subject="halo", text="x")
    rules.route(Store(rk.store.root))
    Store(rk.store.root).rebuild()
    a = rk.message(subject="refund please", text="x")
    b = rk.message(subject="halo", text="ini mendesak")
    scanned = []
    real = engine._segments_after
    monkeypatch.setattr(engine, "_segments_after", lambda store, seq: scanned.append(seq) or real(store, seq))
    res = rules.route(Store(rk.store.root))
    assert (res.routed, scanned) == (2, [])
    assert (rk.ticket(a)["category"], rk.ticket(b)["priority"]) == ("refund", "urgent")
    rk.message(old, subject="Re: halo", text="refund juga")  # routed before the snapshot: the log
    Store(rk.store.root).rebuild()
    c = rk.message(subject="refund lagi", text="y")
    rk.message(old, subject="Re: halo", text="mendesak")
    res = rules.route(Store(rk.store.root))
    assert res.routed == 2 and len(scanned) == 1
    assert (rk.ticket(c)["category"], rk.ticket(old)["priority"]) == ("refund", "urgent")


def test_a_run_over_many_tickets_routes_them_a_chunk_at_a_time_with_the_same_events(rk, tmp_path, monkeypatch):
    """Issue 16: the first route after importing a history read every pending ticket's row and
    intake events into memory at once (9.3 GB at a million tickets). Over more tickets than a
    chunk, the intake events are read from the log once into DuckDB (spilled to disk), and
    the tickets are read, routed and written a chunk at a time, as one batch: the same events
    as routing them all at once, in the same order, and the same tickets."""
    import shutil

    from tix.rules import engine

    rk.rules(CLASSIFY + """
- name: reply-tag
  when: reply
  then: [{tag: [replied]}]
""")
    numbers = [rk.message(subject=s, text=t) for s, t in [("refund please", "x"), ("halo", "ini mendesak"),
                                                          ("biasa", "y"), ("refund lagi", "URGENT"),
                                                          ("apa kabar", "z"), ("halo lagi", "w"), ("tujuh", "v")]]
    rk.message(numbers[2], subject="Re: biasa", text="refund ya")
    Store(rk.store.root).rebuild()  # the intake events are read from the log, not the tail
    copy, again = tmp_path / "copy", tmp_path / "again"
    shutil.copytree(rk.store.root, copy)
    shutil.copytree(rk.store.root, again)

    def routed(root) -> tuple[list, list]:
        store = Store(root)
        events = [(e["type"], e.get("ticket"), e["actor"], e.get("data"), e.get("why"))
                  for e, *_ in store.log.read() if e["actor"].startswith("rule:") or e["type"] == "ticket.routed"]
        rows = store.connect().execute("SELECT number, category, team, priority, tags, routed_seq = intake_seq "
                                       "FROM tickets ORDER BY number").fetchall()
        return events, rows

    res = rules.route(Store(rk.store.root))
    monkeypatch.setattr(engine, "ROUTE_CHUNK", 3)
    staged = []
    real = engine._stage_intake
    monkeypatch.setattr(engine, "_stage_intake", lambda *a: staged.append(1) or real(*a))
    res_chunked = rules.route(Store(copy))
    assert staged == [1] and res_chunked.routed == res.routed == 7 and res_chunked.events == res.events
    assert routed(copy) == routed(rk.store.root)
    events, rows = routed(copy)
    assert [r[5] for r in rows] == [True] * 7 and sum(e[0] == "ticket.routed" for e in events) == 7
    assert rules.route(Store(copy)).routed == 0  # and running it again changes nothing
    # `tix -v route`: each committed chunk's lines are handed over and let go, not held to the end
    chunks = []
    res_said = rules.route(Store(again), record=True, on_lines=lambda lines: chunks.append(list(lines)))
    assert len(chunks) >= 2
    assert all({ln.ticket for ln in c} <= set(numbers[i * 3:i * 3 + 3]) for i, c in enumerate(chunks))
    assert [ln for c in chunks for ln in c] + res_said.lines == res.lines and res.lines
