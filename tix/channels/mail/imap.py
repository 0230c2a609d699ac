"""IMAP source (imapclient): UID-based, batched `BODY.PEEK[]`, UIDVALIDITY checked.

Per folder the cursor `state/imap/<source>.json` holds `{"FOLDER": {"uidvalidity": V,
"last_uid": U}}`. A run selects each folder, searches `UID U+1:*` (everything that
arrived since, however long ago: no date window, so an outage loses nothing), and
fetches the bodies in batches with `BODY.PEEK[]` (which does not set `\\Seen`). Only
after `tix.ingest` has fsynced a batch does `ack` flag, move or delete those messages
and advance the cursor. A changed UIDVALIDITY resets the cursor: the folder is read
again from the start and the content keys make every already-stored message a no-op.

Two connections per run: one fetches (in the intake's prefetch thread, a batch or two
ahead of the store), the other acknowledges what has been stored, so neither waits for
the other. The cursor is shared between them under a lock, and saved (atomically) at
most every `CURSOR_EVERY` seconds and when the source closes: it only saves a re-scan,
so a cursor a crash leaves behind costs a search of the UIDs since, which the keys skip.

The source key of a message is `imap:<source>:<folder>:<uidvalidity>:<uid>`.
"""
from __future__ import annotations

import json
import re
import ssl
import threading
import time

from tix import tls
from tix.channels.base import RawItem, Source, as_list
from tix.config import read_secret
from tix.errors import TixError, UsageError
from tix.store.files import atomic_write

SEEN = b"\\Seen"
CURSOR_EVERY = 5.0  # seconds between cursor saves during a run (an fsync each)


class SourceError(TixError):
    """The server could not be reached, refused the login or failed TLS (one line)."""


