"""`tix rules check` and the refusal of `tix route` on invalid rules: exact messages, exit 2."""
from __future__ import annotations

import pytest

from tix.store import Store


def _check(rk, tix, text: str) -> list[str]:
    rk.rules(text, "10-bad.yaml")
    proc = tix("rules", "check")
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[-1].endswith("in rules/")
    return lines[:-1]


CASES = [
    ("""
     - name: a
       if: {subjet: {contains: refund}}
       then: [stop]
     """, "rules/10-bad.yaml:2: unknown field 'subjet' (did you mean 'subject'?); fields: channel, inbox, from, "
          "from_name, from_domain, to, cc, recipients, subject, body, text, has_attachments, attachments, language, "
          "auto, wa_type, weekday, hour, business_hours, ticket.FIELD, contact.FIELD"),
    ("""
     - name: a
       then:
         - set: {prority: high}
     """, "rules/10-bad.yaml:3: unknown field 'prority' (did you mean 'priority'?); fields: subject, status, "
          "priority, category, team, assignee, channel, inbox, contact, order_id, marketplace"),
    ("""
     - name: a
       then:
         - priority: hihg
     """, "rules/10-bad.yaml:3: invalid priority 'hihg' (did you mean 'high'?); "
          "priority is one of: low, normal, high, urgent"),
    ("""
     - name: a
       if: {body: {keywrds: [refund]}}
       then: [stop]
     """, "rules/10-bad.yaml:2: unknown operator 'keywrds' (did you mean 'keywords'?); operators: equals, in, "
          "contains, starts_with, ends_with, matches, keywords, empty"),
    ("""
     - name: a
       if: {has_attachments: {contains: x}}
       then: [stop]
     """, "rules/10-bad.yaml:2: operator 'contains' does not apply to has_attachments (a yes/no field); use: equals"),
    ("""
     - name: a
       if: {from: {matches: '(a)\\1'}}
       then: [stop]
     """, "rules/10-bad.yaml:2: from matches: regular expression '(a)\\1' uses a backreference, which needs "
          "backtracking and could hang a run; rewrite it without"),
    ("""
     - name: a
       if: {subject: {matches: '(?<!x)y'}}
       then: [stop]
     """, "rules/10-bad.yaml:2: subject matches: regular expression '(?<!x)y' uses a look-ahead or look-behind, "
          "which needs backtracking and could hang a run; rewrite it without"),
    ("""
     - name: a
       if: {subject: {matches: 'a(b'}}
       then: [stop]
     """, "rules/10-bad.yaml:2: subject matches: invalid regular expression 'a(b': missing ): a(b"),
    ("""
     - name: a
       then:
         - assign: {team: billng, strategy: round_robin}
     """, "rules/10-bad.yaml:3: unknown team 'billng' (did you mean 'billing'?); teams: billing, shipping, support"),
    ("""
     - name: a
       then:
         - assign: {team: billing, strategy: round_robbin}
     """, "rules/10-bad.yaml:3: unknown assign strategy 'round_robbin' (did you mean 'round_robin'?); "
          "strategies: round_robin, least_loaded, skill"),
    ("""
     - name: a
       then:
         - assign: budy
     """, "rules/10-bad.yaml:3: unknown agent 'budy' (did you mean 'budi'?); agents: ani, budi, citra, dewa"),
    ("""
     - name: a
       then:
         - tagg: [x]
     """, "rules/10-bad.yaml:3: unknown action 'tagg' (did you mean 'tag'?); actions: set, tag, untag, assign, "
          "auto_reply, notify, stop, category, priority, team, status"),
    ("""
     - name: a
       then:
         - auto_reply: auto_reply_recieved.txt.j2
     """, "rules/10-bad.yaml:3: template 'auto_reply_recieved.txt.j2' not found in templates/ "
          "(did you mean 'auto_reply_received.txt.j2'?)"),
    ("""
     - name: a
       when: sometimes
       then: [stop]
     """, "rules/10-bad.yaml:2: rule 'a': when must be one of new, reply, any, got 'sometimes'"),
    ("""
     - name: a
       then:
         - notify: {webhook: "ftp://x"}
     """, "rules/10-bad.yaml:3: notify webhook must be an http(s) URL or env:VARIABLE holding one (got ftp:…)"),
    ("""
     - name: a
       then:
         - notify: {webhook: "https://ops:s3cret-pw@hooks.example.com/T0/B0"}
     """, "rules/10-bad.yaml:3: notify webhook https://hooks.example.com/…: a user:password@ in the URL would be "
          "stored in the event log; put the URL in an environment variable and write env:NAME"),
    ("""
     - name: a
       iff: {channel: email}
       then: [stop]
     """, "rules/10-bad.yaml:2: unknown rule key 'iff' (did you mean 'if'?); "
          "keys: name, description, when, if, then, stop, enabled"),
    ("""
     - name: a
       if: {hour: {between: [8]}}
       then: [stop]
     """, "rules/10-bad.yaml:2: hour between: 'between' takes two numbers [LOW, HIGH] (HIGH excluded)"),
    ("""
     - name: a
       if: {weekday: senen}
       then: [stop]
     """, "rules/10-bad.yaml:2: weekday equals: unknown weekday 'senen' (did you mean 'senin'?); use mon, tue, … sun"),
    ("""
     - name: a
       if: {ticket.prio: high}
       then: [stop]
     """, "rules/10-bad.yaml:2: unknown ticket field 'prio' (did you mean 'priority'?); ticket fields: subject, "
          "status, priority, category, team, assignee, tags, channel, inbox, messages_in, messages_out, notes, "
          "reopened, number, order_id, marketplace"),
    ("""
     - name: a
       then:
     - name: a
       then: [stop]
     """, "rules/10-bad.yaml:1: rule 'a' has no actions ('then:')"),
    ("""
     - name: a
       if: {subject: x}
       then: [stop
     """, "rules/10-bad.yaml:4: YAML syntax error: did not find expected ',' or ']'"),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[1].split(": ", 1)[1][:40] for c in CASES])
