"""Parsing inbound mail that survives real mail: never crash, keep everything.

Two paths, because the parser, not IMAP, bounds intake (DESIGN.md, measured limits):

- `parse(raw)` uses the stdlib `compat32` policy (about 3.6x faster than
  `policy=default`) and decodes only what a ticket needs: addresses, subject,
  dates, thread headers, the text and HTML bodies and the attachment list.
- Encoded words, unknown or wrong charsets, broken boundaries and undecodable bytes
  fall back step by step (declared charset -> utf-8 -> cp1252 -> latin-1 with
  replacement) instead of raising.

Attachments (and inline images, forwarded `message/rfc822` parts, calendar invites)
are returned as `Part`s with their bytes; `tix.ingest` stores them once as blobs.
A message with no header at all (e.g. an Outlook .msg file) or no sender is
`Unparseable`: the caller quarantines it with that reason.

`is_auto_submitted(headers)` is the loop-protection test other stages use (RFC 3834
plus practice); `bounce_info(msg)` recognises delivery-status reports.
"""
from __future__ import annotations

import binascii
import hashlib
import html
import quopri
import re
from dataclasses import dataclass, field
from datetime import timezone
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from tix.channels.base import Undecodable
from tix.store.log import iso

MAX_PARTS = 500  # a message with more MIME parts than this keeps the first ones only
MAX_TEXT = 1_000_000  # characters of body text kept in an event (the raw file keeps all)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a larger message is quarantined (raw), not parsed into a ticket
FALLBACK_CHARSETS = ("utf-8", "cp1252", "latin-1")
_CHARSET_ALIASES = {"utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "x-unknown": "utf-8", "unknown-8bit": "utf-8",
                    "ks_c_5601-1987": "euc-kr", "gb2312": "gb18030", "gbk": "gb18030", "iso-8859-8-i": "iso-8859-8"}


class Unparseable(Undecodable):
    """This is not a mail message we can make a ticket from; the message says why."""


@dataclass
class Part:
    """One attachment, inline image, forwarded message or calendar invite."""

    name: str
    type: str
    data: bytes
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Parsed:
    message_id: str | None
    from_addr: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: str | None
    subject: str
    date: str | None  # ISO UTC, or None when missing/unparseable
    in_reply_to: list[str]
    references: list[str]
    text: str  # the new text (quoted history removed)
    text_full: str  # the whole plain text
    html: str | None
    attachments: list[Part] = field(default_factory=list)
    calendar: list[dict] = field(default_factory=list)
    auto_reason: str | None = None
    bounce: dict | None = None  # {"message_ids": [...], "recipients": [...], "status": ...}
    headers: Message | None = None
    defects: list[str] = field(default_factory=list)
    key: str | None = None  # `content_key`, when the parse worker computed it


# -- headers ------------------------------------------------------------------------------
def decode_words(value) -> str:
    """An RFC 2047 header value as text; never raises."""
    if value is None:
        return ""
    if not isinstance(value, str):  # email.header.Header from 8-bit headers
        try:
            value = str(value)
        except Exception:  # noqa: BLE001 - a header object we cannot render
            return ""
    if "=?" not in value:
        return _unfold(value)
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - malformed encoded words: keep the raw text
        return _unfold(value)
    try:  # make_header restores the spaces decode_header drops around encoded words
        return _unfold(str(make_header(chunks)))
    except Exception:  # noqa: BLE001 - unknown charset: decode chunk by chunk with fallbacks
        pass
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return _unfold("".join(out))


# Every line separator `str.splitlines()` knows, and the other control characters: none may
# survive into a header value, a subject shown on a terminal, or an outgoing header (a
# `\x0b` or U+2028 in a subject once made every later notification flush raise).
_HEADER_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_SURROGATES = re.compile("[\udc80-\udcff]")  # 8-bit header bytes, as compat32 hands them over


