"""The one small interface every inbound channel implements, and the shapes it shares.

A channel only *fetches and decodes*: a `Source` yields raw items, each with its
idempotency key, and acknowledges them at the source when told to. It never decides what
an item means; `tix.ingest` does (de-duplicate, contacts, thread, store, fsync) and only
then calls `ack`.

    source = open_source(store, spec, known)   # spec: one entry of `sources()`
    for chunk in source.chunks(limit):         # lists of RawItem, in source order
        ...decode, intake, store, fsync...
        source.ack(chunk)                      # flag / move / delete / advance the cursor / unlink
    source.left                                # items not fetched because of the cap
    source.close()

`known(key)` (from the intake's index) tells a source which keys are already stored, so
it can skip fetching their bodies. Sources: `imap`, `maildir`, `mbox` (`tix.channels.mail`)
and the WhatsApp webhook spool (`tix.channels.whatsapp.spool`, named `whatsapp`, present
when tix.yaml has a `whatsapp:` section). An item the channel cannot decode raises
`Undecodable` (its message is the quarantine reason).

Config schema (`channels:` in tix.yaml, a list): every source has `name` and `type`
(imap, maildir, mbox); the type adds its own keys (see `SCHEMAS`). Errors are one line
each, `tix.yaml:LINE: channels[2] (support): unknown key 'hots' (did you mean 'host'?)`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from tix.errors import Problem, TixError, UsageError

TYPES = {"imap": "tix.channels.mail.imap:ImapSource",
         "maildir": "tix.channels.mail.maildir:MaildirSource",
         "mbox": "tix.channels.mail.mbox:MboxSource",
         "whatsapp": "tix.channels.whatsapp.spool:SpoolSource"}
WHATSAPP = {"name": "whatsapp", "type": "whatsapp"}  # the spool source, when tix.yaml has `whatsapp:`

_COMMON = {"name": str, "type": str, "address": str, "team": str, "after": str, "limit": int,
           "attachment_limit": int, "auto_messages": str, "priority": str}
SCHEMAS: dict[str, dict] = {
    "imap": {**_COMMON, "host": str, "port": int, "security": str, "allow_plaintext": bool, "user": str,
             "password_env": str,
             "password_file": str, "folders": list, "move_to": str, "batch": int, "timeout": float,
             "ca_file": str},
    "maildir": {**_COMMON, "path": str, "batch": int},
    "mbox": {**_COMMON, "path": str, "batch": int},
}
REQUIRED = {"imap": ("host", "user"), "maildir": ("path",), "mbox": ("path",)}
AFTER = {"imap": ("seen", "move", "delete"), "maildir": ("keep", "seen", "delete"), "mbox": ("keep",)}
SECURITY = ("ssl", "starttls", "plain")
AUTO_MESSAGES = ("ticket", "closed")
DEFAULT_ATTACHMENT_LIMIT = 25 * 1024 * 1024


class Undecodable(TixError):
    """An item its channel cannot decode (not mail, not a webhook payload…): the message
    says why, and the item goes to quarantine with it."""


@dataclass
class RawItem:
    """One item as fetched: bytes exactly as received plus where it came from."""

    source: str  # the source's name (`channels:` in tix.yaml, or `whatsapp`)
    key: str  # source idempotency key, e.g. `imap:support:INBOX:1700000000:42`
    raw: bytes
    meta: dict = field(default_factory=dict)  # folder, uid, path… (what `ack` needs)

    @property
    def where(self) -> str:
        """Where the item came from, for an error line (`spool/whatsapp/NAME`, or source and key)."""
        return self.meta.get("where") or f"{self.source} {self.key}"


COUNTS = ("stored", "duplicates", "quarantined", "left", "tickets_created", "statuses", "media_stored",
          "media_pending", "joined", "bounces", "account_events", "contact_events", "echoes", "skipped")


@dataclass
class FetchReport:
    """What one fetch run did, per source and in all (`tix fetch` prints it); `errors` and
    `warnings` are one line each (where first)."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    left: int = 0
    errors: list[str] = field(default_factory=list)
    tickets_created: int = 0
    sources: dict = field(default_factory=dict)  # name -> {"stored", "duplicates", …}
    statuses: int = 0  # WhatsApp delivery statuses recorded
    media_stored: int = 0  # WhatsApp media downloaded into blobs/
    media_pending: int = 0  # … still to download (retried by the next run)
    warnings: list[str] = field(default_factory=list)
    joined: int = 0  # messages that joined an existing ticket (a reply, a follow-up)
    bounces: int = 0  # delivery reports noted on the ticket of the message that bounced
    account_events: int = 0  # WhatsApp account, number and template changes recorded
    contact_events: int = 0  # WhatsApp identity changes, preferences and calls recorded
    echoes: int = 0  # WhatsApp messages the business sent from the phone app, recorded
    skipped: int = 0  # things knowingly not taken in (one entry each in `skips`)
    skips: list[str] = field(default_factory=list)  # "field: why" of each skipped thing

    def skip(self, what: str, why: str) -> None:
        self.skipped += 1
        self.skips.append(f"{what}: {why}")

    def merge(self, other: "FetchReport", name: str | None = None) -> None:
        for attr in COUNTS:
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        self.errors += other.errors
        self.warnings += other.warnings
        self.skips += other.skips
        if name:
            self.sources[name] = {a: getattr(other, a) for a in COUNTS}

    @property
    def ok(self) -> bool:
        return not self.errors and not self.quarantined


