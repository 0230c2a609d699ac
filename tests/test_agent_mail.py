"""Agents who work from their own mail client, end to end: real Dovecot (the support mailbox),
real aiosmtpd (what tix sends), the loopback Graph API (WhatsApp).

The assignment mail reaches the agent by SMTP with a reply token in its Reply-To; the agent's
reply, put in the IMAP mailbox, becomes the reply to the customer (email, WhatsApp), a note, a
status or a reassignment; a forged mail is quarantined and reaches nobody.
"""
from __future__ import annotations

import email
from email.policy import default as default_policy

import orjson
import pytest

from tests.plugins.email import add_config, make_mail
from tests.plugins.whatsapp import spool, text_payload
from tix.channels.mail import agentauth
from tix.store.log import utcnow

ANI = "ani@example.co.id"
CUSTOMER = "sari@pelanggan.example"
AUTHSERV = "mx.toko.example"


def enable_agent_mail(store, extra: str = "") -> None:
    path = store.path("tix.yaml")
    text = path.read_text()
    text = text.replace(f"    email: {ANI}\n", f"    email: {ANI}\n    mail_client: true\n", 1)
    path.write_text(text)
    add_config(store, f"agent_mail:\n  authserv_id: {AUTHSERV}\n{extra}")


@pytest.fixture
def am_store(mail_store):
    enable_agent_mail(mail_store)
    return mail_store


def mails_to(store, addr: str) -> list:
    return [email.message_from_bytes(m["data"], policy=default_policy)
            for m in store.smtp.messages if addr in m["to"]]


def events(store, kind: str) -> list[dict]:
    return [ev for ev, _ in store.log.read() if ev["type"] == kind]


def customer_ticket(store, tix, body="Halo, pesanan saya INV-1001 belum sampai.") -> None:
    store.imap.deliver(make_mail(body=body))
    assert tix("fetch").returncode == 0


def assigned_mail(store, tix, number: int = 1):
    """Assign ticket `number` to ani, run fetch; the mail ani got."""
    assert tix("assign", str(number), "ani").returncode == 0
    assert tix("fetch").returncode == 0
    mails = [m for m in mails_to(store, ANI) if f"[#{number}]" in str(m["Subject"])]
    assert mails, store.smtp.messages
    return mails[-1]


def agent_reply(reply_to: str, body: str, frm: str = f"Ani Lestari <{ANI}>", subject="Re: [#1] Pesanan",
                auth: str | None = f"{AUTHSERV}; dkim=pass header.d=example.co.id; spf=pass "
                                   f"smtp.mailfrom={ANI}") -> bytes:
    headers = {"Authentication-Results": auth} if auth else {}
    return make_mail(subject=subject, body=body, frm=frm, to=reply_to, headers=headers)


QUOTE = "\n\n-- \nAni Lestari\nToko Contoh\n\nOn Fri, 20 Nov 2026 at 10:00, Toko Support wrote:\n> Halo, pesanan saya\n"


def append(store, raw: bytes) -> None:
    """Put a mail into the support mailbox by IMAP APPEND (as a mail client or an MDA would)."""
    client = store.imap.client()
    try:
        client.append("INBOX", raw)
    finally:
        client.logout()


def customer_mails(store) -> list:
    return mails_to(store, CUSTOMER)


# -- the mail to the agent ---------------------------------------------------------------------
def test_assignment_mail_reaches_the_agent_with_summary_and_reply_token(am_store, tix):
    customer_ticket(am_store, tix)
    assert mails_to(am_store, ANI) == []  # not assigned: nobody is mailed
    mail = assigned_mail(am_store, tix)
    body = mail.get_content()
    assert "INV-1001 belum sampai" in body and "#1" in body and "#note" in body
    assert str(mail["Subject"]).startswith("[#1] ")
    reply_to = str(mail["Reply-To"])
    tag = agentauth.find_tag([reply_to], "support@toko.example")
    assert tag and tag.startswith("t1.ani.")
    assert (am_store.path("state", "agent-mail.key").stat().st_mode & 0o777) == 0o600
    # running again sends nothing twice
    assert tix("fetch").returncode == 0
    assert len(mails_to(am_store, ANI)) == 1