def _unfold(text: str) -> str:
    text = text.replace("\r\n", "").replace("\r", "").replace("\n", "")
    # 8-bit header bytes come back from compat32 as surrogate escapes: recover them
    if not text.isascii() and _SURROGATES.search(text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return clean_header(text)


def clean_header(text: str) -> str:
    """A header value as one line: control characters and line separators become spaces."""
    return _HEADER_CONTROLS.sub(" ", text).strip()


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text with the declared charset, then utf-8, cp1252, latin-1."""
    tried = []
    if charset:
        cs = charset.strip().strip('"').lower()
        tried.append(_CHARSET_ALIASES.get(cs, cs))
    for cs in tried + [c for c in FALLBACK_CHARSETS if c not in tried]:
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("utf-8", "replace")


def clean_msgid(value) -> str | None:
    ids = msgid_list(value)
    return ids[0] if ids else None


_MSGID = re.compile(r"<([^<>\s\x00-\x1f\x7f]+)>")


def msgid_list(value) -> list[str]:
    """`<a@b> <c@d>` -> ['<a@b>', '<c@d>']; a bare id without brackets is accepted too."""
    if not value:
        return []
    text = str(value)
    found = [f"<{m}>" for m in _MSGID.findall(text)]
    if not found:
        bare = text.strip()
        if "@" in bare and _MSGID.fullmatch(f"<{bare}>"):
            found = [f"<{bare}>"]
    return found


def addresses(values) -> list[tuple[str, str]]:
    """(name, lowercased address) pairs of address headers; never raises.

    Addresses are taken from the raw header and only display names are decoded
    afterwards, so an encoded word cannot pose as an address (`=?utf-8?q?boss@shop?=
    <attacker@evil.example>` is from the attacker) or smuggle a header. Linear in the
    header's length: no backtracking pattern runs over customer text.
    """
    out = []
    for value in values:
        if value is None:
            continue
        raw = str(value) if not isinstance(value, str) else value
        for token in _split_list(_unfold_raw(raw)):
            pair = _one_address(token)
            if pair is not None:
                out.append(pair)
    return out


def _sender_of(h) -> tuple[str, str | None]:
    """(name, address) of the sender: From, then Sender, Reply-To, Return-Path.

    With no address anywhere, the From text itself is kept as the name and the address is
    None (a bounce from a bare `MAILER-DAEMON`, `From: "x" <a b@c>`): still a ticket.
    Raises Unparseable only when there is no sender at all.
    """
    for name in ("From", "Sender", "Reply-To", "Return-Path"):
        found = addresses(h.get_all(name))
        if found:
            if name != "From":
                return decode_words(h.get("From")) or found[0][0], found[0][1]
            return found[0]
    raw_from = decode_words(h.get("From")) if h.get("From") is not None else ""
    if raw_from:
        return raw_from, None
    raise Unparseable("no sender address (From header missing or unreadable)")


def _sender(value) -> str:
    """The From address, lowercased; a bare word such as `MAILER-DAEMON` when there is none."""
    pairs = addresses([value]) if value else []
    if pairs:
        return pairs[0][1]
    return _unfold_raw(str(value or "")).strip().strip("<>").strip().lower()


def _unfold_raw(text: str) -> str:
    """Unfold a raw header value without decoding encoded words."""
    text = text.replace("\r\n", "").replace("\r", "").replace("\n", "")
    if not text.isascii() and _SURROGATES.search(text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return _HEADER_CONTROLS.sub(" ", text)


def _split_list(text: str) -> list[str]:
    """Split an address list at commas outside quotes, angle brackets and comments."""
    if "," not in text and ";" not in text:  # one address (most headers): nothing to split
        return [text.strip()] if text.strip() else []
    parts, start, quoted, angle, depth, i, n = [], 0, False, False, 0, 0, len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth:
            pass
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c in ",;" and not angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_ADDR = re.compile(r"[^\s<>()\[\],;:\\\"@]+(?:\.[^\s<>()\[\],;:\\\"@]+)*@[A-Za-z0-9\[\]_.:-]+")


def _one_address(token: str) -> tuple[str, str] | None:
    """`Name <a@b>`, `"Name" <a@b>`, `a@b (Name)`, `a@b`, a group's `name: a@b` -> (name, addr)."""
    lt = token.rfind("<")
    if lt >= 0 and token.rstrip().endswith(">"):
        addr = token[lt + 1:token.rstrip().rfind(">")].strip()
        name = token[:lt].strip()
    else:
        addr, name = token, ""
        if token.endswith(")") and "(" in token:  # `a@b (Name)`
            cut = token.find("(")
            addr, name = token[:cut].strip(), token[cut + 1:-1].strip()
        elif " " in token:  # `Name a@b`, as some mailers write it
            name, _, addr = token.rpartition(" ")
    if ":" in name and not name.startswith('"') and "=?" not in name:  # a group: `Team: Name <a@b>`
        name = name.split(":", 1)[1].strip()
    if ":" in addr:  # a group prefix or a source route: `team:a@b`, `@relay:a@b`
        addr = addr.rpartition(":")[2].strip()
    if not _ADDR.fullmatch(addr):
        return None
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    name = decode_words(name) if "=?" in name else clean_header(name)
    return name, addr.lower()


class Headers:
    """Header lookup by lowercased name, built once (Message.get scans every header)."""

    __slots__ = ("_h",)

    def __init__(self, msg: Message):
        h: dict[str, list] = {}
        for name, value in msg._headers:  # the parsed header list
            h.setdefault(name.lower(), []).append(value)
        self._h = h

    def get(self, name, default=None):
        v = self._h.get(name.lower())
        return v[0] if v else default

    def get_all(self, name) -> list:
        return self._h.get(name.lower()) or []




def _date(value) -> str | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    try:
        return iso(dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))
    except (OverflowError, ValueError):
        return None


