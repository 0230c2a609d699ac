"""`tix import`: each importer on a small export in its real format (tests/data/import)."""
from __future__ import annotations

import json
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from tests.plugins.email import add_config, make_mail

DATA = Path(__file__).parent / "data" / "import"


def events(store, kind: str | None = None) -> list[dict]:
    return [ev for ev, _ in store.log.read() if kind is None or ev["type"] == kind]


def listing(tix) -> dict[int, dict]:
    proc = tix("list", "--all", "-f", "json", check=0)
    return {t["number"]: t for t in json.loads(proc.stdout)}


# -- mail ----------------------------------------------------------------------------------------
def test_takeout_mbox_keeps_times_labels_replies_and_is_idempotent(store, tix):
    box = str(DATA / "takeout.mbox")
    dry = tix("import", "mbox", box, "--address", "support@toko.example", "--dry-run", check=0)
    assert "Paket belum sampai INV-1001" in dry.stdout and "imported,pengiriman" in dry.stdout
    assert "would create 2 tickets, 3 customer messages, 1 replies" in dry.stderr + dry.stdout
    assert events(store) == [] and not list((store.root / "messages").rglob("*.pack"))
    tix("import", "mbox", box, "--address", "support@toko.example", "--resolve-answered", check=0)
    t = listing(tix)
    assert sorted(t[1]["tags"]) == ["imported", "pengiriman"] and sorted(t[2]["tags"]) == ["imported", "refund"]
    assert t[1]["status"] == "new"  # the customer wrote last: not answered
    received = events(store, "message.received")
    assert [(e["ticket"], e["ts"]) for e in received] == [
        (1, "2025-03-04T02:00:00.000000Z"), (1, "2025-03-04T04:00:00.000000Z"), (2, "2025-03-05T07:00:00.000000Z")]
    (sent,) = events(store, "message.sent")
    assert (sent["ticket"], sent["ts"]) == (1, "2025-03-04T03:30:00.000000Z")
    assert sent["actor"] == "user:support@toko.example"
    assert sent["data"]["imported"] and "outbox" not in sent["data"]
    before = len(events(store))
    again = tix("-v", "import", "mbox", box, "--address", "support@toko.example", check=0)
    assert len(events(store)) == before and "created 0 tickets" in again.stdout