class Source:
    """Base of every inbound source (see the module docstring for the protocol)."""

    type = ""
    channel = "email"  # what its items are: decoded and taken in by `tix.ingest`'s step of that name

    def __init__(self, store, spec: dict, known=None):
        self.store = store
        self.spec = spec
        self.name = str(spec["name"])
        self.left = 0
        self.total: int | None = None  # messages this run will fetch, once known (for progress)
        self._known = known
        self.refused: list[str] = []  # entries not read (e.g. a symbolic link): one line each, an error

    @property
    def address(self) -> str | None:
        """The inbox address tickets from this source came in on (replies are sent from it)."""
        addr = self.spec.get("address") or self.spec.get("user")
        return str(addr).lower() if addr and "@" in str(addr) else None

    @property
    def batch_size(self) -> int:
        return int(self.spec.get("batch") or 200)

    @property
    def after(self) -> str:
        return str(self.spec.get("after") or AFTER[self.type][0])

    def items(self, limit: int | None = None):
        """Yield RawItems one at a time (a convenience over `chunks`)."""
        for chunk in self.chunks(limit):
            yield from chunk

    def chunks(self, limit: int | None = None):
        """Yield lists of at most `batch_size` RawItems; set `self.left` when capped."""
        raise NotImplementedError

    def ack(self, items) -> None:
        """Acknowledge one item or a list at the source (only after they are fsynced in the store)."""

    def seen_key(self, key: str) -> bool:
        """Is this key already stored? (`known` from the intake: skip fetching its body)."""
        return self._known is not None and self._known(key)

    def close(self) -> None:
        pass


def as_list(items) -> list[RawItem]:
    """`ack` takes one item or a list of them."""
    return [items] if isinstance(items, RawItem) else list(items)


def read_raw(store, data: dict) -> bytes:
    """The bytes of a stored message, exactly as received, from its event's data.

    `raw` is a path under the store; with `raw_span: [offset, length]` the message is that
    byte range of a pack file (email intake writes one pack per fetched batch).
    """
    path = store.root / data["raw"]
    span = data.get("raw_span")
    if not span:
        return path.read_bytes()
    offset, length = int(span[0]), int(span[1])
    with open(path, "rb") as fh:
        fh.seek(offset)
        out = fh.read(length)
    if len(out) != length:
        raise OSError(f"{data['raw']}: {length} bytes at {offset} expected, {len(out)} found")
    return out


