"""pytest fixtures for the reports tests: a hand-built store whose right answers are known,
a real aiosmtpd server on loopback, and headless Chromium for screenshots.

The store (`report_store`, site time zone Asia/Jakarta = UTC+7; week 2026-W47 runs from
2026-11-15T17:00Z to 2026-11-22T17:00Z):

    #  created (UTC)        channel   team      assignee first reply  resolved  status
    1  11-16 02:00          email     support   ani      +1 h         +10 h     resolved
    2  11-17 03:00          whatsapp  support   ani      +2 h         +20 h     resolved
    3  11-18 04:00          email     billing   budi     +4 h         +30 h     resolved
    4  11-19 05:00          email     billing   budi     +8 h         -         open
    5  11-15 17:30 (W47!)   whatsapp  shipping  citra    +16 h        -         open
    6  11-15 16:30 (W46)    email     support   ani      +0.25 h      +0.4 h    resolved
    7  11-23 01:00 (W48)    whatsapp  shipping  -        -            -         new, urgent
    8  11-21 03:00          email     support   dewa     -            -         pending
    9  11-22 03:00          web       support   ani      -            -         open, subject <script>

Ticket 5 is Monday 00:30 in Jakarta but still Sunday in UTC: it belongs to W47 in the site
zone. `NOW` (2026-11-23T03:00Z, Monday 10:00 in Jakarta) pins the clock.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
XSS = "<script>alert(1)</script>"

_TICKETS = [
    # number, created, channel, team, assignee, first reply (h), resolved (h or datetime), status, priority, subject
    (1, "2026-11-16T02:00", "email", "support", "ani", 1, 10, None, "normal", "Paket belum sampai"),
    (2, "2026-11-17T03:00", "whatsapp", "support", "ani", 2, 20, None, "high", "Refund belum masuk"),
    (3, "2026-11-18T04:00", "email", "billing", "budi", 4, 30, None, "normal", "Invoice INV-1"),
    (4, "2026-11-19T05:00", "email", "billing", "budi", 8, None, "open", "normal", "Pembayaran gagal"),
    (5, "2026-11-15T17:30", "whatsapp", "shipping", "citra", 16, None, "open", "low", "Where is my order?"),
    (6, "2026-11-15T16:30", "email", "support", "ani", 0.25, 0.4, None, "normal", "Ganti nomor HP"),
    (7, "2026-11-23T01:00", "whatsapp", "shipping", None, None, None, "new", "urgent", "Barang rusak"),
    (8, "2026-11-21T03:00", "email", "support", "dewa", None, None, "pending", "normal", "Alamat salah"),
    (9, "2026-11-22T03:00", "web", "support", "ani", None, None, "open", "normal", XSS),
]


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_report_store(store) -> None:
    """Emit the events of the table above (explicit times) into `store`."""
    with store.writing(actor="system", via="test") as batch:
        for number, created, channel, team, assignee, reply_h, resolved_h, status, prio, subject in _TICKETS:
            t0 = datetime.fromisoformat(created).replace(tzinfo=timezone.utc)
            data = {"subject": subject, "channel": channel, "team": team, "priority": prio, "status": "new"}
            if assignee:
                data["assignee"] = assignee
            batch.emit("ticket.created", ticket=number, data=data, ts=_ts(t0), actor="channel:test")
            batch.emit("message.received", ticket=number, ts=_ts(t0), actor=f"channel:{channel}",
                       data={"channel": channel, "from": f"customer{number}@example.com", "subject": subject,
                             "text": "halo"})
            # an auto-reply at once: never counted as a first response
            batch.emit("message.sent", ticket=number, ts=_ts(t0 + timedelta(seconds=5)), actor="rule:autoreply",
                       data={"channel": channel, "to": [f"customer{number}@example.com"], "auto": True, "text": "ok"})
            if reply_h is not None:
                batch.emit("message.sent", ticket=number, ts=_ts(t0 + timedelta(hours=reply_h)),
                           actor=f"user:{assignee}", data={"channel": channel, "to": [f"customer{number}@example.com"],
                                                            "text": "Baik kak"})
            if resolved_h is not None:
                batch.emit("ticket.updated", ticket=number, ts=_ts(t0 + timedelta(hours=resolved_h)),
                           actor=f"user:{assignee}", data={"set": {"status": "resolved"}, "old": {"status": "open"}})
            elif status and status != "new":
                batch.emit("ticket.updated", ticket=number, ts=_ts(t0 + timedelta(minutes=30)),
                           actor="system", data={"set": {"status": status}, "old": {"status": "new"}})


@pytest.fixture
def report_store(store):
    """The `store` fixture filled with the tickets above."""
    build_report_store(store)
    return store


# -- a helpdesk's history, written by the real pipeline ------------------------------------------
# `desk` below: mail arrives in a maildir and is fetched (`tix.ingest.fetch_all`), rules route it
# (auto-reply, spam), agents assign, reply (through the outbox, to a real SMTP server), resolve and
# reopen with the core functions; every step at a set time (TIX_NOW and `now=`). Site time zone
# Asia/Jakarta (UTC+7): W45 = 11-01T17:00Z..11-08T17:00Z, W46 = ..11-15T17:00Z, W47 = ..11-22T17:00Z.
# SLA policy `standard` on a 24/7 calendar: first response 4 h, next response 4 h, resolution 2 d.
#
#  #   customer  what happens (UTC)
#  1   c1   11-03 02:00 new; ani 04:00 reply; 06:00 resolved (W45). 11-10 02:00 customer writes:
#           reopened (W46); ani 04:00 reply; 12:00 resolved (W46)              [reopen]
#  2   c2   11-12 03:00 new, budi (billing) 03:30; budi 05:00 reply; 11-13 02:00 reassigned to citra
#           (shipping); citra 04:00 resolves without a reply of her own (W46)  [reassignment]
#  3   c3   11-15 16:30 new (Sunday 23:30 in Jakarta: W46); citra 16:40; 11-16 01:00 reply; 02:00 resolved
#  4   c4   11-15 17:30 new (Monday 00:30 in Jakarta: W47); ani 17:40; 18:30 reply; 18:31 pending
#  5   c5   11-16 02:00 new; ani 03:00 reply; customer 05:00; ani 06:00; customer 07:00 ("thanks",
#           never answered); ani resolves 11-17 08:00                           [cycles, auto-replies]
#  6   c6   11-17 02:00 spam: the rule tags it `spam` and closes it            [spam]
#  7   c7   11-18 02:00 an out-of-office reply: a closed ticket tagged `auto`  [automatic mail]
#  8   c8   11-18 03:00 new, budi 03:10; 04:00 reply refused by the SMTP server (550: given up);
#           09:00 reply sent; stays open                                        [failed send]
#  9   c9   11-19 02:00 new, citra 02:30; 05:00 closed without any reply       [closed unanswered]
#  10  c10  11-19 03:00 new, ani 03:10; 04:00 reply; 11-20 03:00 resolved
# Every new email ticket but the spam gets an auto-reply from rule `ack` at once.
# `NOW` (11-23T03:00Z) is Monday 10:00 in Jakarta, in W48.
DESK_RULES = """\
- name: spam
  if:
    text:
      keywords: [slot gacor]
  then:
    - tag: [spam]
    - status: closed
  stop: true

