"""Roles as real Unix users (issue 14, item 1): users created for the test, commands run with setpriv.

Two deployments:
- the service user owns the store (0750, its own group); agents cannot read it and run tix
  through sudo as the service user: sudo sets SUDO_USER, which is what tix then trusts;
- agents run tix as themselves on a store their group can write (roles are advice there).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_access_roles import with_logins
from tix.store import Store
from tix.tickets import create_ticket


def _sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def users():
    """Unix users: svc (the service user), agent, admin, stranger; all removed afterwards."""
    tag = secrets.token_hex(3)
    names = {role: f"tx{tag}{role[:3]}" for role in ("svc", "agent", "admin", "stranger")}
    group = f"tx{tag}grp"
    _sh("groupadd", group)
    made = []
    try:
        for role, name in names.items():
            groups = ["-G", group] if role != "svc" else []
            _sh("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", *groups, name)
            made.append(name)
        yield {**names, "group": group}
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def place():
    """A directory every user may traverse (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="tix-roles-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_store(root: Path, users, owner: str, group_writable: bool = False) -> Store:
    store = Store.init(root)
    cfg = root / "tix.yaml"
    cfg.write_text(with_logins(cfg.read_text(), {"ani": (users["agent"], "agent"),
                                                 "dewa": (users["admin"], "admin")}))
    store = Store.open(root)
    with store.writing(actor="user:seed", via="test") as b:
        create_ticket(b, "Refund", team="support")  # ani's team
        create_ticket(b, "Paket", team="shipping")
    _sh("chown", "-R", f"{owner}:{users['group'] if group_writable else owner}", str(root))
    if group_writable:
        _sh("chmod", "-R", "g+rwX", str(root))
    return store


def run_as(user: str, store: Store, *args, sudo_user: str | None = None, env=None):
    """`python -m tix ARGS` as `user` (real uid and gid), as sudo would start it when `sudo_user` is set."""
    full = {k: v for k, v in os.environ.items() if k not in ("SUDO_USER", "SUDO_UID", "SUDO_GID")}
    full.update({"TIX_STORE": str(store.root), "HOME": "/", "USER": user, "LOGNAME": user,
                 "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    if sudo_user:
        full["SUDO_USER"] = sudo_user
    cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", sys.executable, "-m", "tix", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=120, cwd="/")


def test_through_sudo_the_person_is_sudo_user_and_their_role_applies(users, place):
    store = make_store(place / "store", users, owner=users["svc"])
    direct = run_as(users["agent"], store, "list")  # the agent cannot read the store's files at all
    assert (direct.returncode, direct.stderr) == (2, f"Error: {store.root}: permission denied; this store's files are "
                                                     f"not yours to read (run tix as its owner, e.g. through sudo: "
                                                     f"see the README, \"Who may do what\")\n")
    ok = run_as(users["svc"], store, "note", "1", "-m", "called back", sudo_user=users["agent"])
    assert (ok.returncode, ok.stderr) == (0, "")
    ev = Store.open(store.root).events_for(ticket=1)[-1]
    assert (ev["actor"], ev["via"]) == ("user:ani", "tix note")
    end = Store.open(store.root).log.end()
    other_team = run_as(users["svc"], store, "note", "2", "-m", "x", sudo_user=users["agent"])
    assert other_team.returncode == 2 and "belongs to team shipping" in other_team.stderr
    sql = run_as(users["svc"], store, "sql", "SELECT 1", sudo_user=users["agent"])
    assert (sql.returncode, sql.stdout) == (2, "") and "needs the role admin; ani is an agent" in sql.stderr
    forged = run_as(users["svc"], store, "--as", "dewa", "note", "1", "-m", "x", sudo_user=users["agent"])
    assert forged.returncode == 2 and "--as is for admins" in forged.stderr
    assert Store.open(store.root).log.end() == end
    admin = run_as(users["svc"], store, "sql", "SELECT count(*) AS n FROM tickets", "-f", "json",
                   sudo_user=users["admin"])
    assert json.loads(admin.stdout) == [{"n": 2}]
    stranger = run_as(users["svc"], store, "list", sudo_user=users["stranger"])
    assert stranger.returncode == 2 and stranger.stderr.count("\n") == 1
    assert f"{users['stranger']} is not a tix user of this store: ask an admin to add `login: " \
           f"{users['stranger']}`" in stranger.stderr
    cron = run_as(users["svc"], store, "whoami", "-f", "json")  # the service user itself (cron): admin
    assert json.loads(cron.stdout)[0] | {"teams": None} == {"login": users["svc"], "agent": "-", "role": "admin",
                                                            "teams": None, "how": "store owner"}


def test_sudo_does_not_lend_the_service_user_to_a_store_someone_else_owns(users, place):
    theirs = make_store(place / "theirs", users, owner=users["agent"])
    _sh("chmod", "-R", "o+rX", str(theirs.root))  # the agent lets the service user read their own store
    proc = run_as(users["svc"], theirs, "whoami", sudo_user=users["agent"])
    assert proc.returncode == 2
    assert proc.stderr == (f"Error: through sudo, tix opens only stores owned by the user it runs as "
                           f"({users['svc']}); {theirs.root} belongs to {users['agent']}\n")


def test_without_sudo_the_real_user_acts_and_user_env_is_not_believed(users, place):
    store = make_store(place / "store", users, owner=users["svc"], group_writable=True)
    who = run_as(users["agent"], store, "whoami", "-f", "json", env={"USER": users["admin"],
                                                                      "LOGNAME": users["admin"]})
    assert json.loads(who.stdout)[0]["login"] == users["agent"] and json.loads(who.stdout)[0]["role"] == "agent"
    fake_sudo = run_as(users["agent"], store, "sql", "SELECT 1", env={"SUDO_USER": users["admin"]})
    assert fake_sudo.returncode == 2  # SUDO_USER counts only when tix runs as the store's owner
    run_as(users["agent"], store, "tag", "1", "seen", env={}).check_returncode()
    assert Store.open(store.root).events_for(ticket=1)[-1]["actor"] == "user:ani"
    stranger = run_as(users["stranger"], store, "new", "x")
    assert stranger.returncode == 2 and "is not a tix user of this store" in stranger.stderr
    admin = run_as(users["admin"], store, "sql", "SELECT 1 AS one", "-f", "json")
    assert json.loads(admin.stdout) == [{"one": 1}]