def test_each_problem_has_its_exact_message(rk, tix, text, expected):
    assert _check(rk, tix, text)[0] == expected


def test_every_problem_is_reported_at_once_and_duplicates_named(rk, tix):
    lines = _check(rk, tix, """
        - name: one
          if: {subjet: x}
          then: [stop]
        - name: two
          then:
            - prority: high
        - name: one
          then: [stop]
        """)
    assert lines == [
        "rules/10-bad.yaml:2: unknown field 'subjet' (did you mean 'subject'?); fields: channel, inbox, from, "
        "from_name, from_domain, to, cc, recipients, subject, body, text, has_attachments, attachments, language, "
        "auto, wa_type, weekday, hour, business_hours, ticket.FIELD, contact.FIELD",
        "rules/10-bad.yaml:6: unknown action 'prority' (did you mean 'priority'?); actions: set, tag, untag, assign, "
        "auto_reply, notify, stop, category, priority, team, status",
        "rules/10-bad.yaml:7: duplicate rule name 'one' (first defined at rules/10-bad.yaml:1)",
    ]


def test_broken_template_is_reported_with_its_own_line(rk, tix):
    rk.template("rules_broken.txt.j2", "Halo\n{{ ticket.ref \n")
    lines = _check(rk, tix, """
        - name: a
          then:
            - auto_reply: rules_broken.txt.j2
        """)
    assert lines == ["rules/10-bad.yaml:3: template 'rules_broken.txt.j2' does not compile: "
                     "templates/rules_broken.txt.j2:2: unexpected end of template, expected 'end of print statement'."]


def test_route_refuses_invalid_rules_and_writes_nothing(rk, tix):
    number = rk.message(subject="Refund please")
    before = rk.store.path("events").joinpath(rk.store.log.segments()[-1]).read_bytes()
    rk.rules("""
        - name: a
          then:
            - set: {prority: high}
        """)
    proc = tix("route")
    assert proc.returncode == 2
    assert proc.stderr.startswith("rules/50-test.yaml:3: unknown field 'prority' (did you mean 'priority'?)")
    assert rk.store.path("events").joinpath(rk.store.log.segments()[-1]).read_bytes() == before
    assert Store(rk.store.root).read().ticket(number)["routed_seq"] == 0


def test_the_shipped_example_rules_are_valid(store, tix):
    proc = tix("-v", "rules", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "14 rules OK (regular expressions: re2, linear time)\n"
    assert sorted(p.name for p in store.path("rules").iterdir()) == [
        "10-saring.yaml", "20-kategori.yaml", "30-pelanggan.yaml", "40-penugasan.yaml", "50-balasan-otomatis.yaml"]


def test_check_is_silent_on_success(rk, tix):
    rk.rules("""
        - name: a
          if: {channel: email}
          then: [stop]
        """)
    proc = tix("rules", "check")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
