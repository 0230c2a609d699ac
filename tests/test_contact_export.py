"""`tix contact export` (UU PDP rights of access and portability; issue 14 item 3)."""
from __future__ import annotations

import json
import zipfile

from tests.plugins.email import make_mail


def test_export_holds_contact_tickets_messages_and_attachments_not_internal_notes(mail_store, tix, monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setenv("TIX_NOW", "2026-11-20T03:10:00Z")
    mail_store.imap.deliver(make_mail(frm="Sari Wulandari <sari@pelanggan.example>", subject="Pesanan INV-77",
                                      attachments=[("struk.pdf", "application/pdf", b"%PDF-1.4 struk")]))
    tix("fetch", check=0)
    tix("reply", "1", "-m", "Paket dikirim hari ini.", check=0)
    tix("note", "1", "-m", "internal: customer is grumpy", check=0)
    cid = json.loads(tix("contact", "list", "-f", "json", check=0).stdout)[0]["id"]
    out = tmp_path / "sari.zip"
    tix("contact", "export", str(cid), "-o", str(out), check=0)
    with zipfile.ZipFile(out) as z:
        doc = json.loads(z.read("tix-export.json"))
        names = z.namelist()
        (ticket,) = doc["tickets"]
        att = ticket["messages"][0]["attachments"][0]
        assert z.read(att["file"]) == b"%PDF-1.4 struk"
    assert doc["format"] == "tix-contact-export/1"
    assert doc["contact"]["emails"] == ["sari@pelanggan.example"] and doc["contact"]["name"] == "Sari Wulandari"
    assert ticket["number"] == 1 and ticket["subject"] == "Pesanan INV-77"
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out"]
    assert ticket["messages"][1]["text"].startswith("Paket dikirim hari ini.")
    assert att["name"] == "struk.pdf" and att["file"] in names
    assert "grumpy" not in json.dumps(doc)
    assert ticket["created_at"].endswith("Z") and ticket["messages"][0]["ts"].endswith("Z")
    assert out.stat().st_mode & 0o777 == 0o600


def test_existing_file_needs_force_and_unknown_contact_is_not_found(tix, rk, tmp_path):
    n = rk.message(sender="sari@pelanggan.example", name="Sari")
    cid = rk.ticket(n)["contact"]
    out = tmp_path / "x.zip"
    out.write_bytes(b"keep me")
    proc = tix("contact", "export", str(cid), "-o", str(out))
    assert (proc.returncode, proc.stderr) == (2, f"Error: {out} exists; use --force to replace it\n")
    assert out.read_bytes() == b"keep me"
    tix("contact", "export", str(cid), "-o", str(out), "--force", check=0)
    assert zipfile.is_zipfile(out)
    proc = tix("contact", "export", "99", "-o", str(tmp_path / "y.zip"))
    assert (proc.returncode, proc.stderr) == (1, "Error: contact 99 not found\n")
    assert not (tmp_path / "y.zip").exists()


def test_whatsapp_media_is_exported_with_its_message_then_erased_with_it(wa_store, graph, tix, tmp_path):
    import hashlib
    import os

    from tests.plugins.whatsapp import spool
    from tests.test_whatsapp_intake import image_payload

    data = os.urandom(2000)
    sha = graph.add_media("900000000000009", data)
    spool(wa_store, image_payload("wamid.IMG9", "900000000000009", sha))
    tix("fetch", check=0)
    blob = wa_store.path("blobs", "sha256", hashlib.sha256(data).hexdigest()[:2], hashlib.sha256(data).hexdigest())
    assert blob.read_bytes() == data
    cid = json.loads(tix("contact", "list", "-f", "json", check=0).stdout)[0]["id"]
    tix("contact", "export", str(cid), "-o", str(tmp_path / "wa.zip"), check=0)
    with zipfile.ZipFile(tmp_path / "wa.zip") as z:
        (att,) = json.loads(z.read("tix-export.json"))["tickets"][0]["messages"][0]["attachments"]
        assert z.read(att["file"]) == data
    tix("contact", "erase", str(cid), "--why", "request", check=0)
    assert not blob.exists()
