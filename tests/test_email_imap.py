"""Against a real Dovecot (and aiosmtpd for replies): fetch, acknowledge, thread end to end."""
from __future__ import annotations

import email

import pytest

from tests.plugins.email import add_config, make_mail
from tix.channels.mail.parse import stored_text
from tix.ingest import fetch_all


def received(store):
    return [ev for ev, _ in store.log.read() if ev["type"] == "message.received"]


def test_fetch_reply_and_customer_answer_thread_end_to_end(mail_store, tix):
    user, smtp = mail_store.imap, mail_store.smtp
    user.deliver(make_mail(subject="Pengembalian dana INV-2001", msgid="<c1@pelanggan.example>"))
    user.deliver(make_mail(subject="Shipping question", frm="John <john@customer.example>", msgid="<c2@x>"))
    tix("fetch", check=0)
    assert mail_store.ticket(1)["subject"] == "Pengembalian dana INV-2001"
    assert mail_store.ticket(2)["inbox"] == "support@toko.example"
    # the agent replies; aiosmtpd receives it
    tix("--as", "budi", "reply", "1", "-m", "Dana sudah kami proses, mohon tunggu 3 hari kerja.", check=0)
    (sent,) = smtp.messages
    out = email.message_from_bytes(sent["data"])
    assert sent["to"] == ["sari@pelanggan.example"] and out["From"] == "Toko Support <support@toko.example>"
    assert out["Subject"] == "Re: Pengembalian dana INV-2001 [#1]"
    assert out["In-Reply-To"] == "<c1@pelanggan.example>" and out["Message-ID"].startswith("<tix.1.")
    assert out["Auto-Submitted"] is None
    t = mail_store.ticket(1)
    assert t["first_response_at"] is not None and t["messages_out"] == 1
    # the customer answers from their mail client: In-Reply-To is our Message-ID
    answer = make_mail(subject="Re: Pengembalian dana INV-2001 [#1]", body="Terima kasih!\n\n> Dana sudah",
                       msgid="<c3@pelanggan.example>", in_reply_to=out["Message-ID"],
                       references=f"<c1@pelanggan.example> {out['Message-ID']}")
    user.deliver(answer)
    # and a reply whose client dropped the headers still threads by the subject tag
    user.deliver(make_mail(subject="Re: Pengembalian dana INV-2001 [#1]", msgid="<c4@pelanggan.example>"))
    tix("fetch", check=0)
    evs = received(mail_store)
    assert [e["ticket"] for e in evs] == [1, 2, 1, 1]
    assert evs[2]["data"]["text"] == "Terima kasih!" and "text_full" not in evs[2]["data"]  # the raw has it:
    assert stored_text(mail_store, evs[2]["data"]).endswith("> Dana sudah")
    assert mail_store.read().max_ticket == 2


def test_messages_are_flagged_seen_only_after_storing_and_refetch_is_a_noop(mail_store):
    user = mail_store.imap
    for i in range(7):
        user.deliver(make_mail(subject=f"m{i}", msgid=f"<s{i}@x>"))
    c = user.client()
    c.select_folder("INBOX")
    assert c.search(["SEEN"]) == []
    rep = fetch_all(mail_store)
    assert rep.stored == 7 and rep.errors == []
    c.select_folder("INBOX")
    assert len(c.search(["SEEN"])) == 7
    # forget the cursor: everything is read again, and nothing is stored twice
    (mail_store.root / "state" / "imap" / "support.json").unlink()
    rep = fetch_all(mail_store)
    assert (rep.stored, rep.duplicates) == (0, 7)
    assert len(received(mail_store)) == 7
    c.logout()