def test_customer_reply_on_an_assigned_ticket_mails_the_agent(am_store, tix):
    customer_ticket(am_store, tix)
    first = assigned_mail(am_store, tix)
    am_store.imap.deliver(make_mail(subject="Re: [#1] Pesanan belum sampai", body="Sudah seminggu, tolong dicek."))
    assert tix("fetch").returncode == 0
    mails = mails_to(am_store, ANI)
    assert len(mails) == 2 and "Sudah seminggu" in mails[-1].get_content()
    assert str(mails[-1]["Reply-To"]) != str(first["Reply-To"])  # names the newer event


def test_agent_without_mail_client_gets_nothing(mail_store, tix):
    customer_ticket(mail_store, tix)
    assert tix("assign", "1", "ani").returncode == 0
    assert tix("fetch").returncode == 0
    assert mails_to(mail_store, ANI) == []


# -- the agent's reply -------------------------------------------------------------------------
def test_agent_reply_goes_to_the_customer_without_quote_and_signature(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    raw = agent_reply(reply_to, "Dana sudah kami kembalikan, mohon cek 1-3 hari kerja." + QUOTE)
    append(am_store, raw)
    assert tix("fetch").returncode == 0
    (sent,) = customer_mails(am_store)
    text = sent.get_content()
    assert "Dana sudah kami kembalikan" in text
    assert "Ani Lestari" not in text and "> Halo" not in text and "wrote:" not in text
    assert "[#1]" in str(sent["Subject"])
    (ev,) = events(am_store, "message.sent")
    assert ev["actor"] == "user:ani" and ev["ticket"] == 1
    (got,) = events(am_store, "agentmail.received")
    assert got["data"]["outcome"] == "replied" and got["actor"] == "user:ani"
    assert tix("check").returncode == 0 and tix("rebuild").returncode == 0
    assert am_store.ticket(1)["first_response_at"] == ev["ts"]
    # the same mail again (another folder, a re-scan) is a no-op
    append(am_store, raw)
    assert tix("fetch").returncode == 0
    assert len(customer_mails(am_store)) == 1 and len(events(am_store, "agentmail.received")) == 1
    # a second reply to the same mail is no collision: the agent's own reply is not another's
    append(am_store, agent_reply(reply_to, "Satu lagi: nomor resinya JNE123." + QUOTE))
    assert tix("fetch").returncode == 0
    assert len(customer_mails(am_store)) == 2


def test_agent_reply_on_a_whatsapp_ticket_goes_out_through_the_cloud_api(am_store, wa_store, graph, tix):
    spool(wa_store, text_payload("wamid.A1", "Paket saya belum sampai", ts=int(utcnow().timestamp()) - 60))
    assert tix("fetch").returncode == 0
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "Paket sedang dikirim ulang hari ini." + QUOTE))
    assert tix("fetch").returncode == 0
    texts = [r["json"]["text"]["body"] for r in graph.sent() if r["json"].get("type") == "text"]
    assert texts == ["Paket sedang dikirim ulang hari ini."]
    assert customer_mails(am_store) == []


@pytest.mark.parametrize("first_line,expect", [("#pending", "pending"), ("#resolve", "resolved")])
def test_status_commands_reply_and_set_the_status(am_store, tix, first_line, expect):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, f"{first_line}\nMohon kirim foto resinya." + QUOTE))
    assert tix("fetch").returncode == 0
    assert am_store.ticket(1)["status"] == expect
    (sent,) = customer_mails(am_store)
    assert "Mohon kirim foto resinya." in sent.get_content() and first_line not in sent.get_content()


def test_status_command_alone_sends_nothing(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "#resolve" + QUOTE))
    assert tix("fetch").returncode == 0
    assert am_store.ticket(1)["status"] == "resolved" and customer_mails(am_store) == []