- name: ack
  if:
    channel: email
  then:
    - auto_reply: auto_reply_received.txt.j2
"""

DESK_SLA = """
sla:
  policies:
    - name: standard
      targets: {first_response: 4h, next_response: 4h, resolution: 2d}
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class Desk:
    """Drives a store through the real pipeline at set times (see the table above)."""

    def __init__(self, store, smtp, monkeypatch, tmp_path):
        self.store, self.smtp, self.mp = store, smtp, monkeypatch
        self.maildir = tmp_path / "inbox"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for p in store.path("rules").glob("*.yaml"):
            p.unlink()
        store.path("rules", "10-desk.yaml").write_text(DESK_RULES, encoding="utf-8")
        with open(store.path("tix.yaml"), "a", encoding="utf-8") as fh:
            fh.write("\nchannels:\n  - name: inbox\n    type: maildir\n"
                     f"    path: {self.maildir}\n    after: keep\n    address: support@toko.example\n"
                     + smtp.outbound_yaml(auto_reply_cap=10) + DESK_SLA)
        store.reload_config()
        self.sent = 0

    def at(self, when: str) -> datetime:
        t = utc(when)
        self.mp.setenv("TIX_NOW", t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return t

    def mail(self, when: str, customer: str, subject: str, body: str = "Halo kak, mohon dibantu.",
             ticket: int | None = None, headers: dict | None = None) -> None:
        """A customer's message arrives; fetch, route (rules) and send what the rules queued."""
        from email.message import EmailMessage
        from email.utils import format_datetime

        from tix.ingest import fetch_all
        from tix.outbox import flush
        from tix.rules.engine import route

        t = self.at(when)
        msg = EmailMessage()
        msg["From"] = f"{customer} <{customer}@pelanggan.example>"
        msg["To"] = "support@toko.example"
        msg["Subject"] = f"Re: {subject} [#{ticket}]" if ticket else subject
        msg["Date"] = format_datetime(t)
        self.sent += 1
        msg["Message-ID"] = f"<m{self.sent}.{customer}@pelanggan.example>"
        for k, v in (headers or {}).items():
            msg[k] = v
        msg.set_content(body)
        name = f"{int(t.timestamp())}.m{self.sent}.desk"
        (self.maildir / "new" / name).write_bytes(bytes(msg))
        report = fetch_all(self.store, now=t)
        assert report.stored == 1, report
        route(self.store, now=t)
        flush(self.store, now=t)

    def act(self, when: str, agent: str, number: int, how: str, **kw):
        """An agent's action with the core functions: assign (kw agent=, team=), reply (text=),
        resolve, close, reopen, pending."""
        from tix import tickets

        self.at(when)
        with self.store.writing(actor=f"user:{agent}", via=f"tix {how}") as batch:
            row = tickets.get_ticket(batch, number)
            if how == "assign":
                tickets.assign(batch, row, kw.get("to", agent), team=kw.get("team"))
            elif how == "reply":
                from tix.outbox import queue

                queue(batch, row, row.get("channel") or "email", kw.get("text", "Baik kak, kami cek."))
            elif how == "resolve":
                tickets.close(batch, row, resolved=True)
            elif how == "close":
                tickets.close(batch, row)
            elif how == "reopen":
                tickets.reopen(batch, row)
            elif how == "pending":
                tickets.set_fields(batch, row, {"status": "pending"})
            else:
                raise ValueError(how)
        if how == "reply":
            from tix.outbox import flush

            self.smtp.reply_code = kw.get("smtp")
            try:
                flush(self.store, now=utc(when))
            finally:
                self.smtp.reply_code = None


DESK_NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)


