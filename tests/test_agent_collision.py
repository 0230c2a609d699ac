"""Issue 13 item 2: `tix show` records what an agent has seen; reply/note/close refuse (exit 1, one
line: who did what, when) when the customer or another agent wrote since, unless --force; and
`tix reply --preview` shows the message without sending or writing anything."""
from __future__ import annotations

import orjson
import pytest

from tests.agentday import customer_writes, events, make_desk, run


@pytest.fixture
def desk(store, tmp_path, tix):
    return make_desk(store, tmp_path, tix)


def files(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def sent(store):
    return [e for e in events(store, "message.sent")]


def test_a_customer_message_since_the_show_refuses_reply_note_and_close(desk, tix):
    run(tix, "show", "1", "--as", "ani")
    customer_writes(desk, tix, body="Halo? Ada kabar?", at="2026-11-20T04:05:00Z")
    before = len(events(desk))
    for args in (("reply", "1", "-m", "Sudah kami kirim.", "--no-send"), ("note", "1", "-m", "cek kurir"),
                 ("close", "1")):
        proc = run(tix, *args, "--as", "ani", check=1)
        assert proc.stderr == ("Error: #1: the customer (sari@pelanggan.example) wrote at 2026-11-20 11:05, "
                               "after you last showed it; read it with: tix show 1 (or use --force)\n"), args
    assert len(events(desk)) == before and not list((desk.root / "messages").rglob("out/**/*.eml"))
    run(tix, "reply", "1", "-m", "Sudah kami kirim.", "--no-send", "--force", "--as", "ani")
    assert len(sent(desk)) == 1
    run(tix, "note", "1", "-m", "dibalas", "--as", "ani")  # the forced reply moved ani's marker on


def test_another_agents_reply_refuses_until_shown_again(desk, tix):
    run(tix, "show", "1", "--as", "ani")
    run(tix, "reply", "1", "-m", "Dari Budi.", "--no-send", "--as", "budi", at="2026-11-20T05:00:00Z")
    proc = run(tix, "reply", "1", "-m", "Dari Ani.", "--no-send", "--as", "ani", check=1)
    assert proc.stderr == ("Error: #1: budi replied at 2026-11-20 12:00, after you last showed it; "
                           "read it with: tix show 1 (or use --force)\n")
    run(tix, "note", "1", "-m", "x", "--as", "ani", check=1)
    assert "Dari Budi." in run(tix, "show", "1", "--as", "ani").stdout
    run(tix, "reply", "1", "-m", "Dari Ani.", "--no-send", "--as", "ani")
    assert [e["actor"] for e in sent(desk)] == ["user:budi", "user:ani"]


def test_own_replies_and_notes_do_not_collide(desk, tix):
    run(tix, "show", "1", "--as", "ani")
    run(tix, "reply", "1", "-m", "Satu.", "--no-send", "--as", "ani")
    run(tix, "note", "1", "-m", "catatan budi", "--as", "budi")  # a note is not a reply to the customer
    run(tix, "reply", "1", "-m", "Dua.", "--no-send", "--as", "ani")
    run(tix, "close", "1", "--resolved", "--as", "ani")


def test_an_agent_who_never_showed_the_ticket_is_not_checked(desk, tix):
    customer_writes(desk, tix)
    run(tix, "reply", "1", "-m", "Skrip.", "--no-send", "--as", "ops-bot")
    assert not (desk.root / "state" / "seen" / "ops-bot.json").exists()


def test_markers_are_per_agent_files(desk, tix):
    run(tix, "show", "1", "-f", "json", "--as", "ani")
    marker = orjson.loads((desk.root / "state" / "seen" / "ani.json").read_bytes())
    assert list(marker) == ["1"] and marker["1"][0] == events(desk)[-1]["seq"]
    run(tix, "show", "1", "--as", "../evil")  # a login that is no file name is hex-encoded, inside state/seen/
    assert sorted(p.name for p in (desk.root / "state" / "seen").glob("*.json")) == [
        "ani.json", "x-2e2e2f6576696c.json"]
    assert not (desk.root / "state" / "evil.json").exists()


def test_preview_prints_the_message_and_writes_nothing(desk, tix):
    run(tix, "set", "1", "order_id=INV-1001")
    before = files(desk.root)
    proc = run(tix, "reply", "1", "--preview", "-m", "Mohon kirim foto paketnya.\nTerima kasih.", "--as", "ani")
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["From: Toko Support <support@toko.example>", "To: sari@pelanggan.example",
                         "Subject: Re: Paket belum sampai [#1]"]
    assert any(line.startswith("Message-ID: <tix.1.") for line in lines)
    assert proc.stdout.endswith("\n\nMohon kirim foto paketnya.\nTerima kasih.\n")
    assert files(desk.root) == before  # no event, no message file, no seen marker, no outbox
    run(tix, "show", "1", "--as", "ani")
    customer_writes(desk, tix, at="2026-11-20T04:05:00Z")
    before = files(desk.root)
    proc = run(tix, "reply", "1", "--preview", "-m", "Halo.", "--as", "ani")  # shown, with the refusal to come
    assert proc.stdout.endswith("\n\nHalo.\n") and proc.stderr.startswith("Warning: #1: the customer (")
    run(tix, "reply", "99", "--preview", "-m", "x", check=1)
    proc = run(tix, "reply", "1", "--preview", "--macro", "nope", check=2)
    assert proc.stderr.startswith("Error: no macro 'nope'")
    assert files(desk.root) == before


def test_preview_of_a_whatsapp_reply(wa_store, tmp_path):
    from datetime import datetime, timedelta, timezone

    from tests.conftest import run_in_process
    from tests.plugins.whatsapp import spool, text_payload
    from tix.ingest import fetch_spool
    from tix.store.log import iso

    t0 = 1760000100
    spool(wa_store, text_payload("wamid.IN1", "Halo kak, pesanan saya belum datang", ts=t0))
    fetch_spool(wa_store)
    before = files(wa_store.root)
    now = iso(datetime.fromtimestamp(t0, timezone.utc) + timedelta(minutes=5))
    proc = run_in_process(["reply", "1", "--preview", "-m", "Sedang kami cek, kak."],
                          env={"TIX_STORE": str(wa_store.root), "TIX_NOW": now})
    assert proc.returncode == 0, proc.stderr
    payload = orjson.loads(proc.stdout)
    assert payload["request"]["text"]["body"] == "Sedang kami cek, kak." and payload["to"] == ["+15555550100"]
    assert files(wa_store.root) == before


def test_show_still_shows_when_the_marker_cannot_be_written(desk, tix):
    (desk.root / "state" / "seen").write_text("not a directory")
    proc = run(tix, "show", "1", "--as", "ani")
    assert "Paket belum sampai" in proc.stdout
    assert proc.stderr.startswith("Warning: #1: what you have seen is not recorded (")
    assert proc.stderr.endswith("replies are not checked for collisions\n") and proc.stderr.count("\n") == 1


def test_a_killed_marker_writer_leaves_nothing_behind(desk, tix):
    import os

    from tix.store.files import clean_stale, temp_name

    run(tix, "show", "1", "--as", "ani")
    left = temp_name(desk.root / "state" / "seen" / "ani.json")  # as a writer killed mid-write leaves it
    left.write_bytes(b"{")
    os.utime(left, (0, 0))
    assert clean_stale(desk.root) >= 1 and not left.exists()


def test_agent_reply_is_one_core_function(desk, tix):
    """What any way of replying calls (tix reply; an agent's mail client): collision, status, outbox."""
    from tix.tickets import get_ticket
    from tix.tickets.reply import agent_reply
    from tix.tickets.seen import Collision

    run(tix, "show", "1", "--as", "ani")
    customer_writes(desk, tix, at="2026-11-20T04:05:00Z")
    with pytest.raises(Collision), desk.writing(actor="user:ani", via="test") as batch:
        agent_reply(batch, get_ticket(batch, 1), "Halo.", outcome="pending")
    assert sent(desk) == []
    with desk.writing(actor="user:ani", via="test") as batch:
        (item,) = agent_reply(batch, get_ticket(batch, 1), "Halo.", outcome="pending", force=True)
    assert item["to"] == ["sari@pelanggan.example"] and desk.read().ticket(1)["status"] == "pending"


def test_preview_lists_attachments_without_storing_them(desk, tix, tmp_path):
    f = tmp_path / "resi.txt"
    f.write_text("JNE0123456789\n")
    before = files(desk.root)
    out = run(tix, "reply", "1", "--preview", "-m", "Resi terlampir.", "--attach", str(f)).stdout
    assert out.endswith("\n\nResi terlampir.\n\n[attachment: resi.txt, text/plain, 14 bytes]\n")
    assert files(desk.root) == before  # no blob, no event
    proc = run(tix, "reply", "1", "--preview", "-m", "x", "--attach", str(tmp_path / "nope.pdf"), check=2)
    assert proc.stderr == f"Error: --attach {tmp_path / 'nope.pdf'}: no such file\n"


def test_a_customer_reaction_or_deletion_since_the_show_is_no_collision(wa_store, tix):
    """A WhatsApp reaction (or a deleted message) carries nothing to read: it does not refuse a reply;
    a new text does."""
    from datetime import datetime, timedelta, timezone

    from tests.plugins.whatsapp import envelope, spool, text_payload
    from tix.ingest import fetch_spool
    from tix.store.log import iso

    t0 = 1760000100
    spool(wa_store, text_payload("wamid.IN1", "Halo kak, pesanan saya belum datang", ts=t0))
    fetch_spool(wa_store)
    env = {"TIX_NOW": iso(datetime.fromtimestamp(t0, timezone.utc) + timedelta(minutes=5))}
    assert tix("show", "1", "--as", "ani", env=env).returncode == 0
    react = {"from": "15555550100", "id": "wamid.R1", "timestamp": str(t0 + 60), "type": "reaction",
             "reaction": {"message_id": "wamid.IN1", "emoji": "\U0001f44d"}}
    spool(wa_store, envelope({"contacts": [{"profile": {"name": "Ada Example"}, "wa_id": "15555550100"}],
                              "messages": [react]}))
    fetch_spool(wa_store)
    assert tix("reply", "1", "-m", "Sedang kami cek.", "--no-send", "--as", "ani", env=env).returncode == 0
    assert tix("show", "1", "--as", "ani", env=env).returncode == 0
    spool(wa_store, text_payload("wamid.IN2", "Kak?", ts=t0 + 120))
    fetch_spool(wa_store)
    refused = tix("reply", "1", "-m", "Sebentar ya.", "--no-send", "--as", "ani", env=env)
    assert refused.returncode == 1 and "the customer" in refused.stderr