def test_note_command_is_an_internal_note(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "#note\nPelanggan ini sudah tiga kali komplain." + QUOTE))
    assert tix("fetch").returncode == 0
    assert customer_mails(am_store) == []
    notes = [e for e in events(am_store, "ticket.note") if e["ticket"] == 1]
    assert notes[-1]["data"]["body"] == "Pelanggan ini sudah tiga kali komplain." and notes[-1]["actor"] == "user:ani"


def test_assign_command_reassigns(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "#assign budi\nSoal refund, Budi yang pegang." + QUOTE))
    assert tix("fetch").returncode == 0
    assert am_store.ticket(1)["assignee"] == "budi" and customer_mails(am_store) == []
    (upd,) = [e for e in events(am_store, "ticket.updated") if e["data"]["set"].get("assignee") == "budi"]
    assert upd["actor"] == "user:ani"


def test_unknown_command_bounces_back_to_the_agent(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "#close\nSelesai." + QUOTE))
    assert tix("fetch").returncode == 0
    assert customer_mails(am_store) == []
    refusal = mails_to(am_store, ANI)[-1]
    assert "unknown command #close" in refusal.get_content()
    assert am_store.ticket(1)["status"] != "closed"


def test_collision_keeps_the_text_as_a_note_and_tells_the_agent(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    # the customer writes again before the agent's reply (to the older mail) arrives
    am_store.imap.deliver(make_mail(subject="Re: [#1] Pesanan belum sampai", body="Oh, sudah sampai ternyata!"))
    assert tix("fetch").returncode == 0
    append(am_store, agent_reply(reply_to, "Kami kirim ulang paketnya." + QUOTE))
    assert tix("fetch").returncode == 0
    assert customer_mails(am_store) == []
    refusal = mails_to(am_store, ANI)[-1]
    line = refusal.get_content().strip()
    assert "newer customer message" in line and "\n" not in line
    notes = [e for e in events(am_store, "ticket.note") if e["data"].get("kind") == "agent_mail_refused"]
    assert "Kami kirim ulang paketnya." in notes[0]["data"]["body"]


# -- forged mail: quarantined, nothing reaches the customer ---------------------------------------
def _quarantine(tix) -> list[dict]:
    out = tix("quarantine", "list", "--format", "json")
    return orjson.loads(out.stdout)


@pytest.mark.parametrize("case", ["no-token", "bad-token", "dkim-fail", "other-agent-token", "outsider"])
def test_forged_agent_mail_is_quarantined(am_store, tix, case):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    local, domain = reply_to.split("@")
    if case == "no-token":
        raw = agent_reply("support@toko.example", "Silakan transfer ke rekening 123.")
        reason = "without a reply token"
    elif case == "bad-token":
        raw = agent_reply(f"{local[:-4]}aaaa@{domain}", "Silakan transfer ke rekening 123.")
        reason = "does not verify"
    elif case == "dkim-fail":
        raw = agent_reply(reply_to, "Silakan transfer ke rekening 123.",
                          auth=f"{AUTHSERV}; dkim=fail header.d=example.co.id; spf=softfail smtp.mailfrom={ANI}")
        reason = "no DKIM or SPF pass"
    elif case == "other-agent-token":
        raw = agent_reply(reply_to, "Silakan transfer ke rekening 123.", frm="Budi <budi@example.co.id>")
        reason = "not from an agent with mail_client"
    else:
        raw = agent_reply(reply_to, "Silakan transfer ke rekening 123.", frm="Penipu <ani@example-co.id>")
        reason = "not from an agent with mail_client"
    append(am_store, raw)
    res = tix("fetch")
    assert res.returncode == 1 and "agent mail refused" in res.stderr and reason in res.stderr
    assert customer_mails(am_store) == []
    (entry,) = _quarantine(tix)
    assert reason in entry["error"]
    assert events(am_store, "message.sent") == []
    assert tix("fetch").returncode == 0  # not tried again


def test_authentication_results_of_another_server_are_not_trusted(am_store, tix):
    """A forger can write any header; only our authserv-id's counts, and a pass must be aligned."""
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "Oke.", auth=f"{AUTHSERV}; dkim=pass header.d=evil.example; "
                                                              "spf=pass smtp.mailfrom=x@evil.example"))
    assert tix("fetch").returncode == 1 and customer_mails(am_store) == []