# -- loop protection (RFC 3834 and practice) --------------------------------------------------
_NOREPLY = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|notifications?)([+._-].*)?@",
                      re.I)


def is_auto_submitted(headers, own_addresses=()) -> str | None:
    """Why this message is machine-made (never answer it automatically), or None.

    `headers` is a mapping with `.get` (an `email.message.Message`, or a dict of header
    name -> value). Reasons: `auto-submitted:<value>`, `x-autoreply`, `precedence:<v>`,
    `list-id`, `x-loop`, `mailer-daemon`, `noreply-sender`, `delivery-report`, `own-address`.
    """
    def get(name):
        v = headers.get(name)
        if v is None and isinstance(headers, dict):
            v = headers.get(name.lower())
        return None if v is None else str(v)

    auto = (get("Auto-Submitted") or "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"auto-submitted:{auto.split(';')[0].strip()}"
    if get("X-Autoreply") or get("X-Autorespond") or (get("X-Auto-Response-Suppress") or "").lower() in ("all", "oof"):
        return "x-autoreply"
    prec = (get("Precedence") or "").strip().lower()
    if prec in ("bulk", "junk", "list", "auto_reply"):
        return f"precedence:{prec}"
    if get("List-Id") or get("List-Unsubscribe"):
        return "list-id"
    loop = (get("X-Loop") or "").lower()
    if loop and (not own_addresses or any(a in loop for a in own_addresses) or "tix" in loop):
        return "x-loop"
    ctype = (get("Content-Type") or "").lower()
    if "multipart/report" in ctype and "delivery-status" in ctype:
        return "delivery-report"
    sender = _sender(get("From"))
    if sender.startswith(("mailer-daemon@", "postmaster@")) or sender == "mailer-daemon":
        return "mailer-daemon"
    if _NOREPLY.match(sender):
        return "noreply-sender"
    if sender and sender in own_addresses:
        return "own-address"
    rp = (get("Return-Path") or "").strip()
    if rp == "<>":
        return "null-return-path"
    return None


# -- bodies --------------------------------------------------------------------------------
class _HTMLText(HTMLParser):
    _BLOCK = frozenset("p div br li tr h1 h2 h3 h4 h5 h6 table blockquote pre hr section article header footer".split())
    _SKIP = frozenset(("script", "style", "head", "title"))

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        elif tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")
        elif tag == "a" and self.href:
            if self.href.startswith(("http://", "https://")):
                self.out.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data):
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Readable plain text from an HTML body (links kept in brackets); never raises."""
    p = _HTMLText()
    try:
        p.feed(markup)
        p.close()
        text = "".join(p.out)
    except Exception:  # noqa: BLE001 - broken markup: strip tags crudely
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = [ln.strip() for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_QUOTE_HEAD = re.compile(
    r"^(On .{1,200} wrote:|Pada .{1,200} menulis:|Le .{1,200} a écrit :|Am .{1,200} schrieb .{0,100}:"
    r"|-{2,}\s*(Original Message|Pesan Asli|Forwarded message|Pesan yang diteruskan)\s*-{2,}"
    r"|_{10,}|From: .+|Dari: .+|Sent from my .+|Dikirim dari .+)\s*$", re.I)


def split_quoted(text: str) -> str:
    """The new text of a reply: everything before the quoted history starts.

    Recognises `>` quoting, "On … wrote:" / "Pada … menulis:" attribution lines and
    Outlook-style "-----Original Message-----" / "From:" blocks. Linear in the text.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            continue
        if s.startswith(">") and _rest_quoted(lines, i):
            return "\n".join(lines[:i]).strip()
        if len(s) < 400 and _QUOTE_HEAD.match(s):
            if s.lower().startswith(("from:", "dari:")) and i == 0:
                continue
            if s.lower().startswith(("sent from", "dikirim dari")):
                return "\n".join(lines[:i]).strip()
            return "\n".join(lines[:i]).strip()
    return text.strip()


