"""Idle cron runs (tix.idle): with nothing to do, fetch/route/escalate exit before the heavy
imports; any real work (a new event, an edited rule, a clock coming due, an outbox retry due,
new mail in a source) makes the next run a full one. Real processes (`python -m tix`)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from tests.plugins.email import add_config, make_mail
from tests.plugins.sla import jkt
from tix import outbox
from tix.store.log import iso
from tix.tickets import create_contact, create_ticket

IDLE = "nothing to do (idle)"
DEBUG = {"TIX_IDLE_DEBUG": "1"}


def run(tix_proc, cmd, now=None, code=0):
    env = {**DEBUG, **({"TIX_NOW": iso(now)} if now else {})}
    proc = tix_proc(cmd, env=env)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return IDLE in proc.stderr


def events(store, type_):
    return [ev for ev, _ in store.log.read() if ev["type"] == type_]


def test_second_idle_run_of_each_command_imports_no_engine(store, tix_proc):
    for cmd in ("route", "escalate", "fetch"):
        assert not run(tix_proc, cmd)  # no stamp yet: the full run, which leaves one
        assert run(tix_proc, cmd)
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tix", cmd], capture_output=True, text=True,
                              env={**__import__("os").environ, "TIX_STORE": str(store.root)}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
        assert not imported & {"duckdb", "pyarrow", "numpy", "typer", "click"}, imported & {"duckdb", "typer"}


def test_options_or_a_missing_stamp_mean_a_full_run(store, tix_proc):
    assert not run(tix_proc, "route")
    assert run(tix_proc, "route")
    assert IDLE not in tix_proc("route", "-v", env=DEBUG).stderr
    assert IDLE not in tix_proc("route", "--dry-run", env=DEBUG).stderr
    store.path("state", "idle-route.json").write_text("{not json", encoding="utf-8")
    assert not run(tix_proc, "route")
    assert run(tix_proc, "route")


def test_route_runs_again_on_a_new_ticket_or_an_edited_rule(store, tix_proc):
    assert not run(tix_proc, "route")
    assert run(tix_proc, "route")
    with store.writing(actor="channel:email", via="test") as b:
        create_ticket(b, "Tagihan ganda bulan ini", channel="email")
    before = len(events(store, "ticket.updated")) + len(events(store, "ticket.tagged"))
    assert not run(tix_proc, "route")
    assert len(events(store, "ticket.updated")) + len(events(store, "ticket.tagged")) >= before
    assert not run(tix_proc, "route")  # its own events: one more full run finds nothing
    assert run(tix_proc, "route")
    rule = sorted(store.path("rules").glob("*.yaml"))[0]
    rule.write_text(rule.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert not run(tix_proc, "route")
    assert run(tix_proc, "route")


def test_escalate_runs_again_when_a_clock_comes_due(sla_store, timeline, tix_proc):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))  # normal policy: 8 business hours, warning at 75%
    t0 = jkt(2026, 11, 23, 9, 30)
    assert not run(tix_proc, "escalate", t0)
    assert run(tix_proc, "escalate", t0)
    assert run(tix_proc, "escalate", t0 + timedelta(minutes=20))
    assert not events(sla_store, "sla.breached")
    # Tue 13:30: 8 business hours used -> breached; the stamp must not hide it
    assert not run(tix_proc, "escalate", jkt(2026, 11, 24, 13, 30))
    assert [e["data"]["key"] for e in events(sla_store, "sla.breached")] == [f"{n}:first_response:0:breached"]


def test_escalate_runs_again_on_a_new_event(sla_store, timeline, tix_proc):
    t0 = jkt(2026, 11, 23, 9, 0)
    assert not run(tix_proc, "escalate", t0)
    assert run(tix_proc, "escalate", t0)
    timeline.create(t0)
    assert not run(tix_proc, "escalate", t0)


def test_fetch_runs_again_on_new_mail(store, tix_proc, tmp_path):
    md = tmp_path / "md"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n")
    assert not run(tix_proc, "fetch")
    assert run(tix_proc, "fetch")
    (md / "new" / "1.x").write_bytes(make_mail())
    assert not run(tix_proc, "fetch")
    assert len(events(store, "ticket.created")) == 1


def test_fetch_runs_again_when_an_outbox_retry_is_due(store, tix_proc, smtp_server):
    add_config(store, smtp_server.outbound_yaml())
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid, inbox="support@toko.example")
    with store.writing(actor="user:ani", via="test") as b:
        outbox.queue(b, dict(b.reader.ticket(1)), "email", "Sedang kami cek.")
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    smtp_server.reply_code = "421 busy"
    assert not run(tix_proc, "fetch", t0, code=1)  # the send fails: retried later
    assert not run(tix_proc, "fetch", t0)  # the failure's event: a full run, nothing due
    assert run(tix_proc, "fetch", t0)
    smtp_server.reply_code = None
    [item] = outbox.items(store)
    assert not run(tix_proc, "fetch", datetime.fromisoformat(item["next_try"].replace("Z", "+00:00"))
                   + timedelta(seconds=1))
    assert len(smtp_server.messages) == 1 and outbox.items(store) == []
