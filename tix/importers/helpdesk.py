"""Another helpdesk's export (CSV, or JSON) described by a small YAML mapping file.

The export has one row per message (JSON: a list of such objects, or of tickets holding
their messages under the key `messages:` names). The mapping says which column is what::

    format: csv                      # csv | json (default: by the export's extension)
    timezone: Asia/Jakarta           # times without an offset (default: the site's)
    time_format: "%d/%m/%Y %H:%M"    # strptime; default ISO 8601 (2025-03-04 09:00[:00][+07:00])
    messages: conversation           # JSON only: the list of messages inside each ticket
    columns:
      ticket: Ticket ID              # required: which ticket a row belongs to
      time: Created                  # required: when the message was written
      body: Body                     # required
      from: Author Type              # required: who wrote it (see values.from)
      subject: Subject               # the ticket's (its first non-empty value)
      email: Requester Email         # the customer (email, phone, name)
      phone: Requester Phone
      name: Requester Name
      channel: Channel               # email | whatsapp | phone (default: email)
      status: Status                 # the ticket's, as of the export (the last row's)
      assignee: Agent
      priority: Priority
      team: Group
      category: Type
      tags: Tags                     # separated by , or ;
      resolved: Resolved At          # when it was resolved (default: the last message)
    values:                          # export value -> tix value, per column
      from: {Customer: customer, Agent: agent}   # anything not `customer` is the shop
      status: {Open: open, Solved: resolved, Closed: closed, Pending: pending}
      assignee: {"Ani S.": ani}

Each ticket is one item of the intake (all its rows or nothing); each message has its own
key (the ticket id and the hash of its row), so a later, longer export adds only what is
new. A row with an unreadable time, or a value tix does not know, is one error line
`FILE:LINE: message` (that row or field is left out); a mapping naming a column the export
does not have is one line `MAPPING:LINE: …` and that column is left out. Exit 1 after both.
"""
from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from tix import tickets
from tix.channels.base import RawItem, Source
from tix.errors import ConfigError, UsageError
from tix.importers import TAG, ExportStep
from tix.ingest.intake import Identity, Inbound, NewTicket

REQUIRED = ("ticket", "time", "body", "from")
COLUMNS = (*REQUIRED, "subject", "email", "phone", "name", "channel", "status", "assignee", "priority", "team",
           "category", "tags", "resolved")
FIELDS = ("status", "assignee", "priority", "team", "category")
CUSTOMER = "customer"


class Mapping:
    """The mapping file, checked (ConfigError with file:line for its own mistakes)."""

    def __init__(self, path: str, site_tz: str):
        from tix import yamlio
        from tix.config import check_keys

        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"{path}: no such mapping file")
        raw = yamlio.load(self.path)
        name = str(self.path.name)
        if not isinstance(raw, dict):
            raise ConfigError([_problem(name, 1, "a mapping file is a YAML mapping (format, columns, values)")])
        problems = check_keys(raw, ("format", "timezone", "time_format", "messages", "columns", "values"), name,
                              noun="key")
        cols = raw.get("columns") or {}
        if not isinstance(cols, dict):
            problems.append(_problem(name, raw.line_of("columns"), "columns: maps tix names to export columns"))
            cols = {}
        problems += check_keys(cols, COLUMNS, name, noun="column name")
        problems += [_problem(name, getattr(cols, "line", 1), f"columns: {r} is required")
                     for r in REQUIRED if not cols.get(r)]
        if problems:
            raise ConfigError(problems)
        self.name = name
        self.columns = {k: str(v) for k, v in cols.items() if v is not None}
        self.lines = {k: cols.line_of(k) for k in self.columns}
        self.values = {str(k): {str(a): str(b) for a, b in (v or {}).items()}
                       for k, v in (raw.get("values") or {}).items()}
        self.format = raw.get("format")
        self.time_format = raw.get("time_format")
        self.messages = raw.get("messages")
        self.tz = ZoneInfo(str(raw.get("timezone") or site_tz))

    def value(self, what: str, value):
        return self.values.get(what, {}).get(str(value), value)


def _problem(fname, line, message):
    from tix.errors import Problem

    return Problem(fname, line, message)