def _rest_quoted(lines: list[str], i: int) -> bool:
    rest = [ln for ln in lines[i:] if ln.strip()]
    quoted = sum(1 for ln in rest if ln.lstrip().startswith(">"))
    return quoted * 2 >= len(rest)


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken base64/uuencode: keep the raw payload
        data = None
    if data is None:
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw.encode("utf-8", "surrogateescape")
        return b""
    return data


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        name = None
    if name is None:
        name = part.get_param("name", header="content-type")
        if isinstance(name, tuple):  # RFC 2231
            try:
                name = name[2].encode("latin-1", "replace").decode(name[0] or "utf-8", "replace")
            except LookupError:
                name = name[2]
    if not name:
        return None
    name = _BIDI.sub("", decode_words(name))  # U+202E would show `gpj.exe` as `exe.jpg`
    name = name.replace("/", "_").replace("\\", "_").strip()
    return name[:200] or None


# Bidirectional overrides, embeddings and isolates, and zero-width marks: never in a name
_BIDI = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


_EXT = {"text/calendar": ".ics", "message/rfc822": ".eml", "text/html": ".html", "text/plain": ".txt",
        "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "application/pdf": ".pdf"}


def _walk(msg: Message):
    """Leaf parts in order, at most MAX_PARTS; message/* parts (forwards, DSNs) are leaves."""
    stack = [msg]
    count = 0
    while stack and count < MAX_PARTS:
        part = stack.pop()
        count += 1
        ctype = part.get_content_type()
        if part.is_multipart() and not ctype.startswith("message/"):
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed(payload))
                continue
        yield part


