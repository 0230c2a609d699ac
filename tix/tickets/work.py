"""An agent's own queue: `tix mine` (what is assigned to me) and `tix next` (take the next one).

"Me" is the actor (`--as NAME`, else the login name: tix.store.default_actor), which must be
an agent of tix.yaml.

- `my_queue`: my open tickets (new, open, pending), the one due first (SLA, the earliest
  unmet target of the `sla` view, as fresh as the last `tix escalate`) at the top, then
  tickets without a due time, oldest first.
- `take_next`: under the store's write lock (the caller's batch), the oldest unassigned
  new or open ticket of my teams is assigned to me (`tix.tickets.core.assign`, which also
  opens a new one). The lock makes the choice and the assignment one step: two agents
  running `tix next` at the same moment never get the same ticket.
"""
from __future__ import annotations

from tix.errors import UsageError
from tix.model import OPEN_STATUSES

QUEUE_COLUMNS = ("number", "status", "priority", "team", "channel", "subject", "due_at", "created_at")

_DUE = ("SELECT ticket, min(due_at) AS due_at FROM sla WHERE met_at IS NULL AND state NOT IN ('met', 'stopped') "
        "GROUP BY ticket")


def agent_login(config, actor: str) -> str:
    """The agent `actor` is (`user:ani` -> `ani`); UsageError if tix.yaml has no such agent."""
    login = actor.split(":", 1)[1] if actor.startswith("user:") else actor
    if login not in config.agents:
        raise UsageError(f"{login!r} is not an agent in tix.yaml; run as one with --as NAME "
                         f"(agents: {', '.join(sorted(config.agents)) or 'none'})")
    return login


def my_queue(reader, login: str, limit: int | None = None) -> list[dict]:
    """`login`'s open tickets, the one due first at the top (see the module docstring)."""
    sql = (f"SELECT t.number, t.status, t.priority, t.team, t.channel, t.subject, d.due_at, t.created_at "
           f"FROM tickets t LEFT JOIN ({_DUE}) d ON d.ticket = t.number "
           f"WHERE t.assignee = ? AND t.status IN (SELECT unnest(?::VARCHAR[])) "
           f"ORDER BY d.due_at NULLS LAST, t.created_at, t.number")
    params: list = [login, list(OPEN_STATUSES)]
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    from tix import access

    cur = reader.connect().execute(sql, params)
    names = [c[0] for c in cur.description]
    return access.visible([dict(zip(names, r, strict=True)) for r in cur.fetchall()])


def take_next(batch, login: str) -> dict | None:
    """Assign the oldest unassigned new/open ticket of `login`'s teams to `login`, in `batch`
    (under the write lock); returns the ticket as it is now, or None when there is none."""
    from tix.tickets.core import assign, get_ticket

    teams = list(batch.store.config.agents[login].teams)
    if not teams:
        raise UsageError(f"agent {login!r} is in no team (agents: … teams: in tix.yaml); nothing to take")
    found = batch.reader.connect().execute(
        "SELECT number FROM tickets WHERE assignee IS NULL AND status IN ('new', 'open') "
        "AND team IN (SELECT unnest(?::VARCHAR[])) ORDER BY created_at, number LIMIT 1", [teams]).fetchone()
    if found is None:
        return None
    row = get_ticket(batch, found[0])
    assign(batch, row, login, why="tix next: the oldest unassigned ticket of the agent's teams")
    return row
