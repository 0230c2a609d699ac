"""pytest fixtures for the sla tests: a store with calendars and policies, events at chosen
times, a real SMTP server (aiosmtpd) and a real HTTP server on loopback."""
from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

JKT = ZoneInfo("Asia/Jakarta")

SLA_YAML = """
calendars:
  always:
    timezone: Asia/Jakarta
    hours: 24/7
    holidays: false
  office:
    timezone: Asia/Jakarta
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["09:00-13:00"]
    holidays: {country: ID, categories: [public, government]}
    dates:
      "2026-12-31": ["08:00-12:00"]
sla:
  warn_at: 75%
  whatsapp_window_warning: 1h
  policies:
    - name: urgent
      when: {priority: urgent}
      calendar: always
      targets: {first_response: 1h, next_response: 2h, resolution: 8h}
      steps:
        - {name: warn, on: warning, notify: {email: lead@example.co.id}}
        - {name: breach, on: breached, tag: sla-breached, team: billing}
    - name: normal
      calendar: office
      targets: {first_response: 8h, next_response: 8h, resolution: 40h}
      steps:
        - {name: breach, on: breached, targets: [first_response], raise_priority: true, assignee: ani}
        - {name: wa, on: whatsapp_window, notify: {email: wa-lead@example.co.id}}
"""


def jkt(*args) -> datetime:
    """A Jakarta wall-clock time as an aware datetime: jkt(2026, 11, 24, 9, 0)."""
    return datetime(*args, tzinfo=JKT)


def at(dt: datetime) -> str:
    from tix.store.log import iso

    return iso(dt)


class Timeline:
    """Writes ticket events at chosen times (as channels and agents would)."""

    def __init__(self, store):
        self.store = store

    def emit(self, type_: str, ticket: int, when: datetime, data: dict | None = None, actor: str = "user:ani"):
        with self.store.writing(actor=actor, via="test") as batch:
            return batch.emit(type_, ticket=ticket, data=data or {}, ts=at(when))

    def create(self, when: datetime, priority: str = "normal", channel: str = "email",
               subject: str = "Paket belum sampai", contact: int | None = None) -> int:
        with self.store.writing(actor="channel:" + channel, via="test") as batch:
            number = batch.new_ticket_number()
            data = {"subject": subject, "status": "new", "priority": priority, "channel": channel, "team": "support"}
            if contact is not None:
                data["contact"] = contact
            batch.emit("ticket.created", ticket=number, data=data, ts=at(when))
            batch.emit("message.received", ticket=number, data={"channel": channel, "text": "halo"}, ts=at(when))
        return number

    def customer(self, ticket: int, when: datetime):
        return self.emit("message.received", ticket, when, {"text": "masih belum"}, actor="channel:email")

    def reply(self, ticket: int, when: datetime, auto: bool = False):
        data = {"text": "baik kak"}
        if auto:
            data["auto"] = True
        return self.emit("message.sent", ticket, when, data)

    def status(self, ticket: int, when: datetime, status: str):
        return self.emit("ticket.updated", ticket, when, {"set": {"status": status}})


# When `tix escalate` began watching the test stores (README "SLA clocks and escalation": SLA is
# not retroactive). Before every timeline of the tests, so that their breaches are acted on.
WATCH_SINCE = datetime(2026, 11, 1, tzinfo=JKT)


def start_watch(store, since: datetime = WATCH_SINCE) -> None:
    """Record that SLA escalation has watched the store since `since`, as the first
    `tix escalate` on it does (an `sla.started` event), so a test's breaches are all acted on."""
    with store.writing(actor="system", via="test") as batch:
        batch.emit("sla.started", data={"start": at(since), "before_start": {}}, ts=at(since))


@pytest.fixture
def unwatched_sla_store(store):
    """The test store with SLA_YAML appended to its tix.yaml; `tix escalate` never ran on it."""
    path = store.path("tix.yaml")
    path.write_text(path.read_text(encoding="utf-8") + SLA_YAML, encoding="utf-8")
    store.reload_config()
    return store


@pytest.fixture
def sla_store(unwatched_sla_store):
    """The test store with SLA_YAML appended to its tix.yaml, watched by SLA since WATCH_SINCE."""
    start_watch(unwatched_sla_store)
    return unwatched_sla_store


@pytest.fixture
def timeline(sla_store):
    return Timeline(sla_store)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email

                sink.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
                return "250 OK"

        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def use_smtp(store, port: int) -> None:
    """Point the store's outbound SMTP settings at 127.0.0.1:port (plain, no auth)."""
    path = store.path("tix.yaml")
    text = path.read_text(encoding="utf-8")
    text += (f"\noutbound:\n  host: 127.0.0.1\n  port: {port}\n  security: plain\n"
             f"  from: \"Toko Support <tix@toko.example>\"\n")
    path.write_text(text, encoding="utf-8")
    store.reload_config()


class HookServer:
    """A real HTTP server on loopback recording JSON POSTs; `status` is what it answers."""

    def __init__(self):
        self.requests: list = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.path, json.loads(self.rfile.read(length) or b"null")))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0/B0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_server():
    srv = HookServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def utc():
    return timezone.utc