def parse(raw: bytes, own_addresses=(), max_bytes: int = MAX_MESSAGE_BYTES) -> Parsed:
    """Parse one raw message. Raises `Unparseable` (with the reason) and nothing else.

    A message over `max_bytes` (64 MB: more than any mail server passes) is Unparseable: it
    goes to quarantine raw, and its parse cannot hold the store lock for long.
    """
    if len(raw) > max_bytes:
        raise Unparseable(f"message of {len(raw):,} bytes is over the limit of {max_bytes:,} bytes")
    try:
        return _parse(raw, own_addresses)
    except Unparseable:
        raise
    except RecursionError:
        raise Unparseable("MIME structure nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the batch
        raise Unparseable(f"parser error: {type(exc).__name__}: {exc}") from None


_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
JUNK_LINES = 5  # lines before the first header that are skipped (`---- Original message ----`)


def _start_of_mail(raw: bytes) -> int | None:
    """Offset of the first header line, or None when this is not mail at all.

    An mbox `From ` line and up to `JUNK_LINES` lines of junk before the header are
    skipped (a forwarded export that starts `---- Original email message ----`), but only
    when two header lines follow, so that a text file is not taken for mail.
    """
    lines = raw[:4096].split(b"\n", JUNK_LINES + 2)
    offset = 0
    for i, line in enumerate(lines[:JUNK_LINES + 1]):
        if _HEADER_LINE.match(line) and not line.startswith(b"From "):
            nxt = lines[i + 1] if i + 1 < len(lines) else b""
            if i == 0 or _HEADER_LINE.match(nxt) or nxt[:1] in (b" ", b"\t"):
                return offset
        offset += len(line) + 1
    return None


def _parse(raw: bytes, own_addresses) -> Parsed:
    if not raw.strip():
        raise Unparseable("empty message")
    if raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise Unparseable("not an RFC 5322 message: an Outlook .msg (CFB) file")
    raw = raw.lstrip()
    start = _start_of_mail(raw)
    if start is None:
        raise Unparseable("not an RFC 5322 message: it does not start with a header")
    raw = raw[start:]
    msg, body = _head_only(raw)
    if msg is None:  # multipart or message/*: the full MIME parse (a plain multipart split fast)
        msg = _multipart(raw) or message_from_bytes(raw, policy=compat32)
    h = Headers(msg)
    from_name, from_addr = _sender_of(h)
    text_parts, html_parts, attachments, calendar = [], [], [], []
    if body is not None:
        _single(msg, h, body, text_parts, html_parts, attachments, calendar)
    else:
        for part in _walk(msg):
            _classify(part, msg, text_parts, html_parts, attachments, calendar)
    text_full = "\n\n".join(t for t in text_parts if t.strip()).strip()
    html_body = "\n".join(html_parts) if html_parts else None
    if not text_full and html_body:
        text_full = html_to_text(html_body)
    text_full = text_full.replace("\r\n", "\n").replace("\r", "\n")[:MAX_TEXT]
    bounce = bounce_info(msg, h)
    auto = is_auto_submitted(h, own_addresses)
    if bounce and not auto:
        auto = "delivery-report"
    return Parsed(
        message_id=clean_msgid(h.get("Message-ID")),
        from_addr=from_addr,
        from_name=decode_words(from_name) or None,
        to=[a for _, a in addresses(h.get_all("To"))],
        cc=[a for _, a in addresses(h.get_all("Cc"))],
        reply_to=next((a for _, a in addresses(h.get_all("Reply-To"))), None),
        subject=decode_words(h.get("Subject"))[:998],
        date=_date(h.get("Date")),
        in_reply_to=msgid_list(h.get("In-Reply-To")),
        references=msgid_list(" ".join(str(v) for v in h.get_all("References")))[-50:],
        text=split_quoted(text_full),
        text_full=text_full,
        html=html_body,
        attachments=attachments,
        calendar=calendar,
        auto_reason=auto,
        bounce=bounce,
        headers=msg,
        defects=[type(d).__name__ for d in msg.defects],
    )


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_PARSER = BytesParser(policy=compat32)
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")  # the stdlib parser's lines (not str.splitlines')
_FIELD = re.compile(r"[\041-\071\073-\176]+:")


def _parse_head(head: bytes) -> Message:
    """The header block `head` (up to and with its blank line) as the stdlib parser makes it
    (compat32, headers only): the common case done here, line by line without the feed
    parser's machinery; anything it would record a defect for, or an mbox `From ` line, is
    left to it (`_fast_head` returns None)."""
    return _fast_head(head) or _PARSER.parsebytes(head, headersonly=True)


def _fast_head(head: bytes) -> Message | None:
    text = head.decode("ascii", "surrogateescape")
    lines = _LINES.findall(text)
    if len(lines) < 2 or sum(map(len, lines)) != len(text) or lines[-1].strip("\r\n"):
        return None  # not a header block ending in its blank line
    fields: list[list[str]] = []
    for line in lines[:-1]:
        if line[:1] in (" ", "\t"):
            if not fields:
                return None  # a first line that continues nothing: a defect
            fields[-1].append(line)
        elif _FIELD.match(line) and not line.startswith("From "):
            fields.append([line])
        else:
            return None  # not a header line (a defect), or an envelope line
    msg = Message(policy=compat32)
    for lines_of in fields:  # as compat32's header_source_parse
        name, value = lines_of[0].split(":", 1)
        msg._headers.append((name, (value.lstrip(" \t") + "".join(lines_of[1:])).rstrip("\r\n")))
    msg.set_payload("")
    return msg


def _head_only(raw: bytes):
    """(headers-only Message, body bytes) for a single-part message; (None, None) otherwise.

    The fast path: the stdlib feed parser reads a body line by line, which costs more
    than everything else a ticket needs; a single text part is decoded directly.
    """
    m = _HEAD_END.search(raw, 0, 1_000_000)
    if m is None:
        return None, None
    msg = _parse_head(raw[:m.end()])
    if msg.defects or msg.get_content_maintype() in ("multipart", "message"):
        return None, None
    return msg, raw[m.end():]


_SIMPLE_MULTIPART = ("multipart/mixed", "multipart/alternative", "multipart/related")
_PART_CTES = ("", "7bit", "8bit", "binary", "base64", "quoted-printable")


def _multipart(raw: bytes) -> Message | None:
    """A one-level multipart/mixed, alternative or related message as the message tree the
    stdlib parser makes of it (compat32: each part's payload its text, undecoded), or None
    for anything else (nested parts, message/* parts, a missing or repeated closing
    delimiter, a part without a header/body separator, header defects): then the stdlib
    parser does it, defects and all.

    The fast path: the feed parser reads a body line by line (a 20 KB attachment is hundreds
    of lines); here the body is cut at its delimiter lines and only the headers are parsed.
    """
    m = _HEAD_END.search(raw, 0, 1_000_000)
    if m is None:
        return None
    msg = _parse_head(raw[:m.end()])
    boundary = msg.get_boundary() if not msg.defects and msg.get_content_type() in _SIMPLE_MULTIPART else None
    if not boundary or str(msg.get("Content-Transfer-Encoding") or "").strip().lower() not in _PART_CTES[:4]:
        return None  # (an encoded multipart is a defect the stdlib parser records)
    body = raw[m.end():]
    found = _delimiters(body, b"--" + boundary.encode("ascii", "surrogateescape"))
    if len(found) < 2 or not found[-1][2] or any(d[2] for d in found[:-1]) or len(found) > MAX_PARTS:
        return None
    parts = []
    for d, nxt in zip(found, found[1:], strict=False):
        start, end = d[1] + 1, nxt[0] - 1  # the line break before a delimiter is the delimiter's
        if end > start and body[end - 1:end] == b"\r":
            end -= 1
        chunk = body[start:max(start, end)]
        h = _HEAD_END.search(chunk)
        if h is None or chunk[:1] in (b"\r", b"\n"):  # no header/body separator, or no header
            return None
        part = _parse_head(chunk[:h.end()])
        ctype = part.get_content_type()
        if part.defects or ctype.startswith(("multipart/", "message/")) or \
                str(part.get("Content-Transfer-Encoding") or "").strip().lower() not in _PART_CTES:
            return None
        part.set_payload(chunk[h.end():].decode("ascii", "surrogateescape"))
        parts.append(part)
    msg.set_payload(parts)
    return msg


def _delimiters(body: bytes, marker: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, closing) of each delimiter line `--boundary[--][ \\t]*` in `body`
    (RFC 2046; as the stdlib parser finds them), the line break after it excluded."""
    out = []
    i = 0 if body.startswith(marker) else body.find(b"\n" + marker)
    i = i if i <= 0 else i + 1
    while i >= 0:
        end = body.find(b"\n", i)
        end = len(body) if end < 0 else end
        rest = body[i + len(marker):end]
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        closing = rest.startswith(b"--")
        if not rest[2 if closing else 0:].strip(b" \t"):
            out.append((i, end, closing))
        i = body.find(b"\n" + marker, end)
        i = i if i < 0 else i + 1
    return out


def _decode_cte(body: bytes, cte: str) -> bytes:
    try:
        if cte == "base64":
            return binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        return body
    return body


def _single(msg: Message, h: Headers, body: bytes, text_parts, html_parts, attachments, calendar) -> None:
    ctype = msg.get_content_type()
    cte = str(h.get("Content-Transfer-Encoding") or "").strip().lower()
    data = _decode_cte(body, cte)
    disp = decode_words(h.get("Content-Disposition")).split(";")[0].strip().lower()
    name = _filename(msg)
    if disp != "attachment" and not name and ctype in ("text/plain", "text/html"):
        (text_parts if ctype == "text/plain" else html_parts).append(decode_bytes(data, msg.get_content_charset()))
        return
    if ctype == "text/calendar":
        calendar.append(parse_calendar(decode_bytes(data, msg.get_content_charset())))
    attachments.append(Part(name or f"part1{_EXT.get(ctype, '.bin')}", ctype, data))


def _classify(part: Message, root: Message, text_parts, html_parts, attachments, calendar) -> None:
    ctype = part.get_content_type()
    disp = decode_words(part.get("Content-Disposition")).split(";")[0].strip().lower()
    name = _filename(part)
    is_body = disp != "attachment" and not (name and ctype not in ("text/plain", "text/html"))
    if ctype == "message/rfc822" or (part is not root and ctype in ("message/delivery-status",
                                                                       "text/rfc822-headers")):
        data = _rfc822_bytes(part)
        attachments.append(Part(name or _forward_name(part, ctype), ctype, data))
        return
    if part.is_multipart():
        return
    if ctype == "text/plain" and is_body:
        text_parts.append(decode_bytes(_payload(part), part.get_content_charset()))
        return
    if ctype == "text/html" and is_body:
        html_parts.append(decode_bytes(_payload(part), part.get_content_charset()))
        return
    data = _payload(part)
    if ctype == "text/calendar":
        calendar.append(parse_calendar(decode_bytes(data, part.get_content_charset())))
    if not data and not name:
        return
    if ctype.startswith("multipart/"):
        return
    attachments.append(Part(name or f"part{len(attachments) + 1}{_EXT.get(ctype, '.bin')}", ctype, data,
                            inline=disp == "inline" or bool(part.get("Content-ID"))))


def _rfc822_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        if len(payload) == 1:
            try:
                return payload[0].as_bytes(policy=compat32)
            except Exception:  # noqa: BLE001
                pass
        out = []
        for sub in payload:
            try:
                out.append(sub.as_bytes(policy=compat32))
            except Exception:  # noqa: BLE001
                continue
        return b"\n".join(out)
    return _payload(part)


def _forward_name(part: Message, ctype: str) -> str:
    if ctype != "message/rfc822":
        return "delivery-status.txt" if ctype == "message/delivery-status" else "headers.txt"
    payload = part.get_payload()
    subject = ""
    if isinstance(payload, list) and payload:
        subject = decode_words(payload[0].get("Subject"))
    safe = re.sub(r"[^\w .,-]+", "_", subject).strip()[:80]
    return f"{safe or 'forwarded'}.eml"


def parse_calendar(text: str) -> dict:
    """METHOD, SUMMARY, DTSTART, DTEND, LOCATION, ORGANIZER of an iCalendar invite."""
    out: dict = {}
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    for line in unfolded.splitlines():
        key, _, value = line.partition(":")
        base = key.split(";")[0].upper()
        if base in ("METHOD", "SUMMARY", "DTSTART", "DTEND", "LOCATION", "ORGANIZER") and base.lower() not in out:
            out[base.lower()] = value.strip()[:500]
    return out


# -- bounces -------------------------------------------------------------------------------
_DSN_ID = re.compile(r"^(?:Message-ID|Message-Id|Original-Message-ID)\s*:\s*(<[^>]+>)", re.I | re.M)
_DSN_RCPT = re.compile(r"^(?:Final|Original)-Recipient\s*:\s*(?:rfc822;)?\s*(\S+)", re.I | re.M)
_DSN_STATUS = re.compile(r"^Status\s*:\s*([245]\.\d+\.\d+)", re.I | re.M)


def bounce_info(msg: Message, h: Headers | None = None) -> dict | None:
    """Message-IDs and recipients of a delivery-status report (RFC 3464) or a classic bounce."""
    h = h or Headers(msg)
    sender = _sender(h.get("From"))
    daemon = sender.split("@")[0] in ("mailer-daemon", "postmaster") or sender == "mailer-daemon"
    if not daemon and "report" not in str(h.get("Content-Type") or "").lower():
        return None
    ctype = msg.get_content_type()
    report = ctype == "multipart/report" and (msg.get_param("report-type") or "").lower() == "delivery-status"
    if not report and not daemon:
        return None
    ids, rcpts, status = [], [], None
    for part in _walk(msg):
        pct = part.get_content_type()
        if pct in ("message/rfc822", "text/rfc822-headers", "message/delivery-status") or (
                pct == "text/plain" and daemon):
            blob = _rfc822_bytes(part) if pct != "text/plain" else _payload(part)
            text = decode_bytes(blob[:200_000], "utf-8")
            ids += [i for i in _DSN_ID.findall(text) if i not in ids]
            rcpts += [r.strip("<>").lower() for r in _DSN_RCPT.findall(text) if r not in rcpts]
            if status is None:
                m = _DSN_STATUS.search(text)
                status = m.group(1) if m else None
    if not report and not ids:
        return None
    return {"message_ids": ids[:20], "recipients": rcpts[:20], "status": status}


def stored_text(store, data: dict) -> str:
    """The whole plain text of a stored `message.received` (quoted history included).

    Its event keeps only the new text (`text`); the rest is the raw message's, parsed again
    here (events written before that carry `text_full`). The event's text when the raw
    message is gone (erased) or no longer parses.
    """
    if data.get("text_full"):
        return data["text_full"]
    from tix.channels.base import read_raw

    try:
        return parse(read_raw(store, data)).text_full or data.get("text") or ""
    except (OSError, Unparseable):
        return data.get("text") or ""


def content_key(raw: bytes, message_id: str | None = None) -> str:
    """The cross-folder idempotency key: Message-ID plus a hash of the body bytes.

    Transport headers (Received, Delivered-To, X-…) differ between copies of one message
    in two folders or after a re-scan, so only the Message-ID and the body are hashed;
    without a Message-ID the whole message is.
    """
    if message_id:
        sep = raw.find(b"\n\n")
        sep2 = raw.find(b"\r\n\r\n")
        cut = min(x for x in (sep, sep2, len(raw)) if x >= 0)
        h = hashlib.sha256(message_id.encode("utf-8", "replace") + b"\0" + raw[cut:].replace(b"\r\n", b"\n").strip())
    else:
        h = hashlib.sha256(raw.replace(b"\r\n", b"\n"))
    return "m" + h.hexdigest()[:40]
