"""WhatsApp intake: the webhook spool (`spool/whatsapp/`) turned into contacts, tickets and messages.

Meta only pushes (there is no API to fetch past messages), so `tix webhook serve`
(tix.channels.whatsapp_webhook) writes every signed POST body, byte for byte, into
`spool/whatsapp/` and `tix fetch` calls `fetch_spool(store)`, which reads like the pipeline:

    spool file -> parse -> every entry / change / message / status -> de-duplicate by wamid
    -> events (contact, ticket, message.received, message.status) -> fsync -> remove spool file
    -> media downloads (never blocking the text; retried on later runs)

A payload that cannot be processed (not JSON, not a webhook, unknown phone_number_id, a
message without id or sender) goes to quarantine whole, nothing of it is emitted, and the
batch goes on. The raw payload of every processed file is kept under
`messages/whatsapp/YYYY-MM/<sha256-prefix>.json` (a hard link to the fsynced spool file).

Format contract (events written here; see tix.store for the envelope):

- `message.received` data: `message` (the wamid, the idempotency key), `channel: "whatsapp"`,
  `wa_type`, `from` (wa_id, digits; null for a username-only user), `from_user_id` (BSUID),
  `from_name`, `to` ([business number]), `subject: null`, `text` (the text, caption or a
  `[placeholder]`), `attachments` (media: `media_id`, `name`, `type` (MIME), `sha256` as
  sent by Meta, `caption`, `status: "pending"`), `auto: false`, `language: null`, `inbox`,
  `context` (the replied-to wamid), `raw` (store-relative path of the payload under
  `messages/whatsapp/`), `sent_at` (the message's own time, UTC ISO), `phone_number_id`,
  plus per type `reaction`, `edit_of`, `revoke_of`, `reply`, `location`, `forwarded`, `errors`.
- `message.status` data: `message` (outbound wamid), `channel`, `status` (sent < delivered <
  read < played; `failed` is final), `at`, `recipient`, `errors`, `template_only` (131047).
  Only a status that moves a message forward is written. A status for a wamid tix does not
  know yet is written without a ticket and written again with it once the wamid is known.
- `message.media` data: `message`, `media_id`, `status` (`stored` | `expired`), `blob`
  (`blobs/sha256/ab/<hex>`), `sha256` (hex), `size`, `type`.
- `whatsapp.system` (number or identity changes) and `whatsapp.error` (errors Meta reports
  in a webhook with no message) are kept in the log for the audit trail.

Tickets: one open ticket per (contact, business number). A message joins the open or
pending ticket (a pending one goes back to open); a message within `reopen_days` after the
ticket was resolved reopens it; otherwise a new ticket is started with custom field
`linked` naming the previous one. Reactions, edits and deletions join the ticket of the
message they refer to. Contacts are found by `wa_id` (a phone) or by the business-scoped
`user_id` (kept in the contact's `fields.wa_user_id`), following `merged_into`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from tix.channels import base
from tix.errors import ConfigError, Problem, TixError

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v25.0"
SPOOL = ("spool", "whatsapp")
CHUNK = 500  # payloads per fsync of the log
MEDIA_DAYS = 7  # media ids stay downloadable for 7 days (API-NOTES §3)
MEDIA_MAX = 100 * 1024 * 1024
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 100}
TOKEN_HOSTS = ("fbsbx.com", "facebook.com", "whatsapp.net", "fbcdn.net")


# -- configuration ---------------------------------------------------------------------------
_KEYS = ("numbers", "verify_token_env", "verify_token_file", "app_secret_env", "app_secret_file",
         "token_env", "token_file", "base_url", "version", "team", "reopen_days", "window_hours",
         "max_body_bytes", "templates", "path")
_NUMBER_KEYS = ("phone_number_id", "number", "team")


@dataclass
class Number:
    phone_number_id: str
    number: str
    team: str | None = None


@dataclass
class Settings:
    """The `whatsapp:` section of tix.yaml, validated (see `validate_config`)."""

    raw: dict
    numbers: dict[str, Number] = field(default_factory=dict)
    base_url: str = DEFAULT_BASE_URL
    version: str = DEFAULT_VERSION
    team: str | None = None
    reopen_days: float = 14
    window_hours: float = 24
    max_body_bytes: int = 8 * 1024 * 1024
    templates: dict = field(default_factory=dict)
    path: str | None = None

    def number_for(self, pnid: str, display: str | None) -> Number:
        if pnid in self.numbers:
            return self.numbers[pnid]
        return Number(pnid, _digits(display) or pnid, None)

    def by_inbox(self, inbox: str | None) -> Number | None:
        for num in self.numbers.values():
            if num.number == inbox:
                return num
        return None

    def secret(self, what: str) -> str | None:
        from tix.config import read_secret

        return read_secret(self.raw, what)


def validate_config(section, fname: str) -> list[Problem]:
    """Check the `whatsapp:` section; one Problem per mistake, with its line."""
    problems: list[Problem] = []
    if not isinstance(section, dict):
        return [Problem(fname, getattr(section, "line", None), "whatsapp must be a mapping")]
    from tix.config import suggest

    line = getattr(section, "line_of", lambda k: getattr(section, "line", None))
    for key in section:
        if key not in _KEYS:
            problems.append(Problem(fname, line(key), f"whatsapp: unknown key {key!r}{suggest(key, _KEYS)}"))
    numbers = section.get("numbers") or []
    if not isinstance(numbers, list):
        problems.append(Problem(fname, line("numbers"), "whatsapp.numbers must be a list"))
        numbers = []
    for i, num in enumerate(numbers):
        where = num.line if hasattr(num, "line") else line("numbers")
        if not isinstance(num, dict) or not num.get("phone_number_id"):
            problems.append(Problem(fname, where, f"whatsapp.numbers[{i}] needs phone_number_id (and number)"))
            continue
        for key in num:
            if key not in _NUMBER_KEYS:
                problems.append(Problem(fname, where, f"whatsapp.numbers[{i}]: unknown key {key!r}"))
    for key in ("reopen_days", "window_hours", "max_body_bytes"):
        if key in section:
            try:
                if float(section[key]) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(Problem(fname, line(key), f"whatsapp.{key} must be a number >= 0"))
    base = str(section.get("base_url") or DEFAULT_BASE_URL)
    if urlsplit(base).scheme not in ("http", "https"):
        problems.append(Problem(fname, line("base_url"), f"whatsapp.base_url must be an http(s) URL, got {base!r}"))
    problems += _check_templates(section, fname, line)
    return problems


def _check_templates(section, fname, line) -> list[Problem]:
    problems = []
    templates = section.get("templates") or {}
    if not isinstance(templates, dict):
        return [Problem(fname, line("templates"), "whatsapp.templates must be a mapping of name to template")]
    for key, spec in templates.items():
        where = templates.line_of(key) if hasattr(templates, "line_of") else line("templates")
        if not isinstance(spec, dict) or not spec.get("name"):
            problems.append(Problem(fname, where, f"whatsapp.templates.{key} needs name (the approved template)"))
        elif not isinstance(spec.get("params") or [], list):
            problems.append(Problem(fname, where, f"whatsapp.templates.{key}.params must be a list"))
        else:
            problems += _check_params(spec, key, fname, where)
    return problems


def _check_params(spec: dict, key: str, fname: str, where) -> list[Problem]:
    """Each parameter must be a Jinja2 template that parses (rendered when a reply is composed)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    problems = []
    for i, param in enumerate(spec.get("params") or []):
        text = next(iter(param.values()), "") if isinstance(param, dict) else param
        try:
            env.parse(str(text))
        except TemplateSyntaxError as exc:
            problems.append(Problem(fname, where, f"whatsapp.templates.{key}.params[{i}]: {exc.message}"))
    return problems


