"""Merge and split (issue 13 item 7): `tix merge N INTO M`, `tix split N --messages SEQ…`, and
`tix show` listing the contact's other open tickets. Merges are events the readers fold."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from tests.plugins.email import drop as put
from tests.plugins.email import make_mail
from tix.ingest import fetch_all

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)
PDF = b"%PDF-1.4 resi\n" * 5


def drop(store, raw: bytes) -> None:
    """Deliver one message to the maildir source and fetch it."""
    put(store, raw)
    assert fetch_all(store, now=NOW).errors == []


def events(store, kind):
    return [ev for ev, _ in store.log.read() if ev["type"] == kind]


def two_tickets(store, tix):
    """Two tickets of one customer about one parcel (the second with an attachment and a tag)."""
    drop(store, make_mail(subject="Paket belum sampai", body="Pesanan INV-1001 belum sampai.", msgid="<a1@p.example>"))
    drop(store, make_mail(subject="Resi INV-1001", body="Ini foto resinya, kardus penyok.", msgid="<b1@p.example>",
                          attachments=[("resi.pdf", "application/pdf", PDF)]))
    tix("tag", "2", "kurir", check=0)
    tix("note", "2", "-m", "Cek ke JNE", check=0)


def show_json(tix, n):
    return orjson.loads(tix("show", str(n), "-f", "json", check=0).stdout)


def test_merge_moves_messages_notes_attachments_tags(md_store, tix):
    two_tickets(md_store, tix)
    tix("merge", "2", "INTO", "1", "--why", "same parcel", "--as", "ani", check=0)
    into = show_json(tix, 1)
    texts = [e["data"].get("text") or e["data"].get("body") for e in into["conversation"]]
    assert "Ini foto resinya, kardus penyok." in " ".join(t or "" for t in texts)
    assert "Cek ke JNE" in texts
    assert "kurir" in into["ticket"]["tags"]
    rows = orjson.loads(tix("attachment", "1", "-f", "json", check=0).stdout)
    assert [(r["name"], r["ticket"]) for r in rows] == [("resi.pdf", 2)]
    assert tix("attachment", "1", "resi.pdf", "-o", "-", check=0).stdout.encode() == PDF
    merged = md_store.ticket(2)
    assert merged["status"] == "closed" and orjson.loads(merged["fields"])["merged_into"] == 1
    text = tix("show", "1", check=0).stdout
    assert "(from #2)" in text and "#2 was merged into this ticket." in text
    (ev,) = events(md_store, "ticket.merged")
    assert (ev["ticket"], ev["data"], ev["actor"], ev["why"], ev["via"].split(" (")[0]) == (
        2, {"into": 1}, "user:ani", "same parcel", "tix merge")  # via: "tix merge (admin X as ani)"
    assert "ticket.merged" in tix("show", "2", "--history", check=0).stdout
    # search follows the merge: the body of #2 is found on #1
    found = orjson.loads(tix("search", "penyok", "-f", "json", check=0).stdout)
    assert [r["number"] for r in found] == [1]


def test_replies_to_a_merged_ticket_land_on_the_target(md_store, tix):
    two_tickets(md_store, tix)
    tix("merge", "2", "into", "1", check=0)
    drop(md_store, make_mail(subject="Re: Resi INV-1001", body="Sudah sampai?", in_reply_to="<b1@p.example>",
                             references="<b1@p.example>"))
    drop(md_store, make_mail(subject="Lagi [#2]", body="Halo lagi", msgid="<c1@p.example>"))
    received = events(md_store, "message.received")
    assert [e["ticket"] for e in received[2:]] == [1, 1]
    assert md_store.ticket(2)["status"] == "closed"  # never reopened
    assert md_store.read().max_ticket == 2  # no new ticket


def test_merge_refusals_write_nothing(md_store, tix):
    two_tickets(md_store, tix)
    drop(md_store, make_mail(subject="Lain", body="x", msgid="<d1@p.example>"))
    before = md_store.log.end()
    itself = tix("merge", "1", "INTO", "1")
    assert itself.returncode == 2 and itself.stderr.strip() == "Error: cannot merge #1 into itself"
    missing = tix("merge", "1", "INTO", "9")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: ticket #9 not found"
    word = tix("merge", "1", "TO", "2")
    assert word.returncode == 2 and "tix merge 1 INTO 2" in word.stderr
    assert md_store.log.end() == before
    tix("merge", "2", "INTO", "1", check=0)
    before = md_store.log.end()
    into_merged = tix("merge", "3", "INTO", "2")
    assert into_merged.returncode == 2
    assert into_merged.stderr.strip() == "Error: cannot merge into #2: it was merged into #1 (merge into #1)"
    again = tix("merge", "2", "INTO", "3")
    assert again.returncode == 2 and again.stderr.strip() == "Error: #2 was already merged into #1"
    assert md_store.log.end() == before


def test_split_moves_messages_to_a_new_linked_ticket(md_store, tix):
    drop(md_store, make_mail(subject="Dua pertanyaan", body="Pertama: paket belum sampai.", msgid="<a1@p.example>"))
    drop(md_store, make_mail(subject="Re: Dua pertanyaan [#1]", body="Kedua: cara ganti alamat email akun?",
                             msgid="<a2@p.example>", in_reply_to="<a1@p.example>"))
    seqs = [e["seq"] for e in events(md_store, "message.received")]
    shown = tix("show", "1", check=0).stdout
    assert f"[msg {seqs[1]}]" in shown
    out = tix("split", "1", "--messages", str(seqs[1]), "--why", "two questions", check=0)
    assert out.stdout.strip() == "#2"
    new = show_json(tix, 2)
    assert [e["seq"] for e in new["conversation"] if e["type"] == "message.received"] == [seqs[1]]
    assert orjson.loads(new["ticket"]["fields"])["split_from"] == 1
    old = show_json(tix, 1)
    assert [e["seq"] for e in old["conversation"] if e["type"] == "message.received"] == [seqs[0]]
    (ev,) = events(md_store, "ticket.split")
    assert ev["data"] == {"into": 2, "messages": [seqs[1]], "message_ids": ["<a2@p.example>"]}
    assert [r["number"] for r in orjson.loads(tix("search", "alamat", "-f", "json", check=0).stdout)] == [2]
    # a reply to the split-out message threads to the new ticket
    drop(md_store, make_mail(subject="Re: Dua pertanyaan", body="Jadi bagaimana?", in_reply_to="<a2@p.example>"))
    assert events(md_store, "message.received")[-1]["ticket"] == 2


def test_split_refusals(md_store, tix):
    drop(md_store, make_mail(subject="Satu", body="hanya satu", msgid="<a1@p.example>"))
    seq = events(md_store, "message.received")[0]["seq"]
    before = md_store.log.end()
    every = tix("split", "1", "--messages", str(seq))
    assert every.returncode == 2
    assert every.stderr.strip() == "Error: cannot split out every message of #1: nothing would be left on it"
    unknown = tix("split", "1", "--messages", "999")
    assert unknown.returncode == 2 and f"#1 has no message 999 (its messages: {seq}" in unknown.stderr
    bare = tix("split", "1", str(seq))
    assert bare.returncode == 2 and "--messages" in bare.stderr
    assert md_store.log.end() == before


def test_show_lists_the_contacts_other_open_tickets(md_store, tix):
    drop(md_store, make_mail(subject="Paket belum sampai", body="a", msgid="<a1@p.example>"))
    drop(md_store, make_mail(subject="Ganti alamat", body="b", msgid="<b1@p.example>"))
    drop(md_store, make_mail(subject="Tagihan", body="c", msgid="<c1@p.example>"))
    drop(md_store, make_mail(subject="Orang lain", body="d", frm="Tom <tom@example.com>"))
    tix("close", "3", check=0)
    text = tix("show", "1", check=0).stdout
    assert "other open tickets: #2 new 'Ganti alamat'" in text and "#3" not in text and "#4" not in text
    assert [o["number"] for o in show_json(tix, 1)["other_open_tickets"]] == [2]


def test_whatsapp_messages_of_a_merged_ticket_land_on_the_target(wa_store, tix):
    from tests.plugins.whatsapp import spool, text_payload
    from tix.ingest import fetch_spool

    spool(wa_store, text_payload("wamid.M1", "Paket saya belum sampai", ts=1760000100))
    fetch_spool(wa_store)
    tix("new", "Telepon: paket belum sampai", "--phone", "+15555550100", check=0)
    assert wa_store.ticket(2)["contact"] == wa_store.ticket(1)["contact"]
    tix("merge", "1", "INTO", "2", check=0)
    spool(wa_store, text_payload("wamid.M2", "Halo? Ada kabar?", ts=1760000200))
    spool(wa_store, text_payload("wamid.M3", "Ini balasan", ts=1760000300, context="wamid.M1"))
    fetch_spool(wa_store)
    assert [e["ticket"] for e in events(wa_store, "message.received")] == [1, 2, 2]
    assert wa_store.ticket(1)["status"] == "closed" and wa_store.read().max_ticket == 2