def open_source(store, spec: dict, known=None) -> Source:
    """The source of one spec (see `sources`); `known(key)` says which keys are stored."""
    module, cls = TYPES[spec["type"]].split(":")
    return getattr(importlib.import_module(module), cls)(store, spec, known)


def sources(config, names=None) -> list[dict]:
    """The `channels:` entries, then the WhatsApp spool (`whatsapp`) when tix.yaml has a
    `whatsapp:` section; optionally only those named (unknown names are a UsageError)."""
    specs = list(config.section("channels", []) or [])
    if config.section("whatsapp") is not None:
        specs.append(dict(WHATSAPP))
    if names:
        known = {str(s.get("name")) for s in specs}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"unknown source {missing[0]!r}; "
                             f"sources in tix.yaml: {', '.join(sorted(known)) or '(none)'}")
        specs = [s for s in specs if str(s.get("name")) in names]
    return specs


def validate_channels(node, fname: str) -> list[Problem]:
    """Validate the `channels:` section: a list of sources. Returns every problem found."""
    from tix.config import check_keys

    if not isinstance(node, list):
        return [Problem(fname, getattr(node, "line", None), "channels must be a list of sources (- name: …, type: …)")]
    problems: list[Problem] = []
    names: set[str] = set()
    for i, spec in enumerate(node):
        lines = getattr(node, "lines", None) or []
        line = lines[i] if i < len(lines) else getattr(node, "line", None)
        if not isinstance(spec, dict):
            problems.append(Problem(fname, line, f"channels[{i}] must be a mapping with name and type"))
            continue
        label = f"channels[{i}] ({spec.get('name', '?')})"

        def at(key, spec=spec, line=line):
            return spec.line_of(key) if hasattr(spec, "line_of") else line

        kind = spec.get("type")
        if kind not in SCHEMAS:
            problems.append(Problem(fname, at("type"),
                                    f"{label}: type must be one of {', '.join(SCHEMAS)}, got {kind!r}"))
            continue
        name = spec.get("name")
        if not name or not isinstance(name, str):
            problems.append(Problem(fname, line, f"{label}: every source needs a name"))
        elif name in names:
            problems.append(Problem(fname, at("name"), f"{label}: duplicate source name {name!r}"))
        names.add(str(name))
        problems += check_keys(spec, SCHEMAS[kind], fname, label, line=line, types=True)
        for key in REQUIRED[kind]:
            if not spec.get(key):
                problems.append(Problem(fname, line, f"{label}: {key} is required for type {kind}"))
        problems += _check_choices(spec, kind, label, at, fname)
    return problems


def _check_choices(spec, kind, label, at, fname) -> list[Problem]:
    out = []
    after = spec.get("after")
    if after is not None and after not in AFTER[kind]:
        out.append(Problem(fname, at("after"),
                           f"{label}: after must be one of {', '.join(AFTER[kind])}, got {after!r}"))
    if after == "move" and not spec.get("move_to"):
        out.append(Problem(fname, at("after"), f"{label}: after: move needs move_to: FOLDER"))
    sec = spec.get("security")
    if sec is not None and sec not in SECURITY:
        out.append(Problem(fname, at("security"),
                           f"{label}: security must be one of {', '.join(SECURITY)}, got {sec!r}"))
    if kind == "imap":
        from tix import tls

        refused = tls.plaintext_refused(spec, label)
        if refused:
            out.append(Problem(fname, at("security"), refused))
    am = spec.get("auto_messages")
    if am is not None and am not in AUTO_MESSAGES:
        out.append(Problem(fname, at("auto_messages"),
                           f"{label}: auto_messages must be one of {', '.join(AUTO_MESSAGES)}, got {am!r}"))
    if kind == "imap" and not (spec.get("password_env") or spec.get("password_file")):
        out.append(Problem(fname, at("user"),
                           f"{label}: name the password with password_env: VAR or password_file: PATH"))
    folders = spec.get("folders")
    if isinstance(folders, list) and not all(isinstance(f, str) and f for f in folders):
        out.append(Problem(fname, at("folders"), f"{label}: folders must be a list of folder names"))
    return out
