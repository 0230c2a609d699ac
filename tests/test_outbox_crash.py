"""Each send is recorded (fsynced) before the next one: `tix notify flush` killed with
SIGKILL while it sends the second notification has recorded the first as sent, and the
next flush sends the rest without sending the first again. A real process, a real aiosmtpd."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.plugins.sla import free_port, use_smtp
from tix import outbox


class KillingSmtp:
    """aiosmtpd that kills the process `victim` when the `kill_at`-th message arrives (and does
    not take that message); it keeps the subjects it accepted."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.subjects: list[str] = []
        self.seen = 0
        self.kill_at: int | None = None
        self.victim: subprocess.Popen | None = None
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        import email

        self.seen += 1
        if self.seen == self.kill_at and self.victim is not None:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.victim.wait()
            return "451 4.3.0 sender gone"
        self.subjects.append(email.message_from_bytes(envelope.content)["Subject"])
        return "250 OK"


def test_flush_killed_mid_run_never_sends_a_recorded_item_again(sla_store):
    smtp = KillingSmtp()
    smtp.controller.start()
    try:
        use_smtp(sla_store, smtp.port)
        with sla_store.writing() as batch:
            ids = [outbox.notify(batch, "email", f"lead{i}@example.co.id", f"n{i}", "isi", key=f"k{i}")
                   for i in range(3)]
        smtp.kill_at = 2
        env = dict(os.environ, TIX_STORE=str(sla_store.root))
        smtp.victim = subprocess.Popen([sys.executable, "-m", "tix", "notify", "flush"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        smtp.victim.wait(timeout=60)
        assert smtp.victim.returncode == -signal.SIGKILL
        assert smtp.subjects == ["n0"]
        sent = [ev["data"]["outbox"] for ev, _p in sla_store.log.read() if ev["type"] == "outbox.sent"]
        assert sent == [ids[0]]  # recorded before the second send began
        rep = outbox.flush(sla_store)
        assert [it["id"] for it in rep.sent_items] == ids[1:]
        assert smtp.subjects == ["n0", "n1", "n2"]  # n0 once: it was never sent again
        assert outbox.items(sla_store, dead=True) == []
    finally:
        smtp.controller.stop()