class HelpdeskSource(Source):
    """The export's tickets, one item each (its rows), in the order they were created."""

    type = "helpdesk"
    channel = "helpdesk"

    def __init__(self, store, spec, known=None, mapping: str | None = None):
        super().__init__(store, spec, known)
        self.path = Path(spec["path"])
        self.map = Mapping(mapping or "", store.config.setting("timezone"))
        self.rows = self._rows()
        self.refused = []
        self._check_columns()

    def _rows(self) -> list[tuple[int, dict]]:
        """(line or position, row) for every row of the export."""
        kind = self.map.format or ("json" if self.path.suffix.lower() in (".json", ".jsonl") else "csv")
        data = self.path.read_bytes()
        if kind == "csv":
            text = data.decode("utf-8-sig", "replace")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            self.header = list(reader.fieldnames or [])
            out, start = [], reader.line_num + 1
            for row in reader:
                out.append((start, row))  # the line the row starts on (a quoted body may span lines)
                start = reader.line_num + 1
            return out
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"{self.path.name}: not JSON: {exc}") from None
        rows: list[tuple[int, dict]] = []
        for i, obj in enumerate(doc if isinstance(doc, list) else doc.get("tickets") or [], 1):
            inner = obj.get(self.map.messages) if self.map.messages and isinstance(obj, dict) else None
            if isinstance(inner, list):
                outer = {k: v for k, v in obj.items() if k != self.map.messages}
                rows += [(i, {**outer, **m}) for m in inner if isinstance(m, dict)]
            elif isinstance(obj, dict):
                rows.append((i, obj))
        self.header = list(dict.fromkeys(k for _, r in rows for k in r))
        return rows

    def _check_columns(self) -> None:
        for what, column in list(self.map.columns.items()):
            if column not in self.header:
                self.refused.append(f"{self.map.name}:{self.map.lines[what]}: column {column!r} ({what}) is not in "
                                    f"{self.path.name} (its columns: {', '.join(self.header)})")
                del self.map.columns[what]

    def where(self, line: int) -> str:
        return f"{self.path.name}:{line}" if self.map.format != "json" and self.path.suffix != ".json" \
            else f"{self.path.name}: ticket [{line}]"

    def chunks(self, limit=None):
        cols = self.map.columns
        if any(r not in cols for r in REQUIRED):
            return
        groups: dict[str, list] = {}
        for line, row in self.rows:
            when = self._time(row.get(cols["time"]), line)
            if when is None:
                continue
            groups.setdefault(str(row.get(cols["ticket"])), []).append((when, line, row))
        items = []
        for tid, rows in groups.items():
            rows.sort(key=lambda r: (r[0], r[1]))
            raw = orjson.dumps([r for _, _, r in rows])
            key = f"helpdesk:{tid}:{hashlib.sha256(raw).hexdigest()[:32]}"
            if not self.seen_key(key):
                items.append(RawItem(self.name, key, raw, {"where": self.where(rows[0][1]), "ticket": tid,
                                                           "rows": rows}))
        items.sort(key=lambda it: it.meta["rows"][0][0])
        for i in range(0, len(items), self.batch_size):
            yield items[i:i + self.batch_size]

    def _time(self, value, line: int) -> datetime | None:
        text = str(value or "").strip()
        try:
            if self.map.time_format:
                dt = datetime.strptime(text, self.map.time_format)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            fmt = f" (time_format {self.map.time_format!r})" if self.map.time_format else ""
            self.refused.append(f"{self.where(line)}: unknown date format: {text[:40]!r}{fmt}")
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=self.map.tz)