def build_desk(desk: Desk) -> None:
    """The history in the table above, in time order."""
    d = desk
    d.mail("2026-11-03T02:00", "c1", "Paket belum sampai")
    d.act("2026-11-03T02:10", "ani", 1, "assign", team="support")
    d.act("2026-11-03T04:00", "ani", 1, "reply")
    d.act("2026-11-03T06:00", "ani", 1, "resolve")
    d.mail("2026-11-10T02:00", "c1", "Paket belum sampai", "Masih belum sampai kak.", ticket=1)
    d.act("2026-11-10T04:00", "ani", 1, "reply")
    d.act("2026-11-10T12:00", "ani", 1, "resolve")
    d.mail("2026-11-12T03:00", "c2", "Invoice salah")
    d.act("2026-11-12T03:30", "budi", 2, "assign", team="billing")
    d.act("2026-11-12T05:00", "budi", 2, "reply")
    d.act("2026-11-13T02:00", "budi", 2, "assign", to="citra", team="shipping")
    d.act("2026-11-13T04:00", "citra", 2, "resolve")
    d.mail("2026-11-15T16:30", "c3", "Ganti alamat")
    d.act("2026-11-15T16:40", "citra", 3, "assign", team="support")
    d.mail("2026-11-15T17:30", "c4", "Ukuran tidak sesuai")
    d.act("2026-11-15T17:40", "ani", 4, "assign", team="support")
    d.act("2026-11-15T18:30", "ani", 4, "reply")
    d.act("2026-11-15T18:31", "ani", 4, "pending")
    d.act("2026-11-16T01:00", "citra", 3, "reply")
    d.act("2026-11-16T02:00", "citra", 3, "resolve")
    d.mail("2026-11-16T02:00", "c5", "Refund belum masuk")
    d.act("2026-11-16T02:05", "ani", 5, "assign", team="support")
    d.act("2026-11-16T03:00", "ani", 5, "reply")
    d.mail("2026-11-16T05:00", "c5", "Refund belum masuk", "Sudah saya kirim buktinya.", ticket=5)
    d.act("2026-11-16T06:00", "ani", 5, "reply")
    d.mail("2026-11-16T07:00", "c5", "Refund belum masuk", "Terima kasih kak.", ticket=5)
    d.act("2026-11-17T08:00", "ani", 5, "resolve")
    d.mail("2026-11-17T02:00", "c6", "Promo", "Slot gacor hari ini, daftar sekarang!")
    d.mail("2026-11-18T02:00", "c7", "Out of office", "I am away until Monday.",
           headers={"Auto-Submitted": "auto-replied"})
    d.mail("2026-11-18T03:00", "c8", "Pembayaran gagal")
    d.act("2026-11-18T03:10", "budi", 8, "assign", team="billing")
    d.act("2026-11-18T04:00", "budi", 8, "reply", smtp="550 5.1.1 mailbox unavailable")
    d.act("2026-11-18T09:00", "budi", 8, "reply", text="Mohon maaf kak, sudah kami cek.")
    d.mail("2026-11-19T02:00", "c9", "Pertanyaan stok")
    d.act("2026-11-19T02:30", "citra", 9, "assign", team="support")
    d.act("2026-11-19T05:00", "citra", 9, "close")
    d.mail("2026-11-19T03:00", "c10", "Warna berbeda")
    d.act("2026-11-19T03:10", "ani", 10, "assign", team="support")
    d.act("2026-11-19T04:00", "ani", 10, "reply")
    d.act("2026-11-20T03:00", "ani", 10, "resolve")
    desk.at("2026-11-23T03:00")


