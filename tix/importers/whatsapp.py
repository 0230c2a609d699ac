"""WhatsApp chat exports: the `.txt` (or the `.zip` with its media) the phone app writes
with "Export chat", in its Indonesian and English date formats.

    31/12/25 21.05 - Toko Sari: Halo kak                       Android, Indonesian
    12/31/25, 9:05 PM - Toko Sari: Hi                          Android, English (US)
    [31/12/25 21.05.12] Toko Sari: Halo kak                    iPhone
    IMG-20251231-WA0001.jpg (file terlampir)                   a photo (English: "(file attached)")
    <attached: 00000012-PHOTO-2025-12-31-21-05-12.jpg>         a photo (iPhone)

A message is a dated line `SENDER: TEXT` and the lines after it without a date; a dated
line without a sender is a system notice (encryption, a changed number) and is skipped.
Day and month order is taken from the file (a first number above 12 is a day; else `AM/PM`
times mean month first); times are the phone's, read in the site time zone.

The customer is the other side of the shop (`--me NAME`, else the name in the file name,
`WhatsApp Chat with NAME` / `Chat WhatsApp dengan NAME`); their number is `--phone`, or the
sender name when the chat was with an unsaved number. Each message is one item, keyed by
the hash of its lines (with the customer's number and how often the same lines came
before), so a longer export of the same chat later adds only what is new.

`ChatStep` takes them in through the intake like live WhatsApp: one open ticket per
contact; the customer's messages are `message.received` (the ticket's channel is
`whatsapp`), the shop's `message.sent` with `imported: true` (never sent). With
`--resolve-answered`, a customer message more than `reopen_days` after the shop's last
answer starts a new ticket and the answered one is resolved at the time of that answer.
"""
from __future__ import annotations

import hashlib
import mimetypes
import re
import zipfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tix.channels.base import RawItem, Source
from tix.errors import UsageError
from tix.importers import TAG, ExportStep
from tix.ingest.intake import Identity, Inbound, NewTicket

_TIME = r"\d{1,2}[.:]\d{2}(?:[.:]\d{2})?(?:[\s\u202f\u00a0]?[AaPp]\.?\s?[Mm]\.?)?"
_LINE = re.compile(r"^\[?(?P<date>\d{1,2}/\d{1,2}/\d{2,4}),? (?P<time>" + _TIME + r")(?:\] | - )(?P<rest>.*)$")
_DATEISH = re.compile(r"^\[?\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}[ ,T]")
_ATTACHED = re.compile(r"^(?:<(?:attached|terlampir): (?P<ios>[^>]+)>|(?P<name>\S+\.\w{2,5}) "
                       r"\((?:file attached|file terlampir)\))", re.I)
_OMITTED = re.compile(r"^<(?:media omitted|media tidak disertakan)>$", re.I)
_WITH = re.compile(r"^(?:WhatsApp Chat with|Chat WhatsApp dengan|WhatsApp Chat -) (?P<name>.+)$", re.I)
_KIND = {"image": "image", "video": "video", "audio": "audio"}
_MARKS = "\u200e\u200f\ufeff"


class Chat:
    """A parsed export: messages (line number, naive local time, sender, text) and errors."""

    def __init__(self, text: str, where: str):
        self.where = where
        self.messages: list[dict] = []
        self.errors: list[str] = []
        raw: list[tuple[int, re.Match]] = []
        current, bad = None, False
        for n, line in enumerate(text.splitlines(), 1):
            line = line.lstrip(_MARKS)
            m = _LINE.match(line)
            if m is None:
                if _DATEISH.match(line) or (current is None and not bad and line.strip()):
                    self.errors.append(f"{where}:{n}: unknown date format: {line[:60]!r}")
                    current, bad = None, True  # its continuation lines go with it
                elif current is not None:
                    current["lines"].append(line)
                continue
            bad = False
            raw.append((n, m))
            sender, sep, body = m.group("rest").partition(": ")
            current = None
            if sep:
                current = {"line": n, "date": m.group("date"), "time": m.group("time"), "sender": sender.strip(),
                           "lines": [line], "text": [body]}
                self.messages.append(current)
        self.dmy = _day_first([m for _, m in raw])
        good = []
        for msg in self.messages:
            try:
                msg["local"] = _local(msg["date"], msg["time"], self.dmy)
            except ValueError:
                self.errors.append(f"{where}:{msg['line']}: unknown date format: {msg['date']} {msg['time']}")
                continue
            msg["text"] = "\n".join([msg["text"][0], *msg["lines"][1:]]).strip()
            good.append(msg)
        self.messages = good

    @property
    def senders(self) -> list[str]:
        return list(dict.fromkeys(m["sender"] for m in self.messages))


