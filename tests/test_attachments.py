"""Attachments both ways (issue 13 item 3): `tix attachment` lists, saves and streams them;
`tix reply --attach` sends files by email (through the outbox and aiosmtpd) and by WhatsApp
(media upload to the loopback Graph API, then a message naming the media id)."""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default

import orjson
import pytest

from tests.plugins.email import make_mail, maildir_source
from tests.plugins.whatsapp import spool, text_payload
from tix.ingest import fetch_all, fetch_spool

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)
PDF = b"%PDF-1.4 invoice INV-1001\n" * 10


def events(store, kind):
    return [ev for ev, _ in store.log.read() if ev["type"] == kind]


@pytest.fixture
def md_store(store, tmp_path, smtp_server):
    maildir_source(store, tmp_path / "maildir", "    team: support\n" + smtp_server.outbound_yaml())
    store.smtp = smtp_server
    return store


def deliver(store, raw: bytes, name: str = "00001.test") -> None:
    (store.md / "new" / name).write_bytes(raw)
    rep = fetch_all(store, now=NOW)
    assert rep.errors == [] and rep.quarantined == 0


def test_inbound_attachment_is_listed_saved_and_streamed(md_store, tix, tmp_path, monkeypatch):
    deliver(md_store, make_mail(attachments=[("../../etc/.invoice\x1b[31m.pdf", "application/pdf", PDF),
                                             ("foto.jpg", "image/jpeg", b"\xff\xd8jpeg")]))
    listed = tix("attachment", "1", "-f", "json", check=0)
    rows = orjson.loads(listed.stdout)
    assert [(r["index"], r["name"], r["direction"], r["status"]) for r in rows] == [
        (1, "_.._etc_.invoice [31m.pdf", "in", "stored"), (2, "foto.jpg", "in", "stored")]
    assert rows[0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    shown = tix("show", "1", check=0).stdout
    assert "[attachment 1: _.._etc_.invoice [31m.pdf, application/pdf" in shown and "[attachment 2: foto.jpg" in shown
    monkeypatch.chdir(tmp_path)
    tix("attachment", "1", "1", check=0)  # saved under its sanitised name in the current directory
    assert (tmp_path / "_.._etc_.invoice [31m.pdf").read_bytes() == PDF
    again = tix("attachment", "1", "1")
    assert again.returncode == 2 and "exists; not overwriting" in again.stderr
    tix("attachment", "1", "1", "--force", check=0)
    out = tmp_path / "out"
    out.mkdir()
    tix("attachment", "1", "foto.jpg", "-o", str(out), check=0)
    assert (out / "foto.jpg").read_bytes() == b"\xff\xd8jpeg"
    streamed = tix("attachment", "1", "2", "-o", "-", check=0)
    assert streamed.stdout.encode("latin-1", "replace")[:2] in (b"\xff\xd8", b"??") or streamed.stdout
    csv = tix("attachment", "1", "--format", "csv", check=0)
    assert csv.stdout.splitlines()[0].startswith("index,name,type,size,direction")


@pytest.mark.parametrize("raw, safe", [
    ("../../etc/passwd", "passwd"), ("..\\..\\win.ini", "win.ini"), (".bashrc", "bashrc"),
    ("a\x1b[31mb\x07.pdf", "a[31mb.pdf"), ("...", "attachment-3.pdf"), (None, "attachment-3.pdf"),
    ("x" * 300 + ".pdf", "x" * 196 + ".pdf"), ("bad\u202etxt.exe", "badtxt.exe")])
def test_safe_name(raw, safe):
    from tix.tickets.attachments import safe_name

    assert safe_name(raw, 3, "application/pdf") == safe


def test_stream_to_stdout_gives_the_exact_bytes(md_store, tix_proc, tmp_path):
    deliver(md_store, make_mail(attachments=[("data.bin", "application/octet-stream", bytes(range(256)))]))
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "tix", "attachment", "1", "1", "-o", "-"], capture_output=True,
                          env={**os.environ, "TIX_STORE": str(md_store.root)}, timeout=60)
    assert proc.returncode == 0 and proc.stdout == bytes(range(256))


