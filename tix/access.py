"""Who may do what: identities, roles and the one permission table of tix (issue 14).

Identity. The actor is the real OS user (`pwd.getpwuid(os.getuid())`, never $USER), or
`SUDO_USER` when tix runs through sudo as the store's service user (the Unix user owning
the store directory). tix.yaml maps OS logins to agents (`agents: NAME: login: …`) and
gives each a `role:`:

- `agent`: works tickets of their teams (and tickets no team owns yet);
- `lead`: also reassigns across teams, bulk-updates within their teams, runs reports;
- `admin`: configuration, `tix sql`, bulk updates anywhere, erasure, retention, import,
  `--as` (recorded as "admin X as Y" in the event's `via`).

Compatibility: root and the store's owner are admins implicitly (cron runs as the owner),
and a store whose tix.yaml declares no `login:` at all lets everyone act as admin (as
before roles existed; `tix config check -v` warns about it).

The permission table. `PERMISSIONS` maps a command path (`"contact erase"`, without
`tix`) to a `Rule`: the minimum role, whether agents and leads are limited to their teams'
tickets, and whether the command is an audited read (`audit_reads: true`; see
tix.accesslog). A command not in the table is for admins only. A new command is one line
here; `tix.cli.common.open_store()` applies the rule before the command touches the store.

Roles are a boundary only where agents cannot write the store's files themselves (they
run tix through sudo as the service user): see the README, "Personal data".
"""
from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from tix.errors import UsageError

