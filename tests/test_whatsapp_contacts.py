"""One customer across email and WhatsApp: `tix contact list|show|link|merge`."""
from __future__ import annotations

import json

import orjson

from tests.plugins.whatsapp import spool, text_payload
from tix.ingest import fetch_spool


def setup_two(wa_store, tix):
    tix("new", "Refund INV-1001", "--channel", "email", "--email", "sari@example.com", "--name", "Sari", check=0)
    spool(wa_store, text_payload("wamid.S1", "Halo, ini Sari, soal refund", wa_id="6281234567890", name="Sari W",
                                 user_id="ID.42"))
    fetch_spool(wa_store)
    return 1, 2  # email contact 1, WhatsApp contact 2


def test_merge_moves_identifiers_and_tickets(wa_store, tix):
    email_c, wa_c = setup_two(wa_store, tix)
    proc = tix("contact", "merge", str(wa_c), str(email_c), "--why", "same customer")
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    reader = wa_store.read()
    kept = reader.contact(email_c)
    assert kept["emails"] == ["sari@example.com"] and kept["phones"] == ["6281234567890"]
    assert json.loads(kept["fields"])["wa_user_id"] == "ID.42"
    assert reader.contact(wa_c)["merged_into"] == email_c
    assert [dict(reader.ticket(n))["contact"] for n in (1, 2)] == [email_c, email_c]
    merged = [orjson.loads(r) for r, _s, _o in wa_store.log.read_raw() if b"contact.merged" in r]
    assert (merged[0]["contact"] == wa_c and merged[0]["data"] == {"into": email_c}
            and merged[0]["why"] == "same customer")
    # tix show follows the one customer
    show = tix("show", "2", check=0).stdout
    assert "sari@example.com" in show and "+6281234567890" in show
    out = json.loads(tix("contact", "show", str(email_c), "--format", "json", check=0).stdout)
    assert [t["number"] for t in out["tickets"]] == [1, 2] and out["merged"] == [wa_c]
    assert {t["channel"] for t in out["tickets"]} == {"email", "whatsapp"}
    # the next WhatsApp message from her joins the kept contact (no new contact)
    spool(wa_store, text_payload("wamid.S2", "masih menunggu", wa_id="6281234567890", user_id="ID.42"))
    fetch_spool(wa_store)
    last = [orjson.loads(r) for r, _s, _o in wa_store.log.read_raw() if b"message.received" in r][-1]
    assert last["contact"] == email_c and last["ticket"] == 2


def test_link_adds_identifiers_and_refuses_conflicts(wa_store, tix):
    email_c, wa_c = setup_two(wa_store, tix)
    proc = tix("contact", "link", str(email_c), "--email", "Sari.W@Example.com", "--phone", "0812-9999-0000")
    assert proc.returncode == 0, proc.stderr
    c = wa_store.read().contact(email_c)
    assert c["emails"] == ["sari@example.com", "sari.w@example.com"] and c["phones"] == ["6281299990000"]
    proc = tix("contact", "link", str(email_c), "--wa-id", "6281234567890")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"Error: +6281234567890 belongs to contact {wa_c}; to make them one customer: "
                                   f"tix contact merge {wa_c} {email_c}")
    # a WhatsApp message to a linked number lands on that contact
    spool(wa_store, text_payload("wamid.S3", "nomor kedua", wa_id="6281299990000"))
    fetch_spool(wa_store)
    last = [orjson.loads(r) for r, _s, _o in wa_store.log.read_raw() if b"message.received" in r][-1]
    assert last["contact"] == email_c


def test_list_and_errors(wa_store, tix):
    setup_two(wa_store, tix)
    rows = json.loads(tix("contact", "list", "--format", "json", check=0).stdout)
    assert [r["id"] for r in rows] == [1, 2] and rows[1]["phones"] == ["6281234567890"]
    rows = json.loads(tix("contact", "list", "0812345", "--format", "json", check=0).stdout)
    assert [r["id"] for r in rows] == [2]
    assert tix("contact", "merge", "1", "1").returncode == 2
    proc = tix("contact", "show", "99")
    assert proc.returncode == 1 and "contact 99 not found" in proc.stderr
    tix("contact", "merge", "2", "1", check=0)
    assert "already merged" in tix("contact", "merge", "2", "1").stderr
    assert [r["id"] for r in json.loads(tix("contact", "list", "-f", "json", check=0).stdout)] == [1]


def test_config_check_reports_whatsapp_mistakes_with_lines(store, tix):
    cfg = store.path("tix.yaml")
    text = cfg.read_text() + ("\nwhatsapp:\n  numbers:\n    - number: '6281100001111'\n  reopen_day: 7\n"
                              "  window_hours: soon\n  base_url: ftp://x\n  templates:\n    later:\n      params: [x]\n"
                              "    broken:\n      name: t\n      params: ['{{ ticket.number ']\n")
    cfg.write_text(text)
    line = {ln.strip(): i for i, ln in enumerate(text.splitlines(), 1)}
    proc = tix("config", "check")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    item = line["- number: '6281100001111'"]
    assert any(f"tix.yaml:{item}: whatsapp.numbers[0] needs phone_number_id" in ln for ln in lines), lines
    assert any(f"tix.yaml:{line['reopen_day: 7']}: whatsapp: unknown key 'reopen_day' (did you mean 'reopen_days'?)"
               in ln for ln in lines), lines
    assert any("whatsapp.window_hours must be a number" in ln for ln in lines)
    assert any("whatsapp.base_url must be an http(s) URL" in ln for ln in lines)
    assert any(f"tix.yaml:{line['later:']}: whatsapp.templates.later needs name (the approved template)" in ln
               for ln in lines), lines
    assert any(f"tix.yaml:{line['broken:']}: whatsapp.templates.broken.params[0]:" in ln for ln in lines), lines