# -- the pieces ----------------------------------------------------------------------------------
def test_auth_results_parsing_and_alignment():
    serv, res = agentauth.parse_auth_results(
        "mx.toko.example (Postfix); dkim=pass (2048-bit key) header.d=Example.co.id header.s=s1; "
        "spf=fail (sender not allowed) smtp.mailfrom=ani@example.co.id; dmarc=pass")
    assert serv == "mx.toko.example"
    assert res[0] == ("dkim", "pass", {"header.d": "example.co.id", "header.s": "s1"})
    assert res[1][:2] == ("spf", "fail") and res[2][:2] == ("dmarc", "pass")
    agentauth.check_auth_results(["other.example; dkim=fail", f"{AUTHSERV}; dkim=pass header.d=mail.example.co.id"],
                                 AUTHSERV, ANI)  # subdomain: aligned (relaxed)
    agentauth.check_auth_results(["x.example; dkim=fail"], AUTHSERV, ANI)  # none of ours: nothing to check
    with pytest.raises(agentauth.Refused):
        agentauth.check_auth_results([f"{AUTHSERV}; dkim=pass header.d=example.co"], AUTHSERV, ANI)


def test_token_round_trip_and_tamper():
    key = b"k" * 32
    tag = agentauth.token(key, 1042, "Ani", 5311)
    assert agentauth.check_token(key, tag) == (1042, "ani", 5311)
    addr = agentauth.reply_address("support@toko.example", tag)
    assert agentauth.find_tag([addr.upper()], "support@toko.example") == tag
    other_key = agentauth.token(b"x", 1042, "ani", 5311)
    for bad in (tag.replace("t1042", "t1043"), tag.replace(".5311.", ".5312."), other_key):
        with pytest.raises(agentauth.Refused):
            agentauth.check_token(key, bad)


def test_config_errors_name_the_line(store, tix):
    path = store.path("tix.yaml")
    text = path.read_text().replace("    email: ani@example.co.id\n", "    mail_client: true\n", 1)
    text = text.replace("  budi:\n", "  budi.s:\n    mail_client: true\n", 1)
    path.write_text(text + "\nagent_mail:\n  authserv: mx.example\n  summary: -1\n")
    res = tix("config", "check")
    assert res.returncode == 2
    assert "agent 'ani': mail_client needs the agent's email address" in res.stderr
    assert "agent 'budi.s': mail_client needs a login of letters" in res.stderr
    assert "agent_mail: unknown key 'authserv' (did you mean 'authserv_id'?)" in res.stderr
    assert "agent_mail: summary must be 0 or more" in res.stderr
    assert all(line.startswith(str(path) + ":") for line in res.stderr.splitlines())


def test_config_check_renders_the_agent_mail_template(store, tix, smtp_server):
    add_config(store, smtp_server.outbound_yaml())
    enable_agent_mail(store)
    assert tix("config", "check").returncode == 0, tix("config", "check").stderr
    store.path("templates", "agent_mail.txt.j2").write_text("Tiket {{ ticket.ref }}\n{{ tiket.subject }}\n")
    res = tix("config", "check")
    assert res.returncode == 2
    assert "templates/agent_mail.txt.j2:2:" in res.stderr and "tiket" in res.stderr


def test_without_an_authentication_results_header_the_token_and_from_suffice(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "Baik, kami cek dulu.", auth=None))
    assert tix("fetch").returncode == 0
    assert len(customer_mails(am_store)) == 1


def test_out_of_office_from_the_agent_is_recorded_and_ignored(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    raw = make_mail(subject="Out of office", body="Saya cuti sampai Senin.", frm=ANI, to=reply_to,
                    headers={"Auto-Submitted": "auto-replied"})
    append(am_store, raw)
    assert tix("fetch").returncode == 0
    assert customer_mails(am_store) == [] and _quarantine(tix) == []
    (got,) = events(am_store, "agentmail.received")
    assert got["data"]["outcome"].startswith("ignored: an automatic mail")


def test_whatsapp_window_closed_bounces_back(am_store, wa_store, graph, tix):
    spool(wa_store, text_payload("wamid.B1", "Halo?", ts=int(utcnow().timestamp()) - 3 * 86400))
    assert tix("fetch").returncode == 0
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "Maaf terlambat." + QUOTE))
    assert tix("fetch").returncode == 0
    assert [r for r in graph.sent() if r["json"].get("type") == "text"] == []
    assert "24" in mails_to(am_store, ANI)[-1].get_content()