def test_uidvalidity_change_rescans_safely(mail_store):
    user = mail_store.imap
    user.deliver(make_mail(msgid="<u1@x>"))
    fetch_all(mail_store)
    # the server renumbers the folder (e.g. a restored mailbox): simulate with a stale cursor
    import json

    cur = mail_store.root / "state" / "imap" / "support.json"
    data = json.loads(cur.read_text())
    data["INBOX"]["uidvalidity"] -= 1
    data["INBOX"]["last_uid"] = 99
    cur.write_text(json.dumps(data))
    user.deliver(make_mail(msgid="<u2@x>", subject="new after renumbering"))
    rep = fetch_all(mail_store)
    assert (rep.stored, rep.duplicates) == (1, 1)
    assert [e["data"]["message_id"] for e in received(mail_store)] == ["<u1@x>", "<u2@x>"]


def test_move_after_storing_and_outage_catch_up(store, imap_user, tix):
    c = imap_user.client()
    c.create_folder("Processed")
    add_config(store, "channels:\n" + imap_user.source_yaml(after="move", move_to="Processed", batch=3))
    for i in range(10):  # mail that arrived during a long outage: all of it is fetched
        imap_user.deliver(make_mail(subject=f"outage {i}", msgid=f"<o{i}@x>"))
    tix("fetch", check=0)
    assert store.read().max_ticket == 10
    c.select_folder("INBOX")
    assert c.search(["ALL"]) == []
    c.select_folder("Processed")
    assert len(c.search(["ALL"])) == 10
    c.logout()


def test_wrong_password_is_a_failed_source_exit_1(store, imap_user, tix):
    add_config(store, "channels:\n" + imap_user.source_yaml())
    imap_user.deliver(make_mail())
    proc = tix("fetch", env={"TIX_TEST_IMAP_PASSWORD": "wrong"})
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: source support: IMAP 127.0.0.1:{imap_user.port}: login refused for user")
    assert "wrong" not in proc.stderr  # the secret never appears
    assert store.read().max_ticket == 0


def test_batch_cap_leaves_the_rest_for_the_next_run(store, imap_user):
    add_config(store, "channels:\n" + imap_user.source_yaml(limit=4, batch=2))
    for i in range(9):
        imap_user.deliver(make_mail(subject=f"cap {i}", msgid=f"<cap{i}@x>"))
    reps = [fetch_all(store) for _ in range(3)]
    assert [(r.stored, r.left) for r in reps] == [(4, 5), (4, 1), (1, 0)]
    assert [e["data"]["subject"] for e in received(store)] == [f"cap {i}" for i in range(9)]


@pytest.mark.parametrize("security", ["plain"])
def test_source_contract_items_have_keys(store, imap_user, security):
    from tix.channels.base import open_source, sources

    add_config(store, "channels:\n" + imap_user.source_yaml())
    raw = make_mail(msgid="<k@x>")
    imap_user.deliver(raw)
    src = open_source(store, sources(store.config)[0])
    try:
        (item,) = list(src.items())
    finally:
        src.close()
    assert item.key.startswith("imap:support:INBOX:") and item.key.endswith(":1")
    assert item.raw.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_a_copy_of_our_own_reply_coming_back_is_not_a_customer_message(mail_store, tix):
    user, smtp = mail_store.imap, mail_store.smtp
    user.deliver(make_mail(msgid="<own1@pelanggan.example>"))
    tix("fetch", check=0)
    tix("reply", "1", "-m", "Baik, kami proses.", check=0)
    user.deliver(smtp.messages[0]["data"])  # e.g. Bcc'd to the support mailbox
    proc = tix("-v", "fetch", check=0)
    assert "1 already stored" in proc.stdout
    t = mail_store.ticket(1)
    assert (t["messages_in"], t["messages_out"]) == (1, 1)


def test_imaplib_does_not_format_every_response_for_a_silent_logger(store, imap_user):
    """imapclient turns imaplib's debug output on (level 5, sent to a logger): with that
    logger silent, tix turns it off, or every message body is repr-formatted for nothing."""
    import logging

    from tix.channels.base import open_source, sources

    add_config(store, "channels:\n" + imap_user.source_yaml())
    imap_user.deliver(make_mail(msgid="<q@x>"))
    src = open_source(store, sources(store.config)[0])
    try:
        assert len(list(src.items())) == 1
        assert src.client._imap.debug == 0
    finally:
        src.close()
    logger = logging.getLogger("imapclient.imaplib")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    src = open_source(store, sources(store.config)[0])
    try:
        list(src.items())
        assert src.client._imap.debug == 5  # someone debugging a server keeps imaplib's lines
    finally:
        src.close()
        logger.setLevel(old)