def test_unknown_ticket_or_attachment_is_one_line(md_store, tix):
    deliver(md_store, make_mail(attachments=[("a.pdf", "application/pdf", PDF)]))
    missing = tix("attachment", "9")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: ticket #9 not found"
    nope = tix("attachment", "1", "b.pdf")
    assert nope.returncode == 1 and "no attachment 'b.pdf'; its attachments: 1 a.pdf" in nope.stderr


def test_reply_attach_email_goes_through_the_outbox_with_the_file(md_store, tix, tmp_path):
    deliver(md_store, make_mail())
    f = tmp_path / "resi.pdf"
    f.write_bytes(PDF)
    g = tmp_path / "notes.txt"
    g.write_text("catatan")
    tix("reply", "1", "-m", "Terlampir resi pengiriman.", "--attach", str(f), "--attach", str(g), check=0)
    (sent,) = md_store.smtp.messages
    msg = message_from_bytes(sent["data"], policy=default)
    parts = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert parts["resi.pdf"] == PDF and parts["notes.txt"].strip() == "catatan"
    (ev,) = events(md_store, "message.sent")
    assert [a["name"] for a in ev["data"]["attachments"]] == ["resi.pdf", "notes.txt"]
    sha = hashlib.sha256(PDF).hexdigest()
    assert md_store.path("blobs", "sha256", sha[:2], sha).read_bytes() == PDF
    rows = orjson.loads(tix("attachment", "1", "-f", "json", check=0).stdout)
    assert [(r["name"], r["direction"]) for r in rows] == [("resi.pdf", "out"), ("notes.txt", "out")]