def test_checks_hold_when_mail_is_parsed_in_worker_processes(am_store, tix, monkeypatch):
    """Parse workers drop the header object: the Authentication-Results check must read the raw."""
    from tix.ingest.parsing import Parser

    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    monkeypatch.setenv("TIX_PARSE_WORKERS", "1")
    monkeypatch.setattr(Parser, "MAIN_SHARE", 0.0)  # every message of the chunk parsed in the worker
    for i in range(Parser.MIN_POOL):
        am_store.imap.deliver(make_mail(subject=f"Pertanyaan {i}", frm=f"c{i}@pelanggan.example"))
    append(am_store, agent_reply(reply_to, "Transfer ke rekening 999.",
                                 auth=f"{AUTHSERV}; dkim=fail header.d=example.co.id; spf=fail smtp.mailfrom={ANI}"))
    append(am_store, agent_reply(reply_to, "Sudah kami proses." + QUOTE))
    res = tix("fetch")
    assert res.returncode == 1 and "no DKIM or SPF pass" in res.stderr
    assert [m.get_content().strip() for m in customer_mails(am_store)] == ["Sudah kami proses."]


def test_the_scan_position_is_a_cache(am_store, tix):
    """Lost or stale (the log rewritten by an erasure), the position is rebuilt: nothing is mailed twice."""
    customer_ticket(am_store, tix)
    assigned_mail(am_store, tix)
    assert tix("note", "1", "-m", "Budi: cek resi JNE", "--as", "budi").returncode == 0  # a later event
    cursor = am_store.path("state", "agent-mail.json")
    saved = orjson.loads(cursor.read_bytes())
    cursor.write_bytes(orjson.dumps({**saved, "seq": saved["seq"] + 7}))  # no longer ends that event
    assert tix("fetch").returncode == 0
    cursor.unlink()
    assert tix("fetch").returncode == 0
    assert len(mails_to(am_store, ANI)) == 1
    assert orjson.loads(cursor.read_bytes())["seq"] >= saved["seq"]


def test_a_reassigned_ticket_is_not_the_former_agents_to_answer(am_store, tix):
    customer_ticket(am_store, tix)
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    assert tix("assign", "1", "budi").returncode == 0
    append(am_store, agent_reply(reply_to, "#resolve\nSudah beres." + QUOTE))
    assert tix("fetch").returncode == 0
    assert customer_mails(am_store) == [] and am_store.ticket(1)["status"] == "open"
    assert "now assigned to budi" in mails_to(am_store, ANI)[-1].get_content()
    append(am_store, agent_reply(reply_to, "#note\nUntuk Budi: resi JNE123." + QUOTE))  # a note is still welcome
    assert tix("fetch").returncode == 0
    assert [e for e in events(am_store, "ticket.note") if e["data"].get("kind") == "agent_mail"]


def test_erasing_the_customer_leaves_nothing_of_them_in_the_agent_mail(am_store, tix):
    customer_ticket(am_store, tix, body="Halo, pesanan saya INV-1001 belum sampai, alamat Jl. Melati 7.")
    reply_to = str(assigned_mail(am_store, tix)["Reply-To"])
    append(am_store, agent_reply(reply_to, "Paket ke Jl. Melati 7 sudah dikirim ulang." + QUOTE))
    assert tix("fetch").returncode == 0
    assert tix("contact", "erase", "1", "--why", "test").returncode == 0
    log = b"".join(p.read_bytes() for p in am_store.path("events").iterdir())
    assert b"Melati" not in log and CUSTOMER.encode() not in log
    packs = b"".join(p.read_bytes() for p in am_store.path("messages").rglob("*") if p.is_file())
    assert b"Melati" not in packs
