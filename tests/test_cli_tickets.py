"""The agent and admin commands, run as real processes against a real store."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tix.cli import app


def test_python_dash_m_and_help(tix):
    proc = subprocess.run([sys.executable, "-m", "tix", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Exit codes:\n    0   done\n" in proc.stdout and "    75  store still locked" in proc.stdout


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                stack.append((path + (name,), sub))
        else:
            yield path, cmd


def test_every_command_has_help_with_an_example():
    missing = [" ".join(p) for p, cmd in _commands(app)
               if not cmd.help or "Example" not in (cmd.help or "") + (cmd.epilog or "")]
    assert missing == []


def test_new_list_show_roundtrip(tix):
    assert tix("new", "Paket belum sampai", "--phone", "0812-3456-789", "--name", "Sari", "-p", "high",
               "--team", "shipping", "-m", "Order INV-1001", check=0).stdout == "#1\n"
    tix("new", "Refund please", "--email", "Tom@Example.org", "--team", "billing", check=0)
    rows = json.loads(tix("list", "--format", "json", check=0).stdout)
    assert [(r["number"], r["priority"], r["team"]) for r in rows] == [
        (2, "normal", "billing"), (1, "high", "shipping")]
    out = tix("show", "#1", check=0).stdout
    assert "#1  Paket belum sampai" in out and "priority: high" in out
    assert "customer: Sari <+628123456789> (contact 1)" in out and "Order INV-1001" in out
    again = tix("new", "Second issue", "--email", "tom@example.org", check=0)
    shown = json.loads(tix("show", again.stdout.strip(), "-f", "json", check=0).stdout)
    assert shown["ticket"]["contact"] == 2  # same contact found by email, case-insensitively


def test_set_assign_tag_close_reopen_and_history(tix):
    tix("new", "Payment failed", check=0)
    tix("--as", "ani", "assign", "1", "budi", "--team", "billing", "--why", "billing issue", check=0)
    tix("set", "1", "priority=urgent", "category=payment", "order_id=INV-9", check=0)
    tix("tag", "1", "vip", "refund", check=0)
    tix("tag", "1", "--", "-refund", check=0)
    tix("note", "1", "-m", "called the bank", check=0)
    tix("close", "1", "--resolved", check=0)
    tix("reopen", "1", "--why", "customer wrote back", check=0)
    row = json.loads(tix("list", "--format", "json", check=0).stdout)[0]
    assert (row["status"], row["priority"], row["assignee"], row["team"], row["tags"]) == \
           ("open", "urgent", "budi", "billing", ["vip"])
    hist = tix("show", "1", "--history", check=0).stdout
    assert "user:ani" in hist and "assignee: None -> budi, team: None -> billing, status: new -> open" in hist
    assert "why: billing issue" in hist and "status: resolved -> open" in hist and "order_id: INV-9" in hist
    data = json.loads(tix("show", "1", "--history", "-f", "json", check=0).stdout)
    types = [e["type"] for e in data["history"]]
    assert types == ["ticket.created", "ticket.updated", "ticket.updated", "ticket.tagged", "ticket.tagged",
                     "ticket.note", "ticket.updated", "ticket.updated"]
    assert data["ticket"]["reopened"] == 1 and data["ticket"]["resolved_at"] is None


@pytest.mark.parametrize("args, message", [
    (("set", "1", "prority=high"),
     "Error: unknown field 'prority' (did you mean 'priority'?); fields: subject, status, priority, category, "
     "team, assignee, channel, inbox, contact, order_id, marketplace\n"),
    (("set", "1", "status=done"),
     "Error: invalid status 'done'; status is one of: new, open, pending, resolved, closed\n"),
    (("set", "1", "priority=hihg"),
     "Error: invalid priority 'hihg' (did you mean 'high'?); priority is one of: low, normal, high, urgent\n"),
    (("assign", "1", "zoe"), "Error: unknown agent 'zoe'; agents: ani, budi, citra, dewa\n"),
    (("list", "stauts:open"),
     "Error: unknown filter field 'stauts' (did you mean 'status'?); fields: status, team, assignee, priority, "
     "category, channel, inbox, contact, number, tag, is, text, age, idle, created, updated, resolved, "
     "order_id, marketplace\n"),
    (("list", "age>soon"), "Error: not a duration: 'soon' (use e.g. 30m, 4h, 3d, 2w)\n"),
    (("update", "status:open", "--set", "priority"),
     "Error: bad --set 'priority': use FIELD=VALUE; fields: subject, status, priority, category, team, "
     "assignee, channel, inbox, contact, order_id, marketplace\n"),
    (("list", "--sort", "colour"),
     "Error: unknown sort key 'colour'; keys: number, created, updated, age, priority, status, team, "
     "assignee, subject\n"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tix, store, args, message):
    tix("new", "a ticket", check=0)
    before = store.log.end()
    proc = tix(*args)
    assert (proc.returncode, proc.stderr) == (2, message)
    assert store.log.end() == before


def test_not_found_is_exit_1(tix):
    proc = tix("show", "42")
    assert (proc.returncode, proc.stderr) == (1, "Error: ticket #42 not found\n")
    proc = tix("set", "#42", "priority=high")
    assert (proc.returncode, proc.stderr) == (1, "Error: ticket #42 not found\n")


def test_usage_errors_exit_2(tix):
    assert tix("show").returncode == 2
    assert tix("list", "--format", "xml").returncode == 2
    assert tix("frobnicate").returncode == 2


def test_list_filters_sort_limit_and_formats(tix):
    for subject, prio, team in [("Refund A", "low", "billing"), ("Shipping B", "urgent", "shipping"),
                                ("Refund C", "high", "billing"), ("Other D", "normal", "support")]:
        tix("new", subject, "-p", prio, "--team", team, check=0)
    tix("close", "4", check=0)
    def nums(*args):
        return [r["number"] for r in json.loads(tix("list", *args, "-f", "json", check=0).stdout)]
    assert nums("--sort", "number") == [1, 2, 3]  # open only by default
    assert nums("--all", "--sort", "number") == [1, 2, 3, 4]
    assert nums("refund", "--sort", "-number") == [3, 1]
    assert nums("priority:>=high", "--sort", "priority") == [3, 2]
    assert nums("team:billing,shipping", "-tag:x", "--sort", "number", "--limit", "2") == [1, 2]
    assert nums("status:closed") == [4]
    assert nums("age:<1h", "--sort", "number") == [1, 2, 3]
    assert nums("age:>1d") == []
    assert nums("assignee:none", "--sort", "number") == [1, 2, 3]
    out = tix("list", "-f", "csv", "--sort", "number", check=0).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["number"] for r in rows] == ["1", "2", "3"] and rows[0]["subject"] == "Refund A"
    table = tix("list", "--sort", "number", check=0).stdout
    assert table.splitlines()[0].split()[:3] == ["number", "status", "priority"] and "#1" in table


def test_update_dry_run_ids_stdin_confirmation_and_json(tix, store):
    for i in range(60):
        tix("new", f"t{i}", "--team", "billing" if i % 2 else "support", check=0) if i < 3 else None
    with store.writing(actor="user:seed", via="t") as b:
        from tix.tickets import create_ticket
        for i in range(57):
            create_ticket(b, f"bulk {i}", team="billing")
    before = store.log.end()
    dry = tix("update", "team:billing", "--set", "priority=high", "--dry-run", check=0)
    assert dry.stdout.splitlines()[0] == "#2: priority: normal -> high"
    assert dry.stdout.splitlines()[-1] == "would change 58 of 58 matching tickets (dry run, nothing written)"
    assert store.log.end() == before
    refused = tix("update", "team:billing", "--set", "priority=high")
    assert refused.returncode == 2 and "refusing to change 58 tickets without --yes" in refused.stderr
    assert store.log.end() == before
    done = tix("--as", "ops-bot", "update", "team:billing", "--set", "priority=high", "--yes", "-f", "json", check=0)
    assert json.loads(done.stdout) | {"changes": None} == {"matched": 58, "changed": 58, "events": 58,
                                                           "dry_run": False, "changes": None}
    assert tix("update", "team:billing", "--set", "priority=high", "--yes", check=0).stdout == \
        "changed 0 of 58 matching tickets (0 events)\n"  # idempotent; a sentence, not a bare number (issue 15)
    via_stdin = tix("update", "--ids", "-", "--add-tag", "checked", "--why", "audit", input="#1\n3, 5\n", check=0)
    assert via_stdin.stdout == "changed 3 of 3 matching tickets (3 events)\n"
    events = store.events_for(ticket=5)
    assert events[-1]["type"] == "ticket.tagged" and events[-1]["why"] == "audit"
    assert any(e["actor"] == "user:ops-bot" for e in store.events_for(ticket=2))
    missing = tix("update", "--ids", "-", "--add-tag", "x", input="1 999\n")
    assert (missing.returncode, missing.stderr) == (1, "Error: 1 ticket(s) not found: #999; nothing changed\n")


def test_sql_views_and_read_only(tix):
    tix("new", "hello", "--team", "billing", check=0)
    rows = json.loads(tix("sql", "SELECT number, team FROM tickets", "-f", "json", check=0).stdout)
    assert rows == [{"number": 1, "team": "billing"}]
    ev = json.loads(tix("sql", "SELECT type, actor FROM events", "-f", "json", check=0).stdout)
    assert ev[0]["type"] == "ticket.created"
    proc = tix("sql", "DROP VIEW tickets")
    assert (proc.returncode, proc.stderr) == (2, "Error: only read-only queries (SELECT) are allowed, not DROP\n")
    proc = tix("sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert proc.returncode == 2 and "disabled by configuration" in proc.stderr


def test_init_copies_examples_and_writes_commented_config(tmp_path, tix):
    proc = tix("init", str(tmp_path / "new"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    text = (tmp_path / "new" / "tix.yaml").read_text()
    assert text.startswith("# tix.yaml") and "password_env" in text
    again = tix("init", str(tmp_path / "new"))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_config_check_reports_every_problem_with_lines(tmp_path, tix):
    from tix.store import Store

    Store.init(tmp_path / "s", config_text="settings:\n  timezon: UTC\n  lock_timeout: soon\nagents:\n"
                                           "  ani:\n    teams: [nope]\nteemz: {}\n")
    proc = tix("--store", str(tmp_path / "s"), "config", "check")
    path = tmp_path / "s" / "tix.yaml"
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{path}:7: unknown section 'teemz' (did you mean 'teams'?)",
        f"{path}:2: unknown setting 'timezon' (did you mean 'timezone'?)",
        f"{path}:3: setting 'lock_timeout' must be float, got 'soon'",
        f"{path}:6: agent 'ani' is in unknown team 'nope'",
    ]


def test_ticket_and_contact_verbs_are_core_functions(store):
    """What `tix new/assign/close/reopen` and `tix contact link/merge` do, called as the CLI calls it."""
    from tix.errors import UsageError
    from tix.tickets import (assign, close, contact_link, contact_merge, contact_view, get_ticket, new_ticket,
                             parse_contact_id, reopen)

    def new(*args, **kwargs) -> int:
        with store.writing(actor="user:t", via="test") as b:
            return new_ticket(b, *args, **kwargs)

    first = new("Paket belum sampai", name="Sari", phone="0812-3456-789", priority="high")
    second = new("Refund", email="Sari@Example.com", assignee="budi", team="billing")
    third = new("Same phone", phone="+62 812 3456 789")
    rows = {n: store.ticket(n) for n in (first, second, third)}
    assert (rows[first]["status"], rows[second]["status"], rows[second]["assignee"]) == ("new", "open", "budi")
    sari, other = rows[first]["contact"], rows[second]["contact"]
    assert rows[third]["contact"] == sari and other != sari
    with store.writing(actor="user:t", via="test") as b:
        assert assign(b, get_ticket(b, first), "ani")["data"]["set"] == {"assignee": "ani", "status": "open"}
        assert close(b, get_ticket(b, first), resolved=True)["data"]["set"] == {"status": "resolved"}
        with pytest.raises(UsageError, match="is open, not resolved or closed"):
            reopen(b, get_ticket(b, second))
    with store.writing(actor="user:t", via="test") as b:
        assert reopen(b, get_ticket(b, first))["data"]["set"] == {"status": "open"}
        with pytest.raises(UsageError, match="belongs to contact"):
            contact_link(b, sari, emails=["sari@example.com"])
        assert contact_link(b, sari, emails=["sari@toko.example"])["data"] == {"add_emails": ["sari@toko.example"]}
    with store.writing(actor="user:t", via="test") as b:
        types = [e["type"] for e in contact_merge(b, other, parse_contact_id(f"c{sari}"))]
    assert types == ["contact.updated", "contact.merged", "ticket.updated"]
    view = contact_view(store.read(), sari)
    assert view["merged"] == [other] and [t["number"] for t in view["tickets"]] == [first, second, third]
    assert set(view["contact"]["emails"]) == {"sari@toko.example", "sari@example.com"}