def test_reply_attach_missing_or_oversized_queues_nothing(md_store, tix, tmp_path):
    deliver(md_store, make_mail())
    before = md_store.log.end()
    missing = tix("reply", "1", "-m", "x", "--attach", str(tmp_path / "nope.pdf"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"Error: --attach {tmp_path / 'nope.pdf'}: no such file"
    cfg = md_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("  auto_reply_cap: 2\n",
                                           "  auto_reply_cap: 2\n  attachment_limit_mb: 0.001\n"))
    big = tmp_path / "big.pdf"
    big.write_bytes(b"x" * 5000)
    over = tix("reply", "1", "-m", "x", "--attach", str(big))
    assert over.returncode == 2 and "over the email limit of 1 KB (outbound.attachment_limit_mb)" in over.stderr
    assert len(over.stderr.strip().splitlines()) == 1
    assert md_store.log.end() == before and md_store.smtp.messages == []
    assert not list(md_store.path("messages").rglob("out/*"))


# -- WhatsApp --------------------------------------------------------------------------------
def recent_wa_ticket(store):
    now = int(datetime.now(timezone.utc).timestamp())
    spool(store, text_payload("wamid.NOW", "Halo, kirim fotonya ya", ts=now - 60))
    fetch_spool(store)


def test_reply_attach_whatsapp_uploads_media_then_sends_its_id(wa_store, graph, tix, tmp_path):
    recent_wa_ticket(wa_store)
    photo = tmp_path / "resi.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + b"j" * 100)
    doc = tmp_path / "faktur.pdf"
    doc.write_bytes(PDF)
    tix("reply", "1", "-m", "Ini resinya kak", "--attach", str(photo), "--attach", str(doc), check=0)
    posts = graph.sent()
    kinds = [(r["path"].rsplit("/", 1)[-1], (r["json"] or {}).get("type")) for r in posts]
    assert kinds == [("messages", "text"), ("media", None), ("messages", "image"), ("media", None),
                     ("messages", "document")]
    image_id = posts[2]["json"]["image"]["id"]
    assert graph.uploads[image_id]["data"] == photo.read_bytes()
    assert graph.uploads[image_id]["type"] == "image/jpeg" and graph.uploads[image_id]["form"]["type"] == "image/jpeg"
    assert posts[4]["json"]["document"]["filename"] == "faktur.pdf"
    assert graph.uploads[posts[4]["json"]["document"]["id"]]["data"] == PDF
    assert len(events(wa_store, "outbox.sent")) == 3
    rows = orjson.loads(tix("attachment", "1", "-f", "json", check=0).stdout)
    assert [(r["name"], r["direction"], r["status"]) for r in rows] == [("resi.jpg", "out", "stored"),
                                                                        ("faktur.pdf", "out", "stored")]


def test_whatsapp_limits_are_per_media_type(wa_store, graph, tix, tmp_path):
    recent_wa_ticket(wa_store)
    photo = tmp_path / "besar.png"
    photo.write_bytes(b"\x89PNG" + b"p" * (5 * 1024 * 1024))
    before = wa_store.log.end()
    over = tix("reply", "1", "-m", "x", "--attach", str(photo))
    assert over.returncode == 2
    assert over.stderr.strip() == ("Error: besar.png: 5.0 MB, over WhatsApp's 5.0 MB limit for image "
                                   "(whatsapp.media_limits_mb.image)")
    assert wa_store.log.end() == before and graph.sent() == []
    as_doc = tmp_path / "besar.pdf"  # the same size is fine as a document (100 MB)
    as_doc.write_bytes(b"p" * (5 * 1024 * 1024 + 10))
    tix("reply", "1", "--attach", str(as_doc), check=0, input="")
    assert [r["path"].rsplit("/", 1)[-1] for r in graph.sent()] == ["media", "messages"]


def test_whatsapp_upload_failure_retries_the_item(wa_store, graph, tmp_path):
    from tix.outbox import flush
    from tix.outbox.attachments import queue_reply

    recent_wa_ticket(wa_store)
    f = tmp_path / "a.pdf"
    f.write_bytes(PDF)
    with wa_store.writing(actor="user:ani", via="test") as batch:
        queue_reply(batch, dict(batch.reader.ticket(1)), "whatsapp", "", [str(f)])
    graph.upload_failures.append((500, None))
    rep = flush(wa_store)
    assert rep.pending == 1 and rep.sent == 0
    rep = flush(wa_store, force=True)
    assert rep.sent == 1 and [r["path"].rsplit("/", 1)[-1] for r in graph.sent()] == ["media", "media", "messages"]


def test_media_limits_config_is_validated(wa_store, tix):
    cfg = wa_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("  reopen_days: 7\n", "  reopen_days: 7\n  media_limits_mb:\n"
                                                                 "    imgae: 3\n    video: -1\n"))
    out = tix("config", "check")
    assert out.returncode == 2
    assert "whatsapp.media_limits_mb: unknown key 'imgae'" in out.stderr and "video must be a number" in out.stderr


def test_whatsapp_media_is_pending_until_downloaded_then_saved(wa_store, graph, tix, tmp_path):
    body = text_payload("wamid.IMG1", "x")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.pop("text")
    data = b"\xff\xd8" + os.urandom(500)
    sha = graph.add_media("900000000000009", data)
    msg.update(type="image", image={"caption": "foto struk", "mime_type": "image/jpeg", "sha256": sha,
                                    "id": "900000000000009"})
    media = graph.media.pop("900000000000009")  # not downloadable yet: the first fetch leaves it pending
    spool(wa_store, body)
    fetch_spool(wa_store)
    (row,) = orjson.loads(tix("attachment", "1", "-f", "json", check=0).stdout)
    assert row["status"] == "pending" and row["sha256"] is None
    pending = tix("attachment", "1", "1", "-o", str(tmp_path / "x.jpg"))
    assert pending.returncode == 1 and "is pending: no bytes to get" in pending.stderr
    graph.media["900000000000009"] = media
    fetch_spool(wa_store)
    (row,) = orjson.loads(tix("attachment", "1", "-f", "json", check=0).stdout)
    assert row["status"] == "stored" and row["direction"] == "in" and row["name"].endswith(".jpg")
    tix("attachment", "1", "1", "-o", str(tmp_path / "struk.jpg"), check=0)
    assert (tmp_path / "struk.jpg").read_bytes() == data