def _day_first(matches) -> bool:
    firsts = [int(m.group("date").split("/")[0]) for m in matches]
    seconds = [int(m.group("date").split("/")[1]) for m in matches]
    if any(f > 12 for f in firsts):
        return True
    if any(s > 12 for s in seconds):
        return False
    return not any(re.search(r"[AaPp]\.?\s?[Mm]", m.group("time")) for m in matches)


def _local(date: str, time: str, dmy: bool) -> datetime:
    """`31/12/25` + `21.05` (or `9:05 PM`) -> a naive local datetime; ValueError if not a time."""
    a, b, y = (int(x) for x in date.split("/"))
    day, month = (a, b) if dmy else (b, a)
    t = time.lower()
    nums = [int(x) for x in re.findall(r"\d+", t)]
    hour, minute, second = nums[0], nums[1], nums[2] if len(nums) > 2 else 0
    if re.search(r"p\.?\s?m", t) and hour < 12:
        hour += 12
    elif re.search(r"a\.?\s?m", t) and hour == 12:
        hour = 0
    return datetime(y + 2000 if y < 100 else y, month, day, hour, minute, second)


class ChatSource(Source):
    """The messages of one export (read only), as items in file order."""

    type = "whatsapp-export"
    channel = "whatsapp-export"

    def __init__(self, store, spec, known=None, me: str | None = None, phone: str | None = None):
        super().__init__(store, spec, known)
        self.path = Path(spec["path"])
        self.text, self.media = self._read()
        self.chat = Chat(self.text, self.path.name if self.path.suffix != ".zip" else f"{self.path.name}:{self._txt}")
        self.refused = list(self.chat.errors)
        self.me, self.customer = self._sides(me)
        self.phone = phone or _phone_like(self.customer)
        if self.phone:
            from tix.tickets import normalize_phone

            self.phone = normalize_phone(self.phone)
        if not self.phone:
            raise UsageError(f"{self.path.name}: the chat names the customer {self.customer!r}, not a number: "
                             "give it with --phone NUMBER")
        self.tz = ZoneInfo(store.config.setting("timezone"))

    def _read(self) -> tuple[str, dict]:
        if self.path.suffix.lower() != ".zip":
            self._txt = self.path.name
            return self.path.read_bytes().decode("utf-8-sig", "replace"), {}
        try:
            with zipfile.ZipFile(self.path) as z:
                names = [i for i in z.infolist() if not i.is_dir()]
                txts = [i for i in names if i.filename.lower().endswith(".txt")]
                if not txts:
                    raise UsageError(f"{self.path.name}: no chat .txt in the zip")
                self._txt = txts[0].filename
                media = {Path(i.filename).name: z.read(i) for i in names if i is not txts[0]}
                return z.read(txts[0]).decode("utf-8-sig", "replace"), media
        except zipfile.BadZipFile as exc:
            raise UsageError(f"{self.path.name}: not a zip file ({exc})") from None

    def _sides(self, me: str | None) -> tuple[str, str]:
        senders = self.chat.senders
        named = _WITH.match(Path(self._txt).stem) or _WITH.match(self.path.stem)
        if me is None and named and len(senders) <= 2:
            other = named.group("name").strip()
            me = next((s for s in senders if s != other), None)
            if other in senders or me is None:
                return (me or "", other)
        if me is None or (senders and me not in senders and len(senders) > 1):
            raise UsageError(f"{self.path.name}: name the shop's side with --me NAME "
                             f"(senders: {', '.join(senders) or 'none'})")
        others = [s for s in senders if s != me]
        if len(others) > 1:
            raise UsageError(f"{self.path.name}: a chat with several customers ({', '.join(others)}): "
                             "export one chat at a time")
        return me, (others[0] if others else "")

    def chunks(self, limit=None):
        seen: Counter = Counter()
        chunk = []
        for msg in self.chat.messages:
            body = "\n".join(msg["lines"])
            seen[body] += 1
            digest = hashlib.sha256(f"{self.phone}\n{seen[body]}\n{body}".encode()).hexdigest()[:40]
            key = f"waexport:{digest}"
            if self.seen_key(key):
                continue
            when = msg["local"].replace(tzinfo=self.tz)
            chunk.append(RawItem(self.name, key, body.encode(), {
                "where": f"{self.chat.where}:{msg['line']}", "time": when, "sender": msg["sender"],
                "text": msg["text"], "out": msg["sender"] == self.me}))
            if len(chunk) >= self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _phone_like(name: str) -> str | None:
    digits = re.sub(r"[\s\-()\u202a\u202c]", "", name or "")
    return digits if re.fullmatch(r"\+?\d{8,15}", digits) else None