class HelpdeskStep(ExportStep):
    """Takes one exported ticket in: its messages at their times, then its fields."""

    channel = "helpdesk"
    ext = "json"

    replay_type = "helpdesk"

    def take(self, item: RawItem, decoded, spec: dict, replay: bool = False) -> None:
        run, m = self.run, self.source.map
        cols = m.columns
        rows = item.meta["rows"]
        root = f"<helpdesk-{item.meta['ticket']}@import.tix>"
        first = rows[0][2]
        cid = run.contact(Identity(name=_get(first, cols, "name"), email=_get(first, cols, "email"),
                                   phone=_get(first, cols, "phone")), "import")
        channel = self._channel(first, rows[0][1])
        subject = next((s for s in (_get(r, cols, "subject") for _, _, r in rows) if s), None) or "(no subject)"
        number = run.index.ticket_of(root)
        new = NewTicket(subject=subject, tags=(TAG,), why=f"imported from {self.source.path.name}, "
                                                          f"ticket {item.meta['ticket']}")
        for n, (when, line, row) in enumerate(rows):
            key = f"helpdesk:{item.meta['ticket']}:{hashlib.sha256(orjson.dumps(row)).hexdigest()[:32]}"
            if run.index.seen(key):
                run.report.duplicates += 1
                continue
            run.at(when)
            out = str(m.value("from", _get(row, cols, "from") or "")).lower() != CUSTOMER
            text = str(_get(row, cols, "body") or "")
            data = {"message": key, "channel": channel, "message_id": root if number is None else None,
                    "subject": subject if n == 0 else None, "text": text, "attachments": [], "imported": True,
                    "source": item.source, "source_key": f"{self.source.where(line)}"}
            inbound = Inbound(channel, cid, new, label=f"imported ticket {item.meta['ticket']}",
                              refs=(root,), sent_at=when, passive=out)
            number = run.thread(inbound) if number is None or not out else number
            if out:
                run.batch.emit("message.sent", ticket=number, actor=f"user:{self._agent(row)}", ts=run.ts,
                               data={**data, "to": [_get(first, cols, "email") or _get(first, cols, "phone")]})
                run.report.replies += 1
            else:
                run.emit("message.received", ticket=number, data={
                    **data, "from": _get(first, cols, "email") or _get(first, cols, "phone"),
                    "from_name": _get(first, cols, "name"), "auto": False, "inbox": None})
            if data["message_id"]:
                run.index.add_mid(root, number, run.journal)
            run.journal.set(self.last, number, ("out" if out else "in", run.ts))
            run.remember(key)
            run.report.stored += 1
        if number is not None:
            self._fields(item, number, rows)
        run.remember(item.key)

    def _channel(self, row: dict, line: int) -> str:
        value = self.source.map.value("channel", _get(row, self.source.map.columns, "channel") or "email")
        try:
            return tickets.coerce_value(self.run.config, "channel", value)
        except UsageError as exc:
            self.source.refused.append(f"{self.source.where(line)}: channel: {exc} (taken as email)")
            return "email"

    def _agent(self, row) -> str:
        name = _get(row, self.source.map.columns, "assignee")
        return str(self.source.map.value("assignee", name)) if name else "import"

    def _fields(self, item: RawItem, number: int, rows: list) -> None:
        """The ticket's fields as the export has them (its last row), at the time they were true."""
        run, m = self.run, self.source.map
        cols, (when, line, last) = m.columns, rows[-1]
        changes = {}
        for what in FIELDS:
            value = _get(last, cols, what)
            if value in (None, ""):
                continue
            try:
                changes[what] = tickets.coerce_value(run.config, what, m.value(what, value))
            except UsageError as exc:
                self.source.refused.append(f"{self.source.where(line)}: {what}: {exc}")
        resolved = _get(last, cols, "resolved")
        at = self.source._time(resolved, line) if resolved else None
        run.at(max(at or when, when))
        row = run.row(number)
        since = len(run.batch.pending)
        run.actor = "system"
        if changes and tickets.set_fields(run.batch, row, changes, why="imported: as the export has it"):
            run.stamp(since)
        tags = [t.strip() for t in str(_get(last, cols, "tags") or "").replace(";", ",").split(",") if t.strip()]
        if tags:
            since = len(run.batch.pending)
            try:
                tickets.tag(run.batch, row, add=[t.lower().replace(" ", "-") for t in tags], why="imported")
                run.stamp(since)
            except UsageError as exc:
                self.source.refused.append(f"{self.source.where(line)}: tags: {exc}")


def _get(row: dict, cols: dict, what: str):
    column = cols.get(what)
    if column is None:
        return None
    value = row.get(column)
    return value.strip() if isinstance(value, str) else value
