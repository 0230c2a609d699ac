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