def load_settings(store) -> Settings | None:
    """The validated `whatsapp:` section, or None when tix.yaml has none. Raises ConfigError."""
    section = store.config.section("whatsapp")
    if section is None:
        return None
    fname = str(store.config.path)
    problems = validate_config(section, fname)
    teams = store.config.teams
    if section.get("team") and section["team"] not in teams:
        problems.append(Problem(fname, section.line_of("team") if hasattr(section, "line_of") else None,
                                f"whatsapp.team: unknown team {section['team']!r}"))
    for i, num in enumerate(section.get("numbers") or []):
        if isinstance(num, dict) and num.get("team") and num["team"] not in teams:
            problems.append(Problem(fname, getattr(num, "line", None),
                                    f"whatsapp.numbers[{i}].team: unknown team {num['team']!r}"))
    if problems:
        raise ConfigError(problems)
    s = Settings(raw=dict(section))
    for num in section.get("numbers") or []:
        pnid = str(num["phone_number_id"])
        s.numbers[pnid] = Number(pnid, _digits(str(num.get("number") or "")) or pnid, num.get("team"))
    s.base_url = str(section.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    s.version = str(section.get("version") or DEFAULT_VERSION)
    s.team = section.get("team")
    s.reopen_days = float(section.get("reopen_days", store.config.setting("reopen_days")))
    s.window_hours = float(section.get("window_hours", 24))
    s.max_body_bytes = int(section.get("max_body_bytes", s.max_body_bytes))
    s.templates = dict(section.get("templates") or {})
    s.path = section.get("path")
    return s


# -- the run report --------------------------------------------------------------------------
@dataclass
class FetchReport(base.FetchReport):
    """What one `fetch_spool` run did: the email run's counts plus statuses and media;
    `errors` and `warnings` are one line each (file or wamid first)."""

    statuses: int = 0
    media_stored: int = 0
    media_pending: int = 0
    warnings: list[str] = field(default_factory=list)
    channel: str = "whatsapp"


# -- what is already in the store ------------------------------------------------------------
class Known:
    """Indexes built once per run from the log and state, updated as events are emitted."""

    def __init__(self, store, settings: Settings):
        from tix.tickets import ContactIndex

        self.settings = settings
        reader = store.read()
        con = reader.connect()
        self.contacts = ContactIndex()
        self.by_user: dict[str, int] = {}
        self.merged: dict[int, int] = {}
        self.names: dict[int, str | None] = {}
        self.users_of: dict[int, str | None] = {}
        self._load_contacts(con)
        self.tickets: dict[tuple[int, str], dict] = {}
        self._load_tickets(con)
        self.seen: set[str] = set()
        self.msg_ticket: dict[str, int] = {}
        self.rank: dict[str, int] = {}
        self.rank_ticket: dict[str, int] = {}
        self.status_data: dict[str, dict] = {}
        self.errors_seen: set[str] = set()
        self._load_events(con)
        con.close()

    def _load_contacts(self, con) -> None:
        from tix.tickets import normalize_phone

        rows = con.execute("SELECT id, name, merged_into, json_extract_string(fields, '$.wa_user_id'), emails, phones "
                           "FROM contacts ORDER BY id").fetchall()
        idx = self.contacts
        for cid, name, merged, uid, emails, phones in rows:  # as ContactIndex.load, on this connection
            for e in emails or ():
                idx.by_email[e.lower()] = merged or cid
            for ph in phones or ():
                idx.by_phone[normalize_phone(ph)] = merged or cid
            if merged:
                self.merged[cid] = merged
            self.names[cid] = name
            self.users_of[cid] = uid
            if uid:
                self.by_user[uid] = merged or cid

    def target(self, cid: int) -> int:
        seen = set()
        while cid in self.merged and cid not in seen:
            seen.add(cid)
            cid = self.merged[cid]
        return cid

    def _load_tickets(self, con) -> None:
        rows = con.execute("SELECT number, contact, inbox, status, resolved_at FROM tickets "
                           "WHERE channel = 'whatsapp' AND contact IS NOT NULL ORDER BY number").fetchall()
        for number, contact, inbox, status, resolved in rows:
            key = (self.target(contact), inbox or "")
            prev = self.tickets.get(key)
            if prev and prev["status"] in ("new", "open", "pending") and status not in ("new", "open", "pending"):
                continue  # an open ticket wins over a later closed one
            self.tickets[key] = {"number": number, "status": status,
                                 "resolved_at": resolved.replace(tzinfo=timezone.utc) if resolved else None}

    def _load_events(self, con) -> None:
        rows = con.execute(
            "SELECT type, ticket, data->>'message', data->>'status', "
            "CASE WHEN type = 'message.status' THEN CAST(data AS VARCHAR) END, data->>'key' "
            "FROM events WHERE data->>'channel' = 'whatsapp' OR type IN ('message.sent', 'outbox.sent') "
            "ORDER BY seq").fetchall()
        for kind, ticket, wamid, status, data, key in rows:
            if kind == "message.status":
                self._note_status(wamid, status, ticket, orjson.loads(data))
            elif kind == "whatsapp.error":
                self.errors_seen.add(key)
            elif wamid:
                if kind in ("message.received", "whatsapp.system"):
                    self.seen.add(wamid)
                if ticket is not None:
                    self.msg_ticket[wamid] = ticket

    def _note_status(self, wamid, status, ticket, data) -> None:
        r = STATUS_RANK.get(status, 0)
        if r > self.rank.get(wamid, 0):
            self.rank[wamid] = r
            self.status_data[wamid] = data
        if ticket is not None and r > self.rank_ticket.get(wamid, 0):
            self.rank_ticket[wamid] = r

    def find_contact(self, wa_id: str | None, user_id: str | None) -> int | None:
        if user_id and user_id in self.by_user:
            return self.target(self.by_user[user_id])
        if wa_id:
            cid = self.phone(wa_id)
            if cid is not None:
                return self.target(cid)
        return None

    def phone(self, wa_id: str) -> int | None:
        """Contact of a wa_id (digits already; normalize_phone only matters for a leading 0)."""
        if wa_id[:1] == "0":
            return self.contacts.find(phone=wa_id)
        return self.contacts.by_phone.get(wa_id)


# -- the intake ------------------------------------------------------------------------------
class PayloadError(TixError):
    """A spooled payload that cannot be processed (it goes to quarantine/ with this message)."""


def fetch_spool(store, now: datetime | None = None, media: bool = True) -> FetchReport:
    """Ingest every payload waiting in `spool/whatsapp/`; then fetch pending media.

    Args:
        store: the opened Store (its tix.yaml must have a `whatsapp:` section).
        now: the time of this run (tests pass one); default the current UTC time.
        media: also download media that is still pending (needs the token).

    Returns a FetchReport. Payloads that cannot be processed go to quarantine
    (`quarantine/whatsapp/<id>/item.json` + `error.json`, see tix.quarantine; `tix quarantine
    replay` retries them through `replay_item`); a spool file is removed only
    after the events made from it are fsynced, so a crash at any point followed by a re-run
    stores every message exactly once (the wamid is the key).
    """
    settings = load_settings(store)
    if settings is None:
        raise ConfigError([Problem(str(store.config.path), None, "no whatsapp: section in tix.yaml")])
    report = FetchReport()
    spool = store.path(*SPOOL)
    names = sorted(n for n in os.listdir(spool) if n.endswith(".json") and not n.startswith(".")) \
        if spool.is_dir() else []
    files = [spool / n for n in names]
    if files:
        with store.writing(actor="channel:whatsapp", via="tix fetch") as batch:
            Intake(store, settings, batch, report, now).run(files)
    if media:
        fetch_media(store, settings, report, now)
    report.left = sum(1 for _ in spool.glob("*.json")) if spool.is_dir() else 0
    _clean_stale_tmp(spool)
    return report


def _clean_stale_tmp(spool: Path, age: float = 3600) -> None:
    """Remove `.tmp-*` files a crashed receiver left: it never answered 200, so Meta redelivers."""
    if not spool.is_dir():
        return
    cutoff = time.time() - age
    for tmp in spool.glob(".tmp-*"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except FileNotFoundError:
            pass


class Intake:
    """One run over the spool, under the store lock (see `fetch_spool`)."""

    def __init__(self, store, settings: Settings, batch, report: FetchReport, now: datetime | None):
        self.store = store
        self.settings = settings
        self.batch = batch
        self.report = report
        self.now = now
        self.ts = None if now is None else now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.known = Known(store, settings)
        self.month = (now or datetime.now(timezone.utc)).strftime("%Y-%m")
        self.raw_dir = store.path("messages", "whatsapp", self.month)
        self._raw_dir_made = False

    def run(self, files: list[Path]) -> None:
        self._late_statuses()
        for start in range(0, len(files), CHUNK):
            ready = [p for p in (self._read(path) for path in files[start:start + CHUNK]) if p]
            # Meta's retries arrive late: apply a chunk in the order things happened (API-NOTES §1)
            ready.sort(key=lambda r: (r[0], r[1].name))
            done = [path for _t, path, body, payload in ready if self._apply(path, body, payload)]
            self._commit(done)

    def _read(self, path: Path):
        """(time, path, body, payload) of a usable spool file; quarantine it otherwise."""
        try:
            with open(path, "rb") as fh:
                body = fh.read()
        except FileNotFoundError:
            return None  # another fetch took it
        try:
            payload = _parse(body)
            self._validate(payload)
        except PayloadError as exc:
            self._quarantine(path, str(exc))
            return None
        return _payload_time(payload), path, body, payload

    def _commit(self, done: list[Path]) -> None:
        """fsync the events, then (only then) acknowledge: remove the spool files."""
        from tix.store.log import fsync_dir

        if self.raw_dir.is_dir():
            fsync_dir(self.raw_dir)
        self.batch.flush()
        for path in done:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        if done:
            fsync_dir(done[0].parent)

    def _apply(self, path: Path, body: bytes, payload: dict) -> bool:
        mark = len(self.batch.pending)
        try:
            self._payload(payload, self._keep_raw(path, body))
            return True
        except Exception as exc:  # a bug on one payload must not stop the batch: keep it, go on
            rolled_back = len(self.batch.pending) > mark
            del self.batch.pending[mark:]
            self.batch.seq = self.batch.pending[-1]["seq"] if self.batch.pending else self._last_seq()
            self._quarantine(path, f"internal error: {exc.__class__.__name__}: {exc}")
            if rolled_back:  # the in-memory indexes may name what was rolled back: rebuild them
                self.batch.flush()
                self.known = Known(self.store, self.settings)
            return False

    def _validate(self, payload: dict) -> None:
        """Everything that can make a payload unusable is checked before anything is emitted."""
        for entry in payload["entry"]:
            for change in entry.get("changes") or ():
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict):
                    raise PayloadError("a change without a value object")
                pnid = str((value.get("metadata") or {}).get("phone_number_id") or "")
                if self.settings.numbers and pnid not in self.settings.numbers:
                    raise PayloadError(f"phone_number_id {pnid!r} is not one of whatsapp.numbers in tix.yaml")
                profiles = value.get("contacts") or []
                for msg in value.get("messages") or ():
                    if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not msg["id"]:
                        raise PayloadError("a message without an id (wamid)")
                    p = _profile(msg, profiles)
                    if not (_digits(msg.get("from")) or _digits(p.get("wa_id")) or msg.get("from_user_id")
                            or p.get("user_id")):
                        raise PayloadError(f"message {msg['id']}: no sender (neither from nor from_user_id)")
                for st in value.get("statuses") or ():
                    if not isinstance(st, dict) or not st.get("id") or not st.get("status"):
                        raise PayloadError("a status without id or status")

    def _last_seq(self) -> int:
        last = self.store.log.last_event()
        return last["seq"] if last else 0

    def _quarantine(self, path: Path, message: str) -> None:
        """Keep the payload in quarantine/whatsapp/<id>/ (fsynced), then drop it from the spool."""
        from tix import quarantine

        qid = quarantine.put(self.store, "whatsapp", path.read_bytes(), message, source="spool/whatsapp",
                             key=path.name, ext="json", now=self.now)
        path.unlink()
        self.report.quarantined += 1
        self.report.errors.append(f"spool/whatsapp/{path.name}: {message} (quarantined as {qid})")

    def replay(self, body: bytes) -> None:
        """Ingest one payload from quarantine; raise PayloadError if it still cannot be."""
        payload = _parse(body)
        self._validate(payload)
        self._payload(payload, self._keep_raw(None, body))

    def _keep_raw(self, path: Path | None, body: bytes) -> str:
        """The payload as received, under messages/ (a hard link: the receiver fsynced it).

        Named by content, so a redelivered payload is kept once.
        """
        name = hashlib.sha256(body).hexdigest()[:32] + ".json"
        target = f"{self.raw_dir}/{name}"
        if not self._raw_dir_made:
            self.raw_dir.mkdir(parents=True, exist_ok=True)
            self._raw_dir_made = True
        try:
            if path is None:
                raise OSError("no spool file to link")
            os.link(path, target)
        except FileExistsError:
            pass
        except OSError:
            if not os.path.exists(target):
                _write_durable(Path(target), body)
        return f"messages/whatsapp/{self.month}/{name}"

    # -- one payload ----------------------------------------------------------------------
    def _payload(self, payload: dict, raw: str) -> None:
        for entry in payload["entry"]:
            for change in entry.get("changes") or ():
                value = change.get("value") or {}
                if change.get("field", "messages") != "messages" or not isinstance(value, dict):
                    self.report.warnings.append(f"{raw}: skipped change field {change.get('field')!r}")
                    continue
                self._change(entry, value, raw)

    def _change(self, entry: dict, value: dict, raw: str) -> None:
        meta = value.get("metadata") or {}
        pnid = str(meta.get("phone_number_id") or "")
        if self.settings.numbers and pnid not in self.settings.numbers:
            raise PayloadError(f"phone_number_id {pnid!r} is not one of whatsapp.numbers in tix.yaml")
        number = self.settings.number_for(pnid, meta.get("display_phone_number"))
        profiles = value.get("contacts") or []
        msgs = value.get("messages") or ()
        if len(msgs) > 1:
            msgs = sorted(msgs, key=lambda m: _int(m.get("timestamp")))
        for msg in msgs:
            self._message(msg, profiles, number, raw)
        statuses = value.get("statuses") or ()
        if len(statuses) > 1:
            statuses = sorted(statuses, key=lambda s: _int(s.get("timestamp")))
        for st in statuses:
            self._status(st, pnid)
        if value.get("errors") and not msgs:
            self._value_errors(entry, value, pnid, raw)

    def _message(self, msg: dict, profiles: list, number: Number, raw: str) -> None:
        wamid = msg.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise PayloadError("a message without an id (wamid)")
        if wamid in self.known.seen:
            self.report.duplicates += 1
            return
        profile = _profile(msg, profiles)
        wa_id = _digits(msg.get("from")) or _digits(profile.get("wa_id")) or None
        user_id = msg.get("from_user_id") or profile.get("user_id") or None
        if not wa_id and not user_id:
            raise PayloadError(f"message {wamid}: no sender (neither from nor from_user_id)")
        name = (profile.get("profile") or {}).get("name")
        username = (profile.get("profile") or {}).get("username")
        cid = self._contact(wa_id, user_id, name, username)
        data = describe(msg)
        kind = msg.get("type") or "unknown"
        sent_at = _iso_unix(msg.get("timestamp"))
        if kind == "system":
            self._system(msg, cid, number, data, raw)
            return
        ticket = self._ticket_for(cid, number, data, sent_at, kind)
        full = {"message": wamid, "channel": "whatsapp", "wa_type": kind, "from": wa_id,
                "from_user_id": user_id, "from_name": name, "to": [number.number], "subject": None,
                "text": data.pop("text"), "attachments": data.pop("attachments"), "auto": False,
                "language": None, "inbox": number.number, "context": data.pop("context", None),
                "raw": raw, "sent_at": sent_at, "phone_number_id": number.phone_number_id, **data}
        self.batch.emit("message.received", ticket=ticket, contact=cid, data=full, ts=self.ts)
        self.known.seen.add(wamid)
        self.known.msg_ticket[wamid] = ticket
        self.report.stored += 1

    # -- contacts -------------------------------------------------------------------------
    def _contact(self, wa_id, user_id, name, username) -> int:
        from tix.tickets import create_contact

        k = self.known
        cid = k.find_contact(wa_id, user_id)
        if cid is None:
            fields = {k2: v for k2, v in (("wa_user_id", user_id), ("wa_username", username)) if v}
            cid = create_contact(self.batch, name, phones=[wa_id] if wa_id else [], fields=fields,
                                 index=k.contacts)
            k.names[cid] = name
            k.users_of[cid] = user_id
            if user_id:
                k.by_user[user_id] = cid
            return cid
        change: dict = {}
        if wa_id and k.phone(wa_id) is None:
            change["add_phones"] = [wa_id]
            k.contacts.by_phone[wa_id] = cid
        sets = {}
        if user_id and k.users_of.get(cid) != user_id:
            sets["fields.wa_user_id"] = user_id
            k.users_of[cid] = user_id
            k.by_user[user_id] = cid
        if name and not k.names.get(cid):
            sets["name"] = name
            k.names[cid] = name
        if sets:
            change["set"] = sets
        if change:
            self.batch.emit("contact.updated", contact=cid, data=change, ts=self.ts,
                            why="identifiers seen in a WhatsApp message")
        return cid

    # -- tickets --------------------------------------------------------------------------
    def _ticket_for(self, cid: int, number: Number, data: dict, sent_at: str | None, kind: str) -> int:
        k = self.known
        ref = data.get("reaction", {}).get("message_id") or data.get("edit_of") or data.get("revoke_of")
        if ref and ref in k.msg_ticket:
            return k.msg_ticket[ref]  # a reaction or edit joins the message's ticket, reopening nothing
        key = (cid, number.number)
        cur = k.tickets.get(key)
        if cur and cur["status"] in ("new", "open", "pending"):
            if cur["status"] == "pending" and kind not in ("reaction",):
                self._set_status(cur, "open", "the customer wrote on WhatsApp")
            return cur["number"]
        if cur and cur["status"] == "resolved" and kind not in ("reaction", "revoke"):
            when = _parse_iso(sent_at) or self.now or datetime.now(timezone.utc)
            if cur["resolved_at"] and when - cur["resolved_at"] <= timedelta(days=self.settings.reopen_days):
                self._set_status(cur, "open", f"the customer wrote on WhatsApp within "
                                              f"{self.settings.reopen_days:g} days of the resolution")
                return cur["number"]
        return self._new_ticket(cid, number, data, cur)

    def _set_status(self, cur: dict, status: str, why: str) -> None:
        self.batch.emit("ticket.updated", ticket=cur["number"], data={"set": {"status": status},
                        "old": {"status": cur["status"]}}, why=why, ts=self.ts)
        cur["status"] = status

    def _new_ticket(self, cid: int, number: Number, data: dict, previous: dict | None) -> int:
        from tix.tickets import create_ticket

        subject = " ".join(str(data.get("text") or "").split())[:80] or "WhatsApp message"
        fields = {"linked": previous["number"]} if previous else None
        team = number.team or self.settings.team
        n = create_ticket(self.batch, subject, channel="whatsapp", contact=cid, inbox=number.number,
                          team=team, fields=fields, config=self.store.config,
                          why=f"new WhatsApp conversation (previous ticket #{previous['number']})" if previous else None)
        if self.ts:
            self.batch.pending[-1]["ts"] = self.ts
        self.known.tickets[(cid, number.number)] = {"number": n, "status": "new", "resolved_at": None}
        return n

    # -- other kinds of update ------------------------------------------------------------
    def _system(self, msg: dict, cid: int, number: Number, data: dict, raw: str) -> None:
        system = msg.get("system") or {}
        new_id = _digits(system.get("wa_id") or system.get("new_wa_id"))
        if system.get("type") == "user_changed_number" and new_id and self.known.contacts.find(phone=new_id) is None:
            self.batch.emit("contact.updated", contact=cid, data={"add_phones": [new_id]}, ts=self.ts,
                            why="WhatsApp: the customer changed number")
            self.known.contacts.by_phone[new_id] = cid
        cur = self.known.tickets.get((cid, number.number))
        ticket = cur["number"] if cur and cur["status"] in ("new", "open", "pending") else None
        self.batch.emit("whatsapp.system", ticket=ticket, contact=cid, ts=self.ts,
                        data={"message": msg["id"], "channel": "whatsapp", "system": system,
                              "text": data["text"], "raw": raw, "inbox": number.number})
        self.known.seen.add(msg["id"])
        self.report.stored += 1

    def _status(self, st: dict, pnid: str) -> None:
        wamid, status = st.get("id"), st.get("status")
        if not wamid or not status:
            raise PayloadError("a status without id or status")
        k = self.known
        r = STATUS_RANK.get(status, 0)
        if r <= k.rank.get(wamid, 0) and not (r == 0 and wamid not in k.rank):
            self.report.duplicates += 1
            return
        errors = st.get("errors") or []
        data = {"message": wamid, "channel": "whatsapp", "status": status, "at": _iso_unix(st.get("timestamp")),
                "recipient": st.get("recipient_id"), "phone_number_id": pnid}
        if errors:
            data["errors"] = errors
        if st.get("biz_opaque_callback_data"):
            data["callback"] = st["biz_opaque_callback_data"]
        if any(e.get("code") == 131047 for e in errors):
            data["template_only"] = True
        self._emit_status(wamid, data)

    def _emit_status(self, wamid: str, data: dict, late: bool = False) -> None:
        k = self.known
        ticket = k.msg_ticket.get(wamid)
        ev_data = dict(data, late=True) if late else data
        self.batch.emit("message.status", ticket=ticket, data=ev_data, ts=self.ts)
        k._note_status(wamid, data["status"], ticket, data)
        self.report.statuses += 1
        if ticket is not None and data["status"] == "failed":
            self.batch.emit("ticket.note", ticket=ticket, ts=self.ts,
                            data={"body": failed_note(ticket, data), "kind": "whatsapp"})

    def _late_statuses(self) -> None:
        """Statuses that arrived before tix knew the message: attach them to its ticket now."""
        k = self.known
        for wamid, r in list(k.rank.items()):
            if wamid in k.msg_ticket and r > k.rank_ticket.get(wamid, 0):
                self._emit_status(wamid, k.status_data[wamid], late=True)

    def _value_errors(self, entry: dict, value: dict, pnid: str, raw: str) -> None:
        errors = value["errors"]
        key = hashlib.sha256(orjson.dumps([entry.get("id"), pnid, errors], option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        if key in self.known.errors_seen:
            self.report.duplicates += 1
            return
        self.known.errors_seen.add(key)
        self.batch.emit("whatsapp.error", ts=self.ts, data={"channel": "whatsapp", "key": key, "errors": errors,
                                                           "phone_number_id": pnid, "raw": raw})
        for e in errors:
            self.report.warnings.append(f"whatsapp {pnid}: Meta reported error {e.get('code')}: "
                                        f"{e.get('title') or e.get('message')}")


def replay_item(store, entry: dict, payload: bytes, now: datetime | None = None) -> None:
    """`tix quarantine replay` for kind whatsapp: ingest the payload again (raises if it still fails)."""
    settings = load_settings(store)
    if settings is None:
        raise ConfigError([Problem(str(store.config.path), None, "no whatsapp: section in tix.yaml")])
    with store.writing(actor="channel:whatsapp", via="tix quarantine replay") as batch:
        intake = Intake(store, settings, batch, FetchReport(), now)
        intake.replay(payload)
        intake.batch.flush()


def demo_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "demo" / "whatsapp"


def load_demo(store) -> int:
    """For `tix demo`: add the demo `whatsapp:` section (if none) and spool the demo payloads.

    Returns the number of payloads spooled; `fetch_spool` (or `tix fetch`) then ingests them.
    """
    src = demo_dir()
    if store.config.section("whatsapp") is None:
        cfg = store.path("tix.yaml")
        cfg.write_text(cfg.read_text(encoding="utf-8").rstrip("\n") + "\n\n" +
                       (src / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        store._config = None
    spool = store.path(*SPOOL)
    spool.mkdir(parents=True, exist_ok=True)
    files = sorted(src.glob("*.json"))
    for i, f in enumerate(files):
        _write_durable(spool / f"{i:020d}-demo-{f.name}", f.read_bytes())
    return len(files)


def failed_note(ticket: int, data: dict) -> str:
    err = (data.get("errors") or [{}])[0]
    code = err.get("code")
    details = (err.get("error_data") or {}).get("details") or err.get("message") or err.get("title") or ""
    if data.get("template_only"):
        return (f"WhatsApp message {data['message']} was not delivered ({code} re-engagement): more than 24 hours "
                f"since the customer last wrote, so only an approved template can be sent now "
                f"(tix reply {ticket} --template NAME).")
    return f"WhatsApp message {data['message']} failed ({code} {err.get('title') or ''}): {details}".strip()


# -- reading one message ---------------------------------------------------------------------
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


def describe(msg: dict) -> dict:
    """Text (or a placeholder), attachments and type-specific data of one inbound message."""
    kind = msg.get("type") or "unknown"
    body = msg.get(kind) if isinstance(msg.get(kind), dict) else {}
    out: dict = {"attachments": []}
    ctx = msg.get("context") or {}
    if ctx.get("id"):
        out["context"] = ctx["id"]
    if ctx.get("forwarded") or ctx.get("frequently_forwarded"):
        out["forwarded"] = "frequently" if ctx.get("frequently_forwarded") else True
    if msg.get("referral"):
        out["referral"] = msg["referral"]
    if msg.get("errors"):
        out["errors"] = msg["errors"]
    handler = _DESCRIBE.get(kind)
    out["text"] = (handler(body, out, msg) if handler else _unknown(kind, msg, out)) or f"[empty {kind} message]"
    return out


def _text(body, out, msg):
    return str(body.get("body") or "")


def _media(body, out, msg):
    kind = msg.get("type")
    label = "voice message" if body.get("voice") else ("animated sticker" if body.get("animated") else kind)
    out["attachments"].append(_attachment(kind, body))
    caption = body.get("caption")
    if kind == "document":
        return caption or f"[document: {body.get('filename') or 'unnamed'}]"
    return caption or f"[{label}]"


def _attachment(kind: str, body: dict) -> dict:
    import mimetypes

    mime = str(body.get("mime_type") or "").split(";")[0].strip()
    name = body.get("filename") or f"{kind}{mimetypes.guess_extension(mime) or ''}"
    return {"kind": kind, "media_id": body.get("id"), "name": name,
            "type": body.get("mime_type"), "size": None, "sha256": body.get("sha256"),
            "caption": body.get("caption"), "status": "pending", "blob": None}


def _location(body, out, msg):
    out["location"] = {k: body.get(k) for k in ("latitude", "longitude", "name", "address", "url") if k in body}
    where = ", ".join(str(body[k]) for k in ("name", "address") if body.get(k))
    return f"[location] {where + ' ' if where else ''}({body.get('latitude')}, {body.get('longitude')})"


def _contacts(body, out, msg):
    cards = msg.get("contacts") or []
    shown = []
    for card in cards:
        nm = (card.get("name") or {}).get("formatted_name") or "?"
        phones = ", ".join(p.get("phone") or p.get("wa_id") or "" for p in card.get("phones") or ())
        shown.append(f"{nm} {phones}".strip())
    return "[contact card] " + "; ".join(shown)


def _interactive(body, out, msg):
    itype = body.get("type")
    reply = body.get(itype) if isinstance(body.get(itype), dict) else None
    if not reply:
        return "[interactive message]"
    out["reply"] = {"type": itype, **reply}
    extra = f" ({reply['description']})" if reply.get("description") else ""
    label = reply.get("title") or reply.get("body") or reply.get("id") or f"[{itype}]"
    return f"{label}{extra}"


def _button(body, out, msg):
    out["reply"] = {"type": "button", "payload": body.get("payload"), "text": body.get("text")}
    return str(body.get("text") or body.get("payload") or "[button]")


def _reaction(body, out, msg):
    emoji = body.get("emoji") or ""
    out["reaction"] = {"message_id": body.get("message_id"), "emoji": emoji or None}
    return f"[reaction {emoji}]" if emoji else "[reaction removed]"


def _edit(body, out, msg):
    out["edit_of"] = body.get("original_message_id")
    inner = body.get("message") or {}
    if inner.get("type"):
        sub = describe(inner)
        out["attachments"] += sub["attachments"]
        return f"[edited] {sub['text']}"
    return "[edited message]"


def _revoke(body, out, msg):
    out["revoke_of"] = body.get("original_message_id")
    return "[message deleted by the customer]"


def _unsupported(body, out, msg):
    what = body.get("type")
    err = (msg.get("errors") or [{}])[0]
    return f"[unsupported message{': ' + what if what else ''}{' - ' + err['title'] if err.get('title') else ''}]"


def _order(body, out, msg):
    items = body.get("product_items") or []
    text = body.get("text") or ""
    return f"[order: {len(items)} item{'s' if len(items) != 1 else ''}] {text}".strip()


def _system_text(body, out, msg):
    return f"[system] {body.get('body') or body.get('type') or ''}".strip()


def _unknown(kind, msg, out):
    return f"[{kind} message]"


_DESCRIBE = {"text": _text, "image": _media, "video": _media, "audio": _media, "document": _media,
             "sticker": _media, "location": _location, "contacts": _contacts, "interactive": _interactive,
             "button": _button, "reaction": _reaction, "edit": _edit, "revoke": _revoke,
             "unsupported": _unsupported, "order": _order, "system": _system_text}


# -- media -----------------------------------------------------------------------------------
def pending_media(store) -> list[dict]:
    """Media referenced by WhatsApp messages and not yet stored or given up on."""
    con = store.read().connect()
    done = {(m, mid) for m, mid in con.execute(
        "SELECT data->>'message', data->>'media_id' FROM events WHERE type = 'message.media'").fetchall()}
    rows = con.execute(
        "SELECT ticket, contact, ts, data->>'message', CAST(data->'attachments' AS VARCHAR), data->>'phone_number_id' "
        "FROM events WHERE type = 'message.received' AND data->>'channel' = 'whatsapp' "
        "AND json_array_length(data->'attachments') > 0 ORDER BY seq").fetchall()
    con.close()
    out = []
    for ticket, contact, ts, wamid, atts, pnid in rows:
        for att in orjson.loads(atts):
            if att.get("media_id") and (wamid, att["media_id"]) not in done:
                out.append({"ticket": ticket, "contact": contact, "received": ts.replace(tzinfo=timezone.utc),
                            "message": wamid, "phone_number_id": pnid, **att})
    return out


def fetch_media(store, settings: Settings, report: FetchReport, now: datetime | None = None) -> None:
    """Download pending media into blobs/; failures stay pending for the next run."""
    todo = pending_media(store)
    if not todo:
        return
    now = now or datetime.now(timezone.utc)
    token = _token_or_none(settings)
    done: list[tuple[dict, dict]] = []
    session = _session() if token else None
    for item in todo:
        if now - item["received"] > timedelta(days=MEDIA_DAYS):
            done.append((item, {"status": "expired"}))
            continue
        if token is None:
            report.media_pending += 1
            continue
        try:
            done.append((item, download_media(store, settings, session, token, item)))
            report.media_stored += 1
        except TixError as exc:
            report.media_pending += 1
            report.errors.append(f"whatsapp media {item['media_id']} of {item['message']}: {exc} (will retry)")
    if done:
        ts = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with store.writing(actor="channel:whatsapp", via="tix fetch") as batch:
            still = {(p["message"], p["media_id"]) for p in pending_media(store)}  # a concurrent fetch?
            for item, result in done:
                if (item["message"], item["media_id"]) not in still:
                    continue
                batch.emit("message.media", ticket=item["ticket"], contact=item["contact"], ts=ts,
                           data={"message": item["message"], "channel": "whatsapp", "media_id": item["media_id"],
                                 **result})


def _token_or_none(settings: Settings) -> str | None:
    try:
        return settings.secret("token")
    except TixError:
        return None


def _session():
    import requests

    return requests.Session()


def download_media(store, settings: Settings, session, token: str, item: dict) -> dict:
    """Look the media id up, download it with the bearer token, verify sha256, store the blob."""
    import requests

    url = f"{settings.base_url}/{settings.version}/{item['media_id']}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        resp = session.get(url, headers=auth, params={"phone_number_id": item.get("phone_number_id") or ""},
                           timeout=(5, 30))
        if resp.status_code != 200:
            raise TixError(f"media lookup answered HTTP {resp.status_code}{_graph_code(resp)}")
        meta = resp.json()
        media_url = meta["url"]
        headers = auth if _token_allowed(media_url, settings.base_url) else {}
        with session.get(media_url, headers=headers, timeout=(5, 60), stream=True) as got:
            if got.status_code != 200:
                raise TixError(f"media download answered HTTP {got.status_code}")
            blob, digest, size = _save_blob(store, got.iter_content(65536))
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise TixError(f"media download failed: {exc.__class__.__name__}") from None
    expected = meta.get("sha256") or item.get("sha256")
    if expected and not _sha_matches(expected, digest):
        raise TixError(f"sha256 mismatch (got {digest.hex()[:16]}…)")
    return {"status": "stored", "blob": blob, "sha256": digest.hex(), "size": size,
            "type": meta.get("mime_type") or item.get("type"), "name": item.get("name")}


def _graph_code(resp) -> str:
    try:
        return f", error {resp.json()['error']['code']}"
    except Exception:  # noqa: BLE001 - any non-Graph body
        return ""


def _token_allowed(url: str, base_url: str) -> bool:
    """The bearer token goes to Meta's media hosts and to the configured API host only."""
    host = (urlsplit(url).hostname or "").lower()
    base_host = (urlsplit(base_url).hostname or "").lower()
    return host == base_host or any(host == h or host.endswith("." + h) for h in TOKEN_HOSTS)


def _sha_matches(expected: str, digest: bytes) -> bool:
    if expected.lower() == digest.hex():
        return True
    try:
        return base64.b64decode(expected + "=" * (-len(expected) % 4)) == digest
    except (ValueError, TypeError):
        return False


def _save_blob(store, chunks) -> tuple[str, bytes, int]:
    tmp_dir = store.path("blobs", "tmp")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"wa-{os.getpid()}-{time.monotonic_ns()}"
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if size > MEDIA_MAX:
                    raise TixError(f"media larger than {MEDIA_MAX} bytes")
                h.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        hexd = h.hexdigest()
        final = store.path("blobs", "sha256", hexd[:2], hexd)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        from tix.store.log import fsync_dir

        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return f"blobs/sha256/{hexd[:2]}/{hexd}", h.digest(), size


# -- small helpers ---------------------------------------------------------------------------
def _parse(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise PayloadError("not a WhatsApp webhook payload (no entry list)")
    if payload.get("object") not in (None, "whatsapp_business_account"):
        raise PayloadError(f"unexpected object {payload.get('object')!r}")
    for entry in payload["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes", []), list):
            raise PayloadError("an entry without a changes list")
    return payload


def _payload_time(payload: dict) -> int:
    """The earliest message or status time in a payload (0 when it has none)."""
    times = [_int(item.get("timestamp"))
             for entry in payload["entry"] for change in entry.get("changes") or ()
             for key in ("messages", "statuses") for item in (change.get("value") or {}).get(key) or ()]
    return min(times, default=0)


def _profile(msg: dict, profiles: list) -> dict:
    for p in profiles:
        if not isinstance(p, dict):
            continue
        if (msg.get("from") and p.get("wa_id") == msg.get("from")) or (
                msg.get("from_user_id") and p.get("user_id") == msg.get("from_user_id")):
            return p
    return profiles[0] if len(profiles) == 1 and isinstance(profiles[0], dict) else {}


def _digits(value) -> str:
    text = str(value or "")
    if text.isdigit():
        return text
    return "".join(c for c in text if c.isdigit())


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _iso_unix(value) -> str | None:
    t = _int(value)
    if not t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
