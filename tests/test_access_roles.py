"""Who may do what (issue 14, item 1): roles from tix.yaml, team scoping, --as, unknown users.

These run in this process as root with SUDO_USER set: the deployment where agents run tix
through sudo as the store's service user (here the store belongs to root, the user tix runs
as). tests/test_access_unix.py runs the same checks as real Unix users.
"""
from __future__ import annotations

import json
import os

import pytest

from tix.store import Store

LOGINS = {"ani": ("ani.l", "agent"), "budi": ("budi.s", "lead"), "citra": ("citra.d", "agent"),
          "dewa": ("dewa.p", "admin")}


def with_logins(text: str, logins=LOGINS) -> str:
    """The example tix.yaml with `login:` and `role:` added to its agents."""
    for agent, (login, role) in logins.items():
        head = f"  {agent}:\n"
        assert head in text
        text = text.replace(head, f"{head}    login: {login}\n    role: {role}\n", 1)
    return text


@pytest.fixture
def roles(store):
    path = store.root / "tix.yaml"
    path.write_text(with_logins(path.read_text()))
    return Store.open(store.root)


def as_(login):
    return {"SUDO_USER": login}


@pytest.fixture
def tickets(roles, tix):
    """#1 billing, #2 shipping, #3 no team yet."""
    tix("new", "Refund", "--team", "billing", "--email", "sari@example.com", check=0)
    tix("new", "Paket", "--team", "shipping", check=0)
    tix("new", "Halo", check=0)
    return roles


def test_agent_works_tickets_of_their_teams_only(tickets, tix):
    end = tickets.log.end()
    denied = tix("note", "1", "-m", "hi", env=as_("citra.d"))
    assert (denied.returncode, denied.stdout) == (2, "")
    assert denied.stderr == "Error: #1 belongs to team billing; citra works for team shipping, support: " \
                            "ask a lead to reassign it\n"
    assert tickets.log.end() == end  # nothing written
    tix("note", "2", "-m", "courier called", env=as_("citra.d"), check=0)
    tix("note", "3", "-m", "triage", env=as_("citra.d"), check=0)  # no team yet: anyone
    notes = [e for e in tickets.events_for(ticket=2) if e["type"] == "ticket.note"]
    assert (notes[0]["actor"], notes[0]["via"]) == ("user:citra", "tix note")
    assert tix("show", "1", env=as_("citra.d")).returncode == 2
    listed = json.loads(tix("list", "-f", "json", env=as_("citra.d"), check=0).stdout)
    assert sorted(r["number"] for r in listed) == [2, 3]
    assert len(json.loads(tix("list", "-f", "json", env=as_("budi.s"), check=0).stdout)) == 3
    tix("set", "2", "contact=1", check=0)  # the customer of #1 (billing) wrote to shipping too
    seen = json.loads(tix("contact", "show", "1", "-f", "json", env=as_("citra.d"), check=0).stdout)
    assert [t["number"] for t in seen["tickets"]] == [2]
    seen = json.loads(tix("contact", "show", "1", "-f", "json", env=as_("budi.s"), check=0).stdout)
    assert [t["number"] for t in seen["tickets"]] == [1, 2]


def test_search_shows_an_agent_only_their_teams_tickets(tickets, tix):
    for n in ("1", "2"):
        tix("note", n, "-m", "kardus penyok", check=0)
    found = json.loads(tix("search", "penyok", "-f", "json", env=as_("citra.d"), check=0).stdout)
    assert [r["number"] for r in found] == [2]  # not #1, billing's
    found = json.loads(tix("search", "penyok", "-f", "json", env=as_("budi.s"), check=0).stdout)
    assert sorted(r["number"] for r in found) == [1, 2]  # a lead sees across teams


def test_moving_tickets_between_teams_is_for_leads(tickets, tix):
    proc = tix("assign", "2", "citra", "--team", "support", env=as_("citra.d"))
    assert (proc.returncode, proc.stderr) == (2, "Error: moving #2 to team support needs the role lead; "
                                                 "citra is an agent\n")
    assert tix("set", "2", "team=billing", env=as_("citra.d")).returncode == 2
    tix("set", "3", "team=shipping", env=as_("citra.d"), check=0)  # a team-less ticket to their own team
    tix("assign", "2", "budi", "--team", "billing", env=as_("budi.s"), check=0)  # a lead, across teams
    assert tickets.read().ticket(2)["team"] == "billing"


def test_bulk_update_needs_a_lead_and_stays_in_their_teams(tickets, tix):
    end = tickets.log.end()
    agent = tix("update", "is:any", "--add-tag", "x", "--yes", env=as_("citra.d"))
    assert (agent.returncode, agent.stderr) == (2, "Error: tix update needs the role lead; citra is an agent "
                                                   "(roles are given in tix.yaml by an admin)\n")
    lead = tix("update", "is:any", "--add-tag", "x", "--yes", env=as_("budi.s"))
    assert lead.returncode == 2
    assert lead.stderr == ("Error: 1 of the 3 matching tickets are outside team billing (e.g. #2): "
                           "narrow the filter (team:…); nothing changed\n")
    assert tickets.log.end() == end
    tix("update", "team:billing,none", "--add-tag", "x", "--yes", env=as_("budi.s"), check=0)
    tix("update", "is:any", "--add-tag", "y", "--yes", env=as_("dewa.p"), check=0)  # an admin: anywhere
    assert [list(tickets.read().ticket(n)["tags"]) for n in (1, 2, 3)] == [["x", "y"], ["y"], ["x", "y"]]