@pytest.fixture
def desk(store, smtp_server, monkeypatch, tmp_path):
    """A store holding the history of the table above (see `Desk`), the clock at `DESK_NOW`."""
    d = Desk(store, smtp_server, monkeypatch, tmp_path)
    build_desk(d)
    return d


# -- SMTP -----------------------------------------------------------------------------------
class _Collect:
    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.event = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content or envelope.content))
        self.event.set()
        return "250 OK"


@pytest.fixture
def report_smtp():
    """A real aiosmtpd SMTP server on 127.0.0.1 (plain); `.handler.messages` holds what arrived."""
    from aiosmtpd.controller import Controller

    handler = _Collect()
    with socket.socket() as probe:  # a free port (the controller's self-test cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    controller.handler = handler
    controller.port = port
    try:
        yield controller
    finally:
        controller.stop()


# -- Chromium -------------------------------------------------------------------------------
def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("chromium is not installed (Debian packages chromium and chromium-driver, "
                       "listed in tests/apt-packages.txt)")


def screenshot(html_path: Path, png_path: Path, tmp_path: Path, width: int = 1200, height: int = 2000) -> Path:
    """Open `html_path` in headless Chromium (no network) and save a PNG screenshot."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--hide-scrollbars", f"--screenshot={png_path}", f"--window-size={width},{height}",
           html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
    assert png_path.exists(), (proc.returncode, proc.stderr[-2000:])
    return png_path