def _bodies(raws):
    return [r.replace(b"\r\n", b"\n") for r in raws]


def test_the_usual_fetch_answer_is_read_without_imapclients_lexer(store, imap_user, monkeypatch):
    """`UID FETCH … (BODY.PEEK[])` answered as servers do (`N (UID U BODY[] {n}` …) is read
    with a regex: imapclient's general lexer cost the fetch thread 26 ms per 1,000 messages."""
    import imapclient.imapclient
    import imapclient.response_parser

    from tix.channels.base import open_source, sources

    def refuse(*a, **k):
        raise AssertionError("imapclient's FETCH parser was used")

    monkeypatch.setattr(imapclient.imapclient, "parse_fetch_response", refuse)
    monkeypatch.setattr(imapclient.response_parser, "parse_fetch_response", refuse)
    add_config(store, "channels:\n" + imap_user.source_yaml(batch=3))
    raws = [make_mail(subject=f"usual {i}", msgid=f"<usual{i}@x>", body="Ä ü 8-bit ✓ " * i) for i in range(7)]
    for raw in raws:
        imap_user.deliver(raw)
    src = open_source(store, sources(store.config)[0])
    try:
        items = list(src.items())
    finally:
        src.close()
    assert [it.meta["uid"] for it in items] == list(range(1, 8))
    assert _bodies(it.raw for it in items) == _bodies(raws)


def test_other_fetch_answers_go_to_imapclients_parser(store, imap_user):
    """FLAGS sent along, an unsolicited FETCH of another message, a body before its UID:
    the same bodies as imapclient's own parser gives."""
    from imapclient.response_parser import parse_fetch_response

    from tix.channels.base import open_source, sources
    from tix.channels.mail.imap import bodies_of, fetch_bodies

    def theirs(data):
        return {uid: bytes(v[b"BODY[]"]) for uid, v in parse_fetch_response(data, True, True).items()
                if b"BODY[]" in v}

    shapes = [
        [(b"1 (BODY[] {3}", b"abc"), b" UID 7)"],
        [(b"1 (UID 7 FLAGS (\\Seen) BODY[] {3}", b"abc"), b")"],
        [b"3 (FLAGS (\\Seen) UID 9)", (b"1 (UID 7 BODY[] {3}", b"abc"), b")"],
        [(b"1 (UID 7 BODY[] {3}", b"abc"), b")", (b"2 (UID 8 BODY[] {0}", b""), b")"],
    ]
    for data in shapes:
        assert bodies_of(data) == theirs(data) and 7 in bodies_of(data), data
    assert bodies_of([None]) == {}
    # a real server: another client flags message 2 meanwhile; Dovecot tells this connection
    # with an unsolicited `* 2 FETCH (FLAGS …)` in the answer to the next FETCH
    add_config(store, "channels:\n" + imap_user.source_yaml())
    raws = [make_mail(subject=f"flagged {i}", msgid=f"<fl{i}@x>") for i in range(3)]
    for raw in raws:
        imap_user.deliver(raw)
    src = open_source(store, sources(store.config)[0])
    other = imap_user.client()
    try:
        client = src.connect()
        client.select_folder("INBOX")
        other.select_folder("INBOX")
        other.add_flags([2], [b"\\Flagged"])
        got = fetch_bodies(client, [1, 3])
        assert sorted(got) == [1, 3]
        assert _bodies([got[1], got[3]]) == _bodies([raws[0], raws[2]])
        assert fetch_bodies(client, [99]) == {}  # a UID expunged meanwhile: left out
    finally:
        other.logout()
        src.close()