class ChatStep(ExportStep):
    """Takes a chat export's messages in through the intake (see the module docstring)."""

    channel = "whatsapp-export"
    ext = "txt"

    replay_type = "whatsapp"

    def __init__(self, run, source: ChatSource):
        super().__init__(run, source)
        self.resolve_gap: timedelta | None = None  # set by the importer with resolve_answered

    def take(self, item: RawItem, decoded, spec: dict, replay: bool = False) -> None:
        run, src, meta = self.run, self.source, item.meta
        if run.index.seen(item.key):
            run.report.duplicates += 1
            return
        run.at(meta["time"])
        cid = run.contact(Identity(name=None if _phone_like(src.customer) else src.customer, phone=src.phone),
                          "whatsapp")
        text, attachments, kind = self._content(meta["text"])
        if meta["out"]:
            number = run.conversation(cid, "")
            if number is None:
                number = run.thread(self._inbound(cid, text, passive=True))
            agent = re.sub(r"\s+", "-", str(spec.get("agent") or src.me).strip().lower()) or "import"
            run.batch.emit("message.sent", ticket=number, actor=f"user:{agent}", ts=run.ts, data={
                "message": item.key, "channel": "whatsapp", "wa_type": kind, "from": None, "from_name": src.me,
                "to": [src.phone], "text": text, "attachments": attachments, "sent_at": run.ts, "imported": True,
                "source": item.source, "source_key": meta["where"]})
            run.report.replies += 1
        else:
            self._close_answered(cid)
            number = run.thread(self._inbound(cid, text))
            rel, span = run.files.write_raw(item.raw, run.clock())
            run.emit("message.received", ticket=number, data={
                "message": item.key, "channel": "whatsapp", "wa_type": kind, "from": src.phone,
                "from_user_id": None, "from_name": src.customer, "to": [], "subject": None, "text": text,
                "attachments": attachments, "auto": False, "language": None, "inbox": None, "context": None,
                "raw": rel, "raw_span": span, "sent_at": run.ts, "imported": True, "source": item.source,
                "source_key": meta["where"]})
        run.journal.set(self.last, number, ("out" if meta["out"] else "in", run.ts))
        run.remember(item.key)
        run.report.stored += 1

    def _inbound(self, cid: int, text: str, passive: bool = False) -> Inbound:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or "WhatsApp"
        subject = first if len(first) <= 80 else first[:79] + "…"
        return Inbound("whatsapp", cid, NewTicket(subject=subject, tags=(TAG,), why="imported from a WhatsApp chat"),
                       label="WhatsApp (imported chat)", conversation="", sent_at=self.run.item_time,
                       passive=passive)

    def _close_answered(self, cid: int) -> None:
        """With resolve_answered: the open ticket the shop answered longer than the reopen
        window ago is resolved at that answer; this message starts a new one."""
        run = self.run
        if self.resolve_gap is None:
            return
        number = run.conversation(cid, "")
        row = run.row(number)
        last = self.last.get(number) if number is not None else None
        if row is None or last is None or last[0] != "out" or row["status"] not in ("new", "open", "pending"):
            return
        from tix.store.log import parse_ts

        answered = parse_ts(last[1])
        if run.item_time - answered <= self.resolve_gap:
            return
        mine, ts = run.item_time, run.ts
        run.at(answered)
        run._set_status(row, "resolved", "imported: the chat was answered")
        run.item_time, run.ts = mine, ts

    def _content(self, text: str) -> tuple[str, list, str]:
        """(text, attachments, wa_type): a media line becomes an attachment (from the zip)."""
        first, _, rest = text.partition("\n")
        m = _ATTACHED.match(first.strip().lstrip(_MARKS))
        if m is None:
            if _OMITTED.match(first.strip()):
                return text, [{"name": None, "type": None, "size": None, "sha256": None, "missing": True}], "media"
            return text, [], "text"
        name = (m.group("ios") or m.group("name")).strip()
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        kind = "sticker" if name.lower().endswith(".webp") else _KIND.get(mime.split("/")[0], "document")
        data = self.source.media.get(name)
        info = {"name": name, "type": mime, "size": len(data) if data is not None else None, "sha256": None}
        if data is None:
            info["missing"] = True
        else:
            info["sha256"] = self.run.files.write_blob(data)
        caption = rest.strip()
        if not caption:
            caption = first[m.end():].strip()
        return caption or f"[{kind}: {name}]", [info], kind
