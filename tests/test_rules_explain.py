"""`tix route --explain N` and `tix rules test MESSAGE`: which rules matched and why."""
from __future__ import annotations

import json
from datetime import datetime, timezone

RULES = """
- name: robots
  if:
    any:
      - auto: true
      - from: {matches: '^no-?reply@'}
  then: [{tag: [otomatis]}]
  stop: true
- name: refund
  if:
    all:
      - channel: email
      - text: {keywords: [refund, pengembalian dana]}
  then:
    - set: {category: refund, priority: high}
- name: replies
  when: reply
  then: [{tag: [balasan]}]
- name: ack
  if: {channel: email}
  then:
    - auto_reply: auto_reply_received.txt.j2
"""

AT = datetime(2026, 11, 24, 3, 15, tzinfo=timezone.utc)  # Tue 10:15 WIB


def test_explain_a_routed_ticket(rk, tix):
    rk.rules(RULES)
    n = rk.message(sender="rina@example.com", subject="Minta refund", text="pesanan INV-1", at=AT)
    tix("route", check=0)
    proc = tix("route", "--explain", str(n), check=0)
    assert proc.stdout.splitlines() == [
        f"Ticket #{n}: new ticket, email from rina@example.com, arrived Tue 2026-11-24 10:15 WIB (business hours); "
        "routed (showing its last routing)",
        "rules/50-test.yaml:1 robots: no match",
        "  - any",
        "    - auto equals True: value False",
        "    - from matches '^no-?reply@': value 'rina@example.com'",
        "rules/50-test.yaml:8 refund: MATCH",
        "  + all",
        "    + channel equals 'email': value 'email'",
        "    + text keywords ['refund', 'pengembalian dana']: found ['refund']",
        "  -> set category=refund, priority=high",
        "rules/50-test.yaml:15 replies: skipped (when: reply; this is a new ticket)",
        "rules/50-test.yaml:18 ack: MATCH",
        "  + channel equals 'email': value 'email'",
        "  -> no auto-reply: rule ack already auto-replied on this ticket",
    ]


def test_explain_a_ticket_not_yet_routed_shows_the_stop(rk, tix):
    rk.rules(RULES)
    n = rk.message(sender="noreply@bank.co.id", subject="refund", at=AT)
    proc = tix("route", "--explain", f"#{n}", check=0)
    assert proc.stdout.splitlines() == [
        f"Ticket #{n}: new ticket, email from noreply@bank.co.id, arrived Tue 2026-11-24 10:15 WIB (business hours); "
        "not routed yet",
        "rules/50-test.yaml:1 robots: MATCH",
        "  + any",
        "    - auto equals True: value False",
        "    + from matches '^no-?reply@': value 'noreply@bank.co.id'",
        "  -> tag +otomatis",
        "  -> stop",
        "rules/50-test.yaml:8 refund: not evaluated (rule 'robots' stopped)",
        "rules/50-test.yaml:15 replies: not evaluated (rule 'robots' stopped)",
        "rules/50-test.yaml:18 ack: not evaluated (rule 'robots' stopped)",
    ]
    assert rk.events("ticket.tagged") == [] and rk.ticket(n)["routed_seq"] == 0  # explain writes nothing


def test_explain_unknown_ticket(rk, tix):
    proc = tix("route", "--explain", "999")
    assert (proc.returncode, proc.stderr) == (1, "Error: ticket #999 not found\n")


EML = (b"From: Pelanggan Setia <setia@example.com>\r\nTo: support@toko.co.id\r\n"
       b"Subject: Pengembalian dana pesanan\r\nDate: Tue, 24 Nov 2026 21:05:00 +0700\r\n"
       b"Message-ID: <abc@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
       b"Tolong proses pengembalian dana saya.\r\n")


def test_rules_test_with_an_eml_touches_nothing(rk, tix, tmp_path):
    rk.rules(RULES)
    path = tmp_path / "pesan.eml"
    path.write_bytes(EML)
    proc = tix("rules", "test", str(path), check=0)
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"{path}: new ticket, email from setia@example.com, arrived Tue 2026-11-24 21:05 WIB "
                        "(outside business hours)")
    assert "rules/50-test.yaml:8 refund: MATCH" in lines
    assert "    + text keywords ['refund', 'pengembalian dana']: found ['pengembalian dana']" in lines
    assert "  -> set category=refund, priority=high" in lines
    assert lines[-1] == "  -> auto-reply auto_reply_received.txt.j2 to setia@example.com queued"
    assert rk.store.log.segments() == []  # nothing written


def test_rules_test_auto_submitted_eml_gets_no_auto_reply(rk, tix, tmp_path):
    rk.rules(RULES.replace("      - auto: true\n", "      - subject: {equals: never}\n"))
    path = tmp_path / "ooo.eml"
    path.write_bytes(EML.replace(b"Subject: Pengembalian dana pesanan", b"Subject: Out of office\r\n"
                                 b"Auto-Submitted: auto-replied"))
    lines = tix("rules", "test", str(path), check=0).stdout.splitlines()
    # the reason as email intake records it: `rules test` parses with intake's parser
    assert lines[-1] == "  -> no auto-reply: message is auto-generated (auto-submitted:auto-replied)"


def test_rules_test_with_a_whatsapp_webhook_payload(rk, tix, tmp_path):
    rk.rules("""
        - name: after-hours-wa
          when: any
          if:
            all:
              - channel: whatsapp
              - business_hours: false
              - inbox: "6281100001111"
          then: [{tag: [diluar-jam]}]
        """)
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "6281100001111", "phone_number_id": "99"},
        "contacts": [{"profile": {"name": "Joko"}, "wa_id": "6281234567890"}],
        "messages": [{"from": "6281234567890", "id": "wamid.X", "timestamp": str(int(datetime(
            2026, 11, 24, 14, 0, tzinfo=timezone.utc).timestamp())),
            "type": "text", "text": {"body": "Halo kak"}}]}}]}]}
    path = tmp_path / "wa.json"
    path.write_text(json.dumps(payload))
    lines = tix("rules", "test", str(path), check=0).stdout.splitlines()
    assert lines == [
        f"{path}: new ticket, whatsapp from 6281234567890, arrived Tue 2026-11-24 21:00 WIB (outside business hours)",
        "rules/50-test.yaml:1 after-hours-wa: MATCH",
        "  + all",
        "    + channel equals 'whatsapp': value 'whatsapp'",
        "    + business_hours equals False: value False",
        "    + inbox equals '6281100001111': value '6281100001111'",
        "  -> tag +diluar-jam",
    ]
    # --at moves the arrival into business hours
    lines = tix("rules", "test", str(path), "--at", "2026-11-24T10:00", check=0).stdout.splitlines()
    assert lines[1] == "rules/50-test.yaml:1 after-hours-wa: no match"


def test_rules_test_with_message_fields_json_and_reply(rk, tix, tmp_path):
    rk.rules(RULES)
    path = tmp_path / "msg.json"
    path.write_text(json.dumps({"channel": "email", "from": "a@b.example", "subject": "hi", "text": "refund"}))
    lines = tix("rules", "test", "--reply", str(path), check=0).stdout.splitlines()
    assert "rules/50-test.yaml:8 refund: skipped (when: new; this is a reply)" in lines
    assert "rules/50-test.yaml:15 replies: MATCH" in lines