def test_maildir_import_threads_a_reply_and_resolves_answered(store, tix, tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    first = make_mail(subject="Tidak bisa login", msgid="<a1@pelanggan.example>",
                      date=datetime(2025, 6, 2, 2, 0, tzinfo=timezone.utc))
    answer = make_mail(subject="Re: Tidak bisa login", frm="Ani <ani@example.co.id>", to="sari@pelanggan.example",
                       msgid="<a2@toko.example>", in_reply_to="<a1@pelanggan.example>",
                       date=datetime(2025, 6, 2, 5, 0, tzinfo=timezone.utc))
    (md / "cur" / "1.b:2,S").write_bytes(answer)  # file order is not date order
    (md / "cur" / "2.a:2,S").write_bytes(first)
    tix("import", "maildir", str(md), "--resolve-answered", check=0)
    t = listing(tix)
    assert list(t) == [1] and t[1]["status"] == "resolved"
    (sent,) = events(store, "message.sent")
    assert sent["actor"] == "user:ani"  # an agent's address in tix.yaml
    (res,) = [e for e in events(store, "ticket.updated") if e["data"]["set"].get("status") == "resolved"]
    assert res["ts"] == "2025-06-02T05:00:00.000000Z"  # resolved at the answer, not at the import


def test_imap_folder_since_a_date(store, imap_user, tix):
    add_config(store, "channels:\n" + imap_user.source_yaml())
    old = datetime(2025, 1, 10, 3, 0, tzinfo=timezone.utc)
    new = datetime(2025, 5, 10, 3, 0, tzinfo=timezone.utc)
    imap_user.deliver(make_mail(subject="Lama sekali", msgid="<old@x>", date=old))
    imap_user.deliver(make_mail(subject="Pesanan INV-7", msgid="<new@x>", date=new))
    tix("import", "imap", "support", "--since", "2025-03-01", check=0)
    assert [t["subject"] for t in listing(tix).values()] == ["Pesanan INV-7"]
    (ev,) = events(store, "message.received")
    assert ev["ts"] == "2025-05-10T03:00:00.000000Z"
    c = imap_user.client()
    c.select_folder("INBOX")
    assert c.search(["SEEN"]) == []  # an import only reads
    # the live fetch later sees the same message: stored once
    tix("fetch", "--no-send", check=0)
    assert sorted(t["subject"] for t in listing(tix).values()) == ["Lama sekali", "Pesanan INV-7"]
    assert len(events(store, "message.received")) == 2


# -- WhatsApp --------------------------------------------------------------------------------------
def test_whatsapp_export_indonesian_zip_with_media(store, tix, tmp_path):
    chat = tmp_path / "Chat WhatsApp dengan Sari Wulandari.txt"
    shutil.copy(DATA / "chat-id.txt", chat)
    zpath = tmp_path / "Chat WhatsApp dengan Sari Wulandari.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(chat, chat.name)
        z.writestr("IMG-20251231-WA0001.jpg", b"\xff\xd8\xff\xe0 a small jpeg")
    proc = tix("import", "whatsapp", str(zpath), "--phone", "0812-1111-2222", "--resolve-answered", check=1)
    assert proc.stderr.strip() == ("Error: Chat WhatsApp dengan Sari Wulandari.zip:Chat WhatsApp dengan Sari "
                                   "Wulandari.txt:11: unknown date format: '2026-02-20 10.00 - Sari Wulandari: "
                                   "ini baris rusak'")
    t = listing(tix)
    assert sorted((n, r["status"], r["channel"]) for n, r in t.items()) == [(1, "resolved", "whatsapp"),
                                                                            (2, "new", "whatsapp")]
    msgs = events(store, "message.received")
    assert msgs[0]["ts"] == "2025-12-31T14:05:00.000000Z"  # 21.05 WIB
    assert msgs[1]["data"]["text"] == "Nomor pesanan INV-2001\nini fotonya ya"
    (photo, omitted) = [m for m in msgs if m["data"]["attachments"]]
    assert omitted["data"]["attachments"][0]["missing"] and omitted["ticket"] == 2
    assert photo["data"]["wa_type"] == "image" and photo["data"]["text"] == "paketnya cuma ini"
    digest = photo["data"]["attachments"][0]["sha256"]
    assert (store.root / "blobs" / "sha256" / digest[:2] / digest).read_bytes().startswith(b"\xff\xd8")
    sent = events(store, "message.sent")
    assert [e["actor"] for e in sent] == ["user:toko-sari"] * 3 and all(e["ticket"] == 1 for e in sent)
    before = len(events(store))
    tix("import", "whatsapp", str(zpath), "--phone", "0812-1111-2222", "--resolve-answered", check=1)
    assert len(events(store)) == before


def test_whatsapp_export_english_dates_and_unsaved_number(store, tix, tmp_path):
    chat = tmp_path / "WhatsApp Chat with +62 812-3456-7890.txt"
    shutil.copy(DATA / "chat-en.txt", chat)
    tix("import", "whatsapp", str(chat), check=0)
    msgs = events(store, "message.received")
    assert [m["ts"] for m in msgs] == ["2025-12-30T14:05:00.000000Z", "2025-12-30T14:06:00.000000Z",
                                       "2025-12-31T01:40:00.000000Z", "2025-12-31T01:41:00.000000Z"]
    assert {m["data"]["from"] for m in msgs} == {"6281234567890"}
    assert msgs[1]["data"]["attachments"][0] == {"name": "IMG-20251230-WA0003.jpg", "type": "image/jpeg",
                                                 "size": None, "sha256": None, "missing": True}
    assert [e["ts"] for e in events(store, "message.sent")] == ["2025-12-31T01:30:00.000000Z",
                                                                "2025-12-31T01:31:00.000000Z"]


def test_whatsapp_export_needs_the_shops_side(store, tix, tmp_path):
    chat = tmp_path / "chat.txt"
    shutil.copy(DATA / "chat-en.txt", chat)
    proc = tix("import", "whatsapp", str(chat), check=2)
    assert proc.stderr.startswith("Error: chat.txt: name the shop's side with --me NAME (senders: +62 812-3456-7890, "
                                  "Toko Sari)")
    assert events(store) == []


# -- another helpdesk -----------------------------------------------------------------------------
def test_helpdesk_csv_with_mapping(store, tix):
    proc = tix("import", "helpdesk", str(DATA / "helpdesk.csv"), "--mapping", str(DATA / "helpdesk.yaml"), check=1)
    assert proc.stderr.splitlines() == [
        "Error: helpdesk.yaml:15: column 'Urgency' (priority) is not in helpdesk.csv (its columns: Ticket ID, "
        "Subject, Requester, Requester Email, Status, Agent, Tags, Created, Author Type, Body)",
        "Error: helpdesk.csv:6: unknown date format: '2025-03-06 10:00' (time_format '%d/%m/%Y %H:%M')",
        "Error: helpdesk.csv:9: status: invalid status 'Weird'; status is one of: new, open, pending, resolved, closed",
    ]
    t = listing(tix)
    got = {n: (r["subject"], r["status"], r["assignee"], sorted(r["tags"])) for n, r in t.items()}
    assert got == {1: ("Paket belum sampai", "resolved", "ani", ["imported", "jne", "pengiriman"]),
                   2: ("Refund", "open", None, ["imported", "refund"]),
                   3: ("Ganti alamat", "closed", "budi", ["imported"]),
                   4: ("Stok", "new", None, ["imported"])}
    first = events(store, "message.received")[0]
    assert first["ts"] == "2025-03-04T02:00:00.000000Z"
    assert first["data"]["text"] == "Halo, paket saya belum sampai.\nNomor pesanan INV-1001."
    before = len(events(store))
    tix("import", "helpdesk", str(DATA / "helpdesk.csv"), "--mapping", str(DATA / "helpdesk.yaml"), check=1)
    assert len(events(store)) == before


def test_helpdesk_json_nested_messages(store, tix, tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        {"id": 9, "subject": "Invoice", "requester": {"email": "x"}, "email": "owner@tokomitra.co.id",
         "state": "solved", "messages": [
             {"at": "2025-08-01T09:00:00+07:00", "by": "end-user", "text": "Minta invoice Juli"},
             {"at": "2025-08-01T10:15:00+07:00", "by": "agent", "text": "Terlampir ya"}]}]))
    mapping = tmp_path / "map.yaml"
    mapping.write_text("messages: messages\ncolumns:\n  ticket: id\n  subject: subject\n  email: email\n"
                       "  status: state\n  time: at\n  from: by\n  body: text\n"
                       "values:\n  from: {end-user: customer}\n  status: {solved: resolved}\n")
    tix("import", "helpdesk", str(export), "--mapping", str(mapping), check=0)
    t = store.read().ticket(1)
    assert (t["status"], str(t["first_response_at"])[:16]) == ("resolved", "2025-08-01T03:15")


