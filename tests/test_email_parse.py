"""The mail parser on odd mail, and the whole shared corpus through `tix fetch`.

Corpus: tests/data/email/ (125 messages from the test suites of django-helpdesk,
mail-parser, flanker and CPython; licences in each folder's LICENSE file).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from tests.plugins.email import add_config
from tix.store import quarantine
from tix.channels.base import read_raw
from tix.channels.mail import parse as mp

CORPUS = Path(__file__).resolve().parent / "data" / "email"
SKIP = {"README.md", "LICENSE", "NOTICE"}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in SKIP)


def test_corpus_is_there():
    assert len(corpus_files()) == 125


def test_every_corpus_message_ingests_as_ticket_or_quarantine(store, tmp_path, tix):
    md = tmp_path / "corpus"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    files = corpus_files()
    for i, p in enumerate(files):
        shutil.copyfile(p, md / "new" / f"{i:04d}.{p.parent.name}.{p.name}")
    add_config(store, f"channels:\n  - name: corpus\n    type: maildir\n    path: {md}\n    after: seen\n")
    proc = tix("-v", "fetch")
    assert proc.returncode == 1  # some are quarantined, with their reasons
    assert "Traceback" not in proc.stderr
    stored = {}
    for ev, _ in store.log.read():
        d = ev["data"]
        if ev["type"] in ("message.received", "message.unmatched") or (
                ev["type"] == "ticket.note" and d.get("kind") == "bounce"):
            stored[d["source_key"]] = ev
    entries = quarantine.entries(store)
    quarantined = {e["key"] for e in entries}
    keys = {f"maildir:corpus:{i:04d}.{p.parent.name}.{p.name}" for i, p in enumerate(files)}
    # content-identical copies (same Message-ID and body) are stored once, as duplicates
    dup_count = len(keys - set(stored) - quarantined)
    assert f"{dup_count} already stored" in proc.stdout
    assert dup_count <= 4
    assert not (set(stored) & quarantined)
    assert all(e["error"] for e in entries)
    assert {"not an RFC 5322 message: an Outlook .msg (CFB) file"} <= {e["error"] for e in entries}
    assert len(entries) <= 15  # only messages with no header or no sender
    assert list((md / "new").iterdir()) == []  # every message acknowledged
    # stored raw is byte-identical
    for key, ev in stored.items():
        name = key.split(":", 2)[2]
        original = next(p for i, p in enumerate(files) if f"{i:04d}.{p.parent.name}.{p.name}" == name)
        assert read_raw(store, ev["data"]) == original.read_bytes()
    again = tix("fetch")
    assert again.returncode == 0 and again.stderr == ""


@pytest.mark.parametrize("name,check", [
    ("django-helpdesk/utf-nondecodable.eml", lambda p: "změna" in p.subject and p.text_full),
    ("django-helpdesk/quoted_printable.eml", lambda p: p.subject == "Český test" and "českých písmen" in p.text_full),
    ("mail-parser/mail_test_9", lambda p: p.html is not None and p.text_full and "<" not in p.text_full[:50]),
    ("mail-parser/mail_test_12", lambda p: p.subject and p.from_addr == "baoguan@hotmail.com"),
    ("flanker/enclosed.eml", lambda p: any(a.type == "message/rfc822" for a in p.attachments)),
    ("flanker/bounce/no-mx.eml", lambda p: p.bounce and p.auto_reason),
    ("mail-parser/mail_test_15", lambda p: len(p.attachments) == 1),
])
def test_corpus_samples_parse_well(name, check):
    parsed = mp.parse((CORPUS / name).read_bytes())
    assert check(parsed)


def test_unknown_charset_falls_back_instead_of_failing():
    raw = (b"From: a@b.example\nSubject: =?x-unknown-cs?B?SGFsbw==?=\nContent-Type: text/plain; charset=x-foo\n"
           b"Content-Transfer-Encoding: 8bit\n\nHarga Rp\xa0100.000 sudah termasuk ongkir\n")
    p = mp.parse(raw)
    assert "Harga Rp" in p.text_full and "ongkir" in p.text_full
    assert p.subject  # the undecodable encoded word is kept, not an exception


def test_html_only_mail_becomes_readable_text():
    raw = (b"From: a@b.example\nSubject: hi\nContent-Type: text/html; charset=utf-8\n\n"
           b"<html><head><style>p{color:red}</style></head><body><p>Halo&nbsp;kak,</p>"
           b"<p>Cek <a href='https://toko.example/o/1'>pesanan</a></p><script>x()</script></body></html>")
    p = mp.parse(raw)
    assert p.text_full == "Halo kak,\n\nCek pesanan (https://toko.example/o/1)"
    assert p.html and "<p>" in p.html


def test_calendar_invite_is_an_attachment_with_its_fields():
    raw = (b"From: a@b.example\nSubject: Meeting\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=X\n\n"
           b"--X\nContent-Type: text/plain\n\nSee invite\n--X\nContent-Type: text/calendar; method=REQUEST\n\n"
           b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Review refund\r\n"
           b"DTSTART:20261125T030000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--X--\n")
    p = mp.parse(raw)
    assert p.calendar == [{"method": "REQUEST", "summary": "Review refund", "dtstart": "20261125T030000Z"}]
    assert [a.type for a in p.attachments] == ["text/calendar"]


@pytest.mark.parametrize("text,new", [
    ("Terima kasih.\n\nPada Sen, 23 Nov 2026 10.00, Toko <s@t> menulis:\n> lama\n> lama", "Terima kasih."),
    ("Thanks!\nOn Mon, Nov 23, 2026 at 10:00 AM Toko <s@t> wrote:\n> old", "Thanks!"),
    ("Ok\n\n-----Original Message-----\nFrom: x\nold", "Ok"),
    ("Baik\n> a\n> b\n> c", "Baik"),
    ("No quote here\n> inline quote\nmy answer\nmore\nmore", "No quote here\n> inline quote\nmy answer\nmore\nmore"),
])
def test_quoted_history_is_split_from_the_new_text(text, new):
    assert mp.split_quoted(text) == new


@pytest.mark.parametrize("headers,reason", [
    ({"Auto-Submitted": "auto-replied"}, "auto-submitted:auto-replied"),
    ({"Auto-Submitted": "no"}, None),
    ({"X-Autoreply": "yes"}, "x-autoreply"),
    ({"Precedence": "bulk"}, "precedence:bulk"),
    ({"Precedence": "list"}, "precedence:list"),
    ({"List-Id": "<a.b>"}, "list-id"),
    ({"X-Loop": "support@toko.example"}, "x-loop"),
    ({"From": "MAILER-DAEMON@mx.example"}, "mailer-daemon"),
    ({"From": "Shop <no-reply@shop.example>"}, "noreply-sender"),
    ({"From": "support@toko.example"}, "own-address"),
    ({"From": "sari@pelanggan.example"}, None),
])
def test_is_auto_submitted(headers, reason):
    assert mp.is_auto_submitted(headers, ("support@toko.example",)) == reason


def test_garbage_never_raises_anything_but_unparseable():
    for raw in (b"", b"\x00\x01\x02", b"From: \n\n", b"Content-Type: multipart/mixed; boundary=\n\n--\n",
                b"From: a@b.c\nContent-Type: multipart/mixed; boundary=q\n\n"
                + b"--q\nContent-Type: multipart/mixed; boundary=q\n\n" * 3000):
        try:
            mp.parse(raw)
        except mp.Unparseable as exc:
            assert str(exc)


def test_event_json_round_trip_of_odd_subjects(store):
    p = mp.parse(b"From: a@b.example\nSubject: =?utf-8?B?8J+YgCBFbW9qaSDinJM=?=\n\nx\n")
    assert orjson.loads(orjson.dumps({"s": p.subject}))["s"] == "\U0001f600 Emoji \u2713"


def test_fast_paths_parse_like_the_stdlib_parser(monkeypatch):
    """`parse._multipart` cuts a one-level multipart at its delimiters instead of feeding the
    body to the stdlib parser line by line, and `_fast_head` reads plain header blocks itself:
    every corpus message, and odd delimiters and headers, must come out exactly as the stdlib
    parser makes them (or fall back to it)."""
    import dataclasses

    def parsed(raw: bytes):
        try:
            d = dataclasses.asdict(mp.parse(raw))
        except mp.Unparseable as exc:
            return str(exc)
        d.pop("headers")
        return d

    odd = [b"From: a@b.example\nContent-Type: multipart/mixed; boundary=b\n\n" + body for body in (
        b"--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/csv; name=x.csv\n\n1,2\n--b--\n",
        b"pre\r\n--b  \r\n\r\nno header\r\n--bX\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
        b"--b\nContent-Type: text/plain\n\nno closing delimiter\n",
        b"--b\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n--b--\n",
        b"--b\nContent-Type: text/plain\n\none\n--b--\n--b\nContent-Type: text/plain\n\nafter the end\n--b--\n")]
    odd += [b"From: a@b.example\r\nSubject: folded\r\n  over =?utf-8?q?two?=\r\n\tlines\r\n"
            b"To:\r\n c@d.example\r\n\r\nx",
            b" From: continues nothing\nFrom: a@b.example\n\nx", b"From a@b Mon Jan 1\nFrom: a@b.example\n\nx",
            b"From: a@b.example\nnot a header\nSubject: s\n\nx", b"From: a@b.example\x0bSubject: s\n\nx",
            b"From: a@b.example\rSubject: old Mac\r\rx"]
    raws = [p.read_bytes() for p in corpus_files()] + odd
    fast = [parsed(raw) for raw in raws]
    assert sum(mp._multipart(raw) is not None for raw in raws) >= 20  # the fast paths are taken
    assert sum(mp._fast_head(raw[:raw.find(b"\n\n") + 2]) is not None for raw in raws) >= 80
    monkeypatch.setattr(mp, "_multipart", lambda raw: None)
    monkeypatch.setattr(mp, "_fast_head", lambda head: None)
    assert fast == [parsed(raw) for raw in raws]