@pytest.mark.parametrize("args, role", [
    (("sql", "SELECT 1"), "admin"), (("config", "check"), "admin"), (("rebuild",), "admin"),
    (("report", "backlog"), "lead"), (("quarantine", "list"), "admin"), (("audit",), "admin"),
])
def test_commands_need_their_role(tickets, tix, args, role):
    proc = tix(*args, env=as_("ani.l"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"Error: tix {args[0]}") and f"needs the role {role}; ani is an agent" in proc.stderr
    assert tix(*args, env=as_("dewa.p")).returncode == 0


def test_as_is_for_admins_and_recorded_as_admin_x_as_y(tickets, tix):
    end = tickets.log.end()
    proc = tix("--as", "ops-bot", "note", "3", "-m", "x", env=as_("budi.s"))
    assert (proc.returncode, proc.stderr) == (2, "Error: --as is for admins; budi is a lead\n")
    assert tickets.log.end() == end
    tix("note", "3", "-m", "by script", "--as", "ops-bot", env=as_("dewa.p"), check=0)
    ev = tickets.events_for(ticket=3)[-1]
    assert (ev["actor"], ev["via"]) == ("user:ops-bot", "tix note (admin dewa as ops-bot)")
    tix("--as", "ani", "note", "3", "-m", "as root", check=0)  # root: an admin implicitly
    ev = tickets.events_for(ticket=3)[-1]
    assert (ev["actor"], ev["via"]) == ("user:ani", "tix note (admin root as ani)")


def test_unknown_user_gets_one_line_saying_how_to_be_added(tickets, tix):
    end = tickets.log.end()
    proc = tix("list", env=as_("mallory"))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"Error: mallory is not a tix user of this store: ask an admin to add `login: mallory` "
                           f"(and a role:) to your agent in {tickets.root / 'tix.yaml'}\n")
    assert tix("new", "x", env=as_("mallory")).returncode == 2
    assert tickets.log.end() == end


def test_root_and_the_store_owner_are_admins_and_actors_are_agent_names(tickets, tix):
    assert tix("sql", "SELECT 1", check=0).stdout  # root, no SUDO_USER
    who = json.loads(tix("whoami", "-f", "json", env=as_("budi.s"), check=0).stdout)
    assert who == [{"login": "budi.s", "agent": "budi", "role": "lead", "teams": ["billing"],
                    "how": "declared (through sudo)"}]
    who = json.loads(tix("whoami", "-f", "json", env={"SUDO_USER": None}, check=0).stdout)
    assert who[0]["role"] == "admin" and who[0]["how"] == "root"
    tix("note", "1", "-m", "x", env=as_("budi.s"), check=0)
    assert tickets.events_for(ticket=1)[-1]["actor"] == "user:budi"


def test_root_through_sudo_on_a_store_it_does_not_own_is_an_admin_named_as_the_person(tickets, tix):
    os.chown(tickets.root, 65534, -1)  # the service user (nobody) owns the store; root runs sudo
    who = json.loads(tix("whoami", "-f", "json", env=as_("budi.s"), check=0).stdout)
    assert (who[0]["agent"], who[0]["role"], who[0]["how"]) == ("budi", "admin", "root (through sudo)")
    tix("note", "2", "-m", "x", env=as_("budi.s"), check=0)
    assert tickets.events_for(ticket=2)[-1]["actor"] == "user:budi"


def test_require_for_core_functions(tickets, monkeypatch):
    from tix import access

    access.reset()
    access.require("admin", "erasing a contact")  # library use: no user checked, passes
    monkeypatch.setenv("SUDO_USER", "ani.l")
    try:
        access.authorize(tickets, "show", None)
        with pytest.raises(access.AccessDenied, match="erasing a contact needs the role admin; ani is an agent"):
            access.require("admin", "erasing a contact")
    finally:
        access.reset()


def test_store_without_logins_lets_everyone_act_and_config_check_warns(store, tix):
    tix("new", "x", "--team", "billing", env=as_("anyone"), check=0)
    assert tix("sql", "SELECT 1", env=as_("anyone"), check=0).stdout
    assert tix("--as", "bot", "note", "1", "-m", "x", env=as_("anyone"), check=0).returncode == 0
    quiet = tix("config", "check", check=0)
    assert quiet.stderr == ""
    loud = tix("config", "check", "-v", check=0)
    assert loud.stderr.startswith("warning: tix.yaml declares no agent login:")


def test_config_rejects_unknown_roles_and_shared_logins(store, tix):
    path = store.root / "tix.yaml"
    text = with_logins(path.read_text(), {"ani": ("x", "boss"), "budi": ("x", "lead")})
    path.write_text(text)
    proc = tix("config", "check")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert any(ln.endswith("agent 'ani': unknown role 'boss'; roles: agent, lead, admin") for ln in lines)
    assert any(ln.endswith("agent 'budi': login 'x' is also agent 'ani''s") for ln in lines)


def test_every_command_has_a_rule_and_unlisted_ones_are_for_admins():
    from tix.access import PERMISSIONS, rule_for
    from tix.cli import command

    group = command()
    paths, stack = [], [((), group)]
    while stack:
        prefix, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [((*prefix, name), sub) for name, sub in subs.items()]
        else:
            paths.append(" ".join(prefix))
    unlisted = [p for p in paths if not any(" ".join(p.split()[:n]) in PERMISSIONS for n in (1, 2))]
    assert sorted(unlisted) == ["demo", "init"], (  # they open no store
        f"add a line for {sorted(set(unlisted) - {'demo', 'init'})} to PERMISSIONS in tix/access.py "
        f"(without one a command is for admins only)")
    assert rule_for("some future command").role == "admin"
    assert rule_for("macro add").role == "agent" and rule_for("contact erase").role == "admin"