def test_helpdesk_mapping_mistake_is_a_config_error(store, tix, tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns:\n  ticket: id\n  tiem: at\n")
    proc = tix("import", "helpdesk", str(DATA / "helpdesk.csv"), "--mapping", str(mapping), check=2)
    assert "map.yaml:3: unknown column name 'tiem'" in proc.stderr
    assert events(store) == []


def test_whatsapp_iphone_export_lines():
    from tix.importers.whatsapp import Chat

    chat = Chat("\u200e[31/12/25 21.05.12] Toko Sari: Pesan dan panggilan terenkripsi\n"
                "[31/12/25 21.06.40] Sari: \u200e<attached: 00000012-PHOTO-2025-12-31-21-06-40.jpg>\n"
                "[1/2/26 08.00.05] Sari: Halo\nbaris kedua\n", "_chat.txt")
    assert chat.errors == [] and chat.dmy
    assert [(m["local"].isoformat(), m["sender"], m["text"]) for m in chat.messages] == [
        ("2025-12-31T21:05:12", "Toko Sari", "Pesan dan panggilan terenkripsi"),
        ("2025-12-31T21:06:40", "Sari", "\u200e<attached: 00000012-PHOTO-2025-12-31-21-06-40.jpg>"),
        ("2026-02-01T08:00:05", "Sari", "Halo\nbaris kedua")]
    broken = Chat("2026-01-02 08:00 - Sari: halo\nlanjutan\n02/01/26 08.01 - Sari: lagi\n", "c.txt")
    assert broken.errors == ["c.txt:1: unknown date format: '2026-01-02 08:00 - Sari: halo'"]
    assert [m["text"] for m in broken.messages] == ["lagi"]


def test_dry_run_names_a_message_it_would_quarantine_and_writes_nothing(store, tix, tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1.a:2,S").write_bytes(make_mail(subject="Baik", msgid="<ok@x>"))
    (md / "cur" / "2.b:2,S").write_bytes(b"\x00\x01 not a mail at all")
    proc = tix("import", "maildir", str(md), "--dry-run", check=1)
    assert not list((store.root / "quarantine").rglob("*.*")) and events(store) == []
    assert proc.stderr == (f"Error: {md}/cur/2.b:2,S: not an RFC 5322 message: it does not start with a header "
                           "(would be quarantined)\n")
    assert "Baik" in proc.stdout