class ImapSource(Source):
    type = "imap"

    def __init__(self, store, spec, known=None):
        super().__init__(store, spec, known)
        self.client = None  # fetches (in the intake's prefetch thread)
        self.folder: str | None = None
        self.acker = None  # flags, moves, deletes (in the storing thread): a second connection
        self.ack_folder: str | None = None
        self.cursor_path = store.path("state", "imap", f"{self.name}.json")
        self.cursor = self._load_cursor()
        self._cursor_lock = threading.Lock()
        self._cursor_dirty, self._cursor_saved = False, time.monotonic()

    # -- connection -------------------------------------------------------------------------
    def connect(self):
        self.client = self._open()
        return self.client

    def _open(self):
        """A new logged-in connection."""
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        spec = self.spec
        password = read_secret(spec, "password")
        if password is None:
            raise UsageError(f"source {self.name}: no password (set password_env or password_file)")
        security = spec.get("security") or "ssl"
        host = str(spec["host"])
        port = int(spec.get("port") or (993 if security == "ssl" else 143))
        tls.check_plaintext(spec, f"source {self.name}")
        context = tls.client_context(spec, f"source {self.name}") if security != "plain" else None
        try:
            client = IMAPClient(host, port=port, ssl=security == "ssl", ssl_context=context,
                                timeout=float(spec.get("timeout") or 60))
            quiet(client)
            if security == "starttls":
                client.starttls(context)
            client.login(str(spec["user"]), password)
        except LoginError:
            raise SourceError(f"IMAP {host}:{port}: login refused for user {spec['user']}") from None
        except ssl.SSLError as exc:
            raise SourceError(tls.describe(exc, host, port)) from None
        except OSError as exc:
            raise SourceError(f"cannot connect to IMAP {host}:{port}: {exc.strerror or exc}") from None
        return client

    def close(self) -> None:
        with self._cursor_lock:
            if self._cursor_dirty:
                self._save_cursor()
        for attr in ("acker", "client"):
            client = getattr(self, attr)
            setattr(self, attr, None)
            if client is not None:
                try:
                    client.logout()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    try:
                        client.shutdown()
                    except Exception:  # noqa: BLE001
                        pass

    # -- fetching ---------------------------------------------------------------------------
    def folders(self) -> list[str]:
        return [str(f) for f in self.spec.get("folders") or ["INBOX"]]

    def chunks(self, limit=None):
        client = self.client or self.connect()
        budget = limit
        self.left = 0
        self.total = 0
        for folder in self.folders():
            uids = self._select(client, folder)
            if budget is not None:
                take, rest = uids[:max(budget, 0)], uids[max(budget, 0):]
                self.left += len(rest)
                budget -= len(take)
                uids = take
            self.total += len(uids)
            for i in range(0, len(uids), self.batch_size):
                yield self._fetch(client, folder, uids[i:i + self.batch_size])

    def _select(self, client, folder: str) -> list[int]:
        info = client.select_folder(folder)
        self.folder = folder
        validity = int(info.get(b"UIDVALIDITY") or 0)
        with self._cursor_lock:
            cur = self.cursor.get(folder) or {}
            if cur.get("uidvalidity") != validity:
                # New folder, or the server renumbered it: read it all again, safely (keys dedupe).
                cur = {"uidvalidity": validity, "last_uid": 0}
                self.cursor[folder] = cur
            last = int(cur.get("last_uid") or 0)
        uids = client.search(["UID", f"{last + 1}:*"])
        return sorted(u for u in uids if u > last)  # `N:*` returns the last UID even when < N

    def _fetch(self, client, folder: str, uids: list[int]) -> list[RawItem]:
        validity = self.cursor[folder]["uidvalidity"]
        items, todo = [], []
        for uid in uids:
            key = f"imap:{self.name}:{folder}:{validity}:{uid}"
            if self.seen_key(key):
                items.append(RawItem(self.name, key, b"", {"folder": folder, "uid": uid, "known": True}))
            else:
                todo.append(uid)
        if todo:
            got = fetch_bodies(client, todo)
            for uid in todo:
                body = got.get(uid)
                key = f"imap:{self.name}:{folder}:{validity}:{uid}"
                if body is None:  # expunged meanwhile by someone else: nothing to store
                    items.append(RawItem(self.name, key, b"", {"folder": folder, "uid": uid, "gone": True}))
                else:
                    items.append(RawItem(self.name, key, bytes(body), {"folder": folder, "uid": uid}))
        items.sort(key=lambda it: it.meta["uid"])
        return items

    # -- acknowledging ----------------------------------------------------------------------
    def ack(self, items: list[RawItem]) -> None:
        items = as_list(items)
        if not items:
            return
        folder = items[0].meta["folder"]
        uids = [it.meta["uid"] for it in items if not it.meta.get("gone")]
        if uids:
            if self.acker is None:
                self.acker = self._open()
                self.ack_folder = None
            if self.ack_folder != folder:
                self.acker.select_folder(folder)
                self.ack_folder = folder
            self._after(self.acker, uids)
        with self._cursor_lock:
            cur = self.cursor[folder]
            cur["last_uid"] = max(cur.get("last_uid") or 0, max(it.meta["uid"] for it in items))
            self._cursor_dirty = True
            if time.monotonic() - self._cursor_saved >= CURSOR_EVERY:
                self._save_cursor()

    def _after(self, client, uids: list[int]) -> None:
        after = self.after
        if after == "seen":
            client.add_flags(uids, [SEEN], silent=True)
        elif after == "move":
            target = str(self.spec["move_to"])
            if client.has_capability("MOVE"):
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.delete_messages(uids, silent=True)
                _expunge(client, uids)
        elif after == "delete":
            client.delete_messages(uids, silent=True)
            _expunge(client, uids)

    # -- cursor -------------------------------------------------------------------------------
    def _load_cursor(self) -> dict:
        try:
            return json.loads(self.cursor_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a damaged cursor only costs a re-scan: the keys dedupe it

    def _save_cursor(self) -> None:
        atomic_write(self.cursor_path, json.dumps(self.cursor, sort_keys=True))
        self._cursor_dirty, self._cursor_saved = False, time.monotonic()


# A FETCH answer as servers send it for `UID FETCH … (BODY.PEEK[])`: `N (UID U BODY[] {size}`,
# the body, `)`; or `N (BODY[] {size}`, the body, ` UID U)`.
_UID_FIRST = re.compile(rb"\d+ \(UID (\d+) BODY\[\] \{(\d+)\}")
_BODY_FIRST = re.compile(rb"\d+ \(BODY\[\] \{(\d+)\}")
_UID_LAST = re.compile(rb" UID (\d+)\)")


def fetch_bodies(client, uids: list[int]) -> dict[int, bytes]:
    """`UID FETCH uids (BODY.PEEK[])`: {uid: body}; a UID left out was expunged meanwhile.

    The usual answer (`_UID_FIRST`, `_BODY_FIRST`) is read here; any other shape (FLAGS
    sent along, a NIL body, an unsolicited FETCH of another message) by imapclient's own
    parser, as `IMAPClient.fetch` would. Its general lexer took 26 ms of the fetch thread
    per 1,000 messages (0.5 s of a 20,000-message run, under the GIL the intake needs);
    reading the usual shape takes 2 ms.
    """
    from imapclient.exceptions import IMAPClientError

    typ, data = client._imap.uid("FETCH", ",".join(map(str, uids)), "(BODY.PEEK[])")
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {data[0]!r}"[:300])
    return bodies_of(data)


def bodies_of(data: list) -> dict[int, bytes]:
    """{uid: body} from imaplib's data of a `UID FETCH … (BODY.PEEK[])` (see `fetch_bodies`)."""
    out = _usual_fetch(data)
    if out is None:
        from imapclient.response_parser import parse_fetch_response

        out = {}
        for uid, items in parse_fetch_response(data, True, True).items():
            body = items.get(b"BODY[]")
            if isinstance(uid, int) and body is not None:
                out[uid] = bytes(body)
    return out


def _usual_fetch(data: list) -> dict[int, bytes] | None:
    """{uid: body} from imaplib's FETCH data when every response has the usual shape, else None."""
    out: dict[int, bytes] = {}
    if data == [None]:  # no FETCH response at all: every message expunged
        return out
    i, n = 0, len(data)
    while i < n:
        item = data[i]
        if type(item) is not tuple or len(item) != 2 or i + 1 >= n or type(data[i + 1]) is not bytes:
            return None
        head, body = item
        tail = data[i + 1]
        m = _UID_FIRST.fullmatch(head)
        if m is not None and tail == b")":
            uid, size = int(m[1]), int(m[2])
        else:
            m, last = _BODY_FIRST.fullmatch(head), _UID_LAST.fullmatch(tail)
            if m is None or last is None:
                return None
            uid, size = int(last[1]), int(m[1])
        if len(body) != size:
            return None
        out[uid] = body
        i += 2
    return out


def _expunge(client, uids) -> None:
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        client.expunge()


def quiet(client) -> None:
    """Turn imaplib's own debugging off unless its logger would show it.

    imapclient sets imaplib's debug level to 5 and hands its messages to the logger
    `imapclient.imaplib`, so imaplib formats the repr of every response line, each message
    body included, for a logger that drops it: about 60% of the fetch thread's samples in
    a 16,000-message fetch (issue 16), under the GIL the intake needs. With that logger on
    DEBUG (someone debugging a server), it stays.
    """
    import logging

    imap = getattr(client, "_imap", None)
    if imap is not None and not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        imap.debug = 0

