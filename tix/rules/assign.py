"""Choosing an agent: round robin, least loaded, or by skill; agents marked `away` are skipped.

- **round robin**: members of the team in login order; the next one after the agent the
  team's round robin chose last. The position (the last login per team) persists between
  runs in `state/rules_round_robin.json`, written atomically under the store lock after the
  run's events are durable. Keeping the login, not an index, means adding or removing an
  agent does not shift everybody.
- **least loaded**: fewest open tickets (status new/open/pending), counted with one query at
  the start of the run and kept up to date as the run assigns; ties by login.
- **skill**: agent skills (`tix.yaml` `agents.NAME.skills`) scored against the ticket's
  category, the message language and the action's `skills:`; the best score wins, ties go
  to the least loaded. When nobody has any of them, least loaded.
"""
from __future__ import annotations

from pathlib import Path

import orjson

from tix.config import Config
from tix.model import OPEN_STATUSES
from tix.store.files import atomic_write

STRATEGIES = ("round_robin", "least_loaded", "skill")
STATE_FILE = "rules_round_robin.json"


class Assigner:
    def __init__(self, config: Config, state_dir: Path, con_factory):
        self.config = config
        self.state_path = Path(state_dir) / STATE_FILE
        self._con_factory = con_factory
        self._open: dict[str, int] | None = None
        self._rr: dict[str, str] | None = None
        self.dirty = False
        self._members: dict = {}
        self._skills = {a.name: {s.lower() for s in a.skills} for a in config.agents.values()}

    # -- data ------------------------------------------------------------------------------
    @property
    def open_counts(self) -> dict[str, int]:
        if self._open is None:
            con = self._con_factory()
            placeholders = ", ".join("?" for _ in OPEN_STATUSES)
            rows = con.execute(
                f"SELECT assignee, count(*) FROM tickets WHERE assignee IS NOT NULL "
                f"AND status IN ({placeholders}) GROUP BY assignee", list(OPEN_STATUSES)).fetchall()
            self._open = {a: n for a, n in rows}
        return self._open

    @property
    def rr(self) -> dict[str, str]:
        if self._rr is None:
            try:
                self._rr = dict(orjson.loads(self.state_path.read_bytes()))
            except FileNotFoundError:
                self._rr = {}
            except (orjson.JSONDecodeError, TypeError, ValueError):
                self._rr = {}  # a damaged position only restarts the rotation
        return self._rr

    def save(self) -> None:
        """Write the round-robin positions atomically (caller holds the store lock)."""
        if not self.dirty:
            return
        atomic_write(self.state_path, orjson.dumps(self.rr, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        self.dirty = False

    # -- choosing --------------------------------------------------------------------------
    def candidates(self, team: str | None) -> list[str]:
        members = self._members.get(team)
        if members is None:
            members = self._members[team] = sorted(
                a.name for a in self.config.agents.values() if not a.away and (team is None or team in a.teams))
        return members

    def pick(self, strategy: str, team: str | None, category=None, language=None, skills=()) -> str | None:
        members = self.candidates(team)
        if not members:
            return None
        if strategy == "round_robin":
            return self._round_robin(team, members)
        if strategy == "skill":
            return self._skill(members, category, language, skills)
        return self._least_loaded(members)

    def _round_robin(self, team: str | None, members: list[str]) -> str:
        key = team or "*"
        last = self.rr.get(key)
        chosen = next((m for m in members if last is None or m > last), members[0])
        self.rr[key] = chosen
        self.dirty = True
        return chosen

    def _least_loaded(self, members: list[str]) -> str:
        counts = self.open_counts
        return min(members, key=lambda m: (counts.get(m, 0), m))

    def _skill(self, members, category, language, skills) -> str:
        want = {str(s).lower() for s in (category, language, *skills) if s}
        scores = {m: len(want & self._skills[m]) for m in members}
        best = max(scores.values())
        if best == 0:
            return self._least_loaded(members)
        return self._least_loaded([m for m in members if scores[m] == best])

    def assigned(self, old: str | None, new: str, ticket_open: bool = True) -> None:
        """Keep open counts right within a run."""
        if not ticket_open:
            return
        counts = self.open_counts
        if old and old in counts:
            counts[old] -= 1
        counts[new] = counts.get(new, 0) + 1