ROLES = ("agent", "lead", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Rule:
    """What a command needs.

    role: the minimum role. teams: agents (and, for bulk commands, leads) act only on tickets
    of their teams: the core enforces it where tickets are chosen (`tix.tickets.core.select`,
    `get_ticket`, `show`, bulk updates) through `check_ticket`, `check_bulk` and `list_scope`,
    so a new command that uses those is scoped without code of its own; the flag says so here.
    audit: with `audit_reads: true` each run is written to the access log (tix.accesslog).
    """

    role: str
    teams: bool = False
    audit: bool = False


AGENT, AGENT_T, LEAD, ADMIN = Rule("agent"), Rule("agent", teams=True), Rule("lead"), Rule("admin")

# command path -> Rule. A group's entry (e.g. "macro") covers its subcommands unless one has its own.
PERMISSIONS: dict[str, Rule] = {
    # agents: their own work
    "new": AGENT, "list": AGENT_T, "show": Rule("agent", teams=True, audit=True),
    "note": AGENT_T, "assign": AGENT_T, "set": AGENT_T, "tag": AGENT_T, "close": AGENT_T, "reopen": AGENT_T,
    "reply": AGENT_T, "mine": AGENT_T, "next": AGENT_T, "search": AGENT_T, "macro": AGENT,
    "merge": AGENT_T, "split": AGENT_T,
    "attachment": Rule("agent", teams=True, audit=True),
    "contact list": AGENT, "contact show": Rule("agent", audit=True), "contact link": AGENT,
    "sla": AGENT, "rules check": AGENT, "rules test": AGENT,
    # leads: across teams, bulk within their teams, reports, the pipeline by hand
    "update": Rule("lead", teams=True), "report": LEAD, "contact merge": LEAD,
    "fetch": LEAD, "route": LEAD, "escalate": LEAD, "outbox": LEAD, "notify": LEAD,
    # admins: configuration, raw data, personal data rights, the store itself
    "sql": Rule("admin", audit=True), "config": ADMIN, "check": ADMIN, "rebuild": ADMIN, "quarantine": ADMIN,
    "webhook": ADMIN, "audit": ADMIN, "whoami": AGENT, "import": ADMIN, "purge": ADMIN, "contact erase": ADMIN,
    "contact export": Rule("admin", audit=True),
}


def rule_for(command: str) -> Rule:
    """The rule of `command` ("contact erase"): its own, else its group's, else admin only."""
    words = command.split()
    for n in range(len(words), 0, -1):
        rule = PERMISSIONS.get(" ".join(words[:n]))
        if rule is not None:
            return rule
    return ADMIN


NO_LOGINS_WARNING = ("tix.yaml declares no agent login: (role:), so everyone who can run tix here acts as an admin; "
                     "see the README, \"Who may do what\"")


class AccessDenied(UsageError):
    """The user may not run this command (or act on this ticket): one line, exit 2, nothing written."""


@dataclass(frozen=True)
class Identity:
    """Who runs this command, as tix.yaml sees them.

    login: the OS login acting (SUDO_USER through sudo). agent: their agent name in tix.yaml
    (None for an implicit admin not declared there). how: why they have their role.
    """

    login: str
    role: str
    agent: str | None = None
    teams: tuple[str, ...] = ()
    how: str = "declared"
    sudo: bool = False
    as_user: str | None = None

    def at_least(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]

    @property
    def name(self) -> str:
        return self.agent or self.login

    def actor(self) -> str:
        """The event actor: `user:AGENT` (or `user:LOGIN`); with --as, `user:NAME` (NAME may be `rule:x`)."""
        if self.as_user:
            return self.as_user if ":" in self.as_user else f"user:{self.as_user}"
        return f"user:{self.name}"

    def via_note(self) -> str:
        """Added to every event's `via` under --as: ` (admin X as Y)`."""
        return f" (admin {self.name} as {self.as_user})" if self.as_user else ""


def os_login(uid: int | None = None) -> str:
    """The login of `uid` (default: the real user of this process); the number when it has no name."""
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def declared_logins(config) -> dict[str, object]:
    """OS login -> Agent, for every `login:` in tix.yaml's agents."""
    return {login: agent for agent in config.agents.values() for login in getattr(agent, "logins", ())}


def identify(store, as_user: str | None = None) -> Identity:
    """Who is acting on `store`, and with which role; AccessDenied for an unknown user.

    Through sudo (SUDO_USER set, running as the store's owner), the person is SUDO_USER.
    Through sudo as another user than the store's owner, tix refuses: the service user's
    rights must not be lent to a store someone else controls.
    """
    uid = os.getuid()
    login = os_login(uid)
    owner = store.root.stat().st_uid
    sudo_user = os.environ.get("SUDO_USER") or None
    sudo = bool(sudo_user) and sudo_user != login
    if sudo and uid not in (0, owner):
        raise AccessDenied(f"through sudo, tix opens only stores owned by the user it runs as ({login}); "
                           f"{store.root} belongs to {os_login(owner)}")
    if sudo and uid == owner:  # the deployment: agents through sudo as the service user
        acting, implicit = sudo_user, ("root" if sudo_user == "root" else None)
    elif sudo:  # root through sudo on a store it does not own: an admin, named as the person
        acting, implicit = sudo_user, "root"
    else:
        acting = login
        implicit = "root" if uid == 0 else "store owner" if uid == owner else None
    declared = declared_logins(store.config)
    if not declared:
        return Identity(acting, "admin", how="no logins declared", sudo=sudo, as_user=as_user)
    agent = declared.get(acting)
    if agent is not None:
        role = "admin" if implicit else agent.role
        ident = Identity(acting, role, agent.name, tuple(agent.teams), implicit or "declared", sudo, as_user)
    elif implicit:
        ident = Identity(acting, "admin", how=implicit, sudo=sudo, as_user=as_user)
    else:
        raise AccessDenied(f"{acting} is not a tix user of this store: ask an admin to add `login: {acting}` "
                           f"(and a role:) to your agent in {store.root / 'tix.yaml'}")
    if as_user and not ident.at_least("admin"):
        raise AccessDenied(f"--as is for admins; {ident.name} is {_a(ident.role)}")
    return ident


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


# -- the identity of this command ----------------------------------------------------------------
_current: Identity | None = None


def current() -> Identity | None:
    """The identity checked for the running command; None when no command checked one (library use)."""
    return _current


def reset() -> None:
    global _current
    _current = None


def authorize(store, command: str, as_user: str | None = None) -> Identity:
    """Check that the user may run `command` on `store`; remember the identity for this command.

    Raises AccessDenied (exit 2, nothing written) with one line saying what is needed.
    """
    global _current
    ident = identify(store, as_user)
    rule = rule_for(command)
    if not ident.at_least(rule.role):
        raise AccessDenied(f"tix {command} needs the role {rule.role}; {ident.name} is {_a(ident.role)} "
                           f"(roles are given in tix.yaml by an admin)")
    _current = ident
    if ident.as_user:
        store.via_note = ident.via_note()
    return ident


def require(role: str, what: str) -> None:
    """For a core function that needs more than its command's rule (e.g. an agent's command
    touching something only admins may): AccessDenied unless the checked user has `role`.
    Library use (no command checked a user) passes."""
    ident = current()
    if ident is not None and not ident.at_least(role):
        raise AccessDenied(f"{what} needs the role {role}; {ident.name} is {_a(ident.role)}")


# -- team scoping ---------------------------------------------------------------------------------
def _scoped(ident: Identity | None, bulk: bool = False) -> bool:
    """Does team scoping apply? Agents always; leads only in bulk; admins never."""
    if ident is None or ident.role == "admin":
        return False
    return ident.role == "agent" or bulk


def in_teams(ident: Identity, team: str | None) -> bool:
    """A ticket no team owns yet (not routed) may be worked by anyone; else by its team."""
    return team is None or team in ident.teams


def check_ticket(row: dict) -> None:
    """An agent acts only on tickets of their teams (or of no team)."""
    ident = current()
    if _scoped(ident) and not in_teams(ident, row.get("team")):
        raise AccessDenied(f"#{row['number']} belongs to team {row.get('team')}; {ident.name} works for "
                           f"{_teams(ident)}: ask a lead to reassign it")


def check_team_change(row: dict, team: str | None) -> None:
    """Moving a ticket between teams is for leads; an agent may only give a team-less ticket to their team."""
    ident = current()
    if not _scoped(ident) or team == row.get("team"):
        return
    if row.get("team") is None and team in ident.teams:
        return
    raise AccessDenied(f"moving #{row['number']} to team {team} needs the role lead; {ident.name} is an agent")


def check_bulk(rows: list[dict]) -> None:
    """A lead's bulk update stays within their teams: refuse the whole update otherwise."""
    ident = current()
    if not _scoped(ident, bulk=True):
        return
    outside = [r["number"] for r in rows if not in_teams(ident, r.get("team"))]
    if outside:
        raise AccessDenied(f"{len(outside)} of the {len(rows)} matching tickets are outside {_teams(ident)} "
                           f"(e.g. #{outside[0]}): narrow the filter (team:…); nothing changed")


def visible(rows: list[dict]) -> list[dict]:
    """The ticket rows (with `team`) an agent may see: their teams' and the team-less."""
    ident = current()
    return [r for r in rows if in_teams(ident, r.get("team"))] if _scoped(ident) else rows


def list_scope() -> str:
    """A filter term that keeps an agent's selection (tix.tickets.core.select) to their teams'
    tickets and team-less ones; empty for leads and admins."""
    ident = current()
    if not _scoped(ident):
        return ""
    return "team:" + ",".join([*ident.teams, "none"])


def _teams(ident: Identity) -> str:
    return ("team " + ", ".join(ident.teams)) if ident.teams else "no team"
