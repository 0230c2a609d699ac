"""The append-only event log: monthly JSONL segments under `events/`.

See `tix.store` for the format contract. This module only knows about lines,
segments, sequence numbers, fsync and torn lines; it never interprets an event.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import orjson

SEGMENT_SUFFIX = ".jsonl"


NOW_ENV = "TIX_NOW"


def utcnow() -> datetime:
    """The one clock of tix: "now", in UTC.

    Every piece of code that needs the current time asks here (or takes `now` from its
    caller, who asked here). Tests set the clock with the `TIX_NOW` environment variable
    (an ISO 8601 time; a time without a zone is UTC); the whole suite also runs under
    faketime (`.ci/run`), so nothing may read the wall clock another way.
    """
    fixed = os.environ.get(NOW_ENV)
    if fixed:
        return parse_ts(fixed)
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """The one time format of the store: UTC, microseconds, `Z` suffix."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str | datetime) -> datetime:
    """Parse a store timestamp (the inverse of `iso`) into an aware UTC datetime.

    Accepts what `iso` writes (`2026-11-24T07:57:05.123456Z`), any ISO 8601 time with an
    offset, and one without (taken as UTC). Raises ValueError on anything else.
    """
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def epoch(value: str) -> float:
    """A store timestamp -> epoch seconds: `parse_ts(value).timestamp()`, faster.

    The hot path of folds over millions of events (the SLA clock): our own `iso` format
    parses directly; anything else goes through `parse_ts`.
    """
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_ts(value).timestamp()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


LOCAL_FORMATS = "2026-11-24T21:00, 2026-11-24 21:00, 2026-11-24, or with an offset: 2026-11-24T21:00+07:00"


def parse_local(text: str | datetime, tz: str | tzinfo) -> datetime:
    """A date and time a person typed, in the site's time zone -> aware UTC datetime.

    The one parser of local times (`tix rules test --at`, `tix sla --now`, report parameters,
    `created<…` filters). Accepts `2026-11-24T21:00`, `2026-11-24 21:00`, a date
    (`2026-11-24`, its midnight) and a time with an explicit offset or `Z`, which wins over
    `tz`. Raises ValueError naming the accepted forms.
    """
    if isinstance(text, datetime):
        dt = text
    else:
        try:
            dt = datetime.fromisoformat(str(text).strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(f"not a date and time: {text!r} (use e.g. {LOCAL_FORMATS})") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz) if isinstance(tz, str) else tz)
    return dt.astimezone(timezone.utc)


def parse_ts_or_none(value) -> datetime | None:
    """`parse_ts`, or None for an empty or malformed value (data from outside the store)."""
    if value is None or value == "":
        return None
    try:
        return parse_ts(value)
    except (TypeError, ValueError):
        return None


def segment_name(ts: str) -> str:
    """`2026-11-24T07:57:05.123456Z` -> `2026-11.jsonl`."""
    return ts[:7] + SEGMENT_SUFFIX


@dataclass(frozen=True)
class Position:
    """A place in the log: the segment file name and a byte offset within it."""

    segment: str
    offset: int


def seq_before(path, offset: int) -> int | None:
    """The seq of the event line ending exactly at byte `offset` of a segment (None if none).

    Saved log positions (the outbox's, `snapshot/sla/sla-meta.json`) are checked with it:
    if the log was rewritten (an erasure), the position no longer follows that seq.
    """
    if offset <= 0:
        return None
    with open(path, "rb") as fh:
        back = min(offset, 1 << 20)
        fh.seek(offset - back)
        block = fh.read(back)
    if not block.endswith(b"\n"):
        return None
    line = block[:-1].rsplit(b"\n", 1)[-1]
    try:
        return orjson.loads(line).get("seq")
    except ValueError:
        return None


class EventLog:
    """Reads and appends events. Appending requires the caller to hold the store lock."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    # -- reading ---------------------------------------------------------------------------
    def segments(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if p.name.endswith(SEGMENT_SUFFIX))

    def read(self, since: Position | None = None) -> Iterator[tuple[dict, Position]]:
        """Yield (event, position after it) for every whole event after `since`.

        A last line without its newline is a torn write (or one in progress) and is
        never yielded: readers do not see half-written events.
        """
        for name in self.segments():
            if since is not None and name < since.segment:
                continue
            start = since.offset if since is not None and name == since.segment else 0
            yield from self._read_segment(name, start)

    def read_raw(self, since: Position | None = None) -> Iterator[tuple[bytes, str, int]]:
        """Yield (line without newline, segment, end offset) for whole lines after `since`."""
        for name in self.segments():
            if since is not None and name < since.segment:
                continue
            start = since.offset if since is not None and name == since.segment else 0
            for line, seg, offset in self._raw_one(name, start):
                yield line[:-1], seg, offset

    def _read_segment(self, name: str, start: int) -> Iterator[tuple[dict, Position]]:
        loads = orjson.loads
        for raw, seg, offset in self._raw_one(name, start):
            yield loads(raw), Position(seg, offset)

    def _raw_one(self, name: str, start: int):
        with open(self.dir / name, "rb") as fh:
            fh.seek(start)
            offset = start
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                yield line, name, offset

    def end(self) -> Position:
        """The position after the last whole event (the torn tail, if any, excluded)."""
        segs = self.segments()
        if not segs:
            return Position("", 0)
        name = segs[-1]
        size = (self.dir / name).stat().st_size
        return Position(name, size - len(self._torn_bytes(name, size)))

    def last_event(self) -> dict | None:
        """The last whole event of the log, read from the end of the newest segment."""
        for name in reversed(self.segments()):
            path = self.dir / name
            size = path.stat().st_size
            if size == 0:
                continue
            with open(path, "rb") as fh:
                block = 1 << 16
                pos = size
                buf = b""
                while pos > 0:
                    step = min(block, pos)
                    pos -= step
                    fh.seek(pos)
                    buf = fh.read(step) + buf
                    whole = buf[: buf.rfind(b"\n") + 1]
                    lines = whole.rstrip(b"\n").split(b"\n")
                    if len(lines) >= 2 or (pos == 0 and lines and lines[0]):
                        return orjson.loads(lines[-1])
            return None
        return None

    def _torn_bytes(self, name: str, size: int) -> bytes:
        if size == 0:
            return b""
        with open(self.dir / name, "rb") as fh:
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return b""
            back = min(size, 1 << 20)
            fh.seek(size - back)
            tail = fh.read(back)
            cut = tail.rfind(b"\n")
            return tail[cut + 1 :]

    # -- writing (lock held) ---------------------------------------------------------------
    def repair(self, quarantine: Path) -> int:
        """Cut a torn last line off the newest segment, keeping its bytes in quarantine.

        Returns the number of bytes removed (0 when the log was whole).
        """
        segs = self.segments()
        if not segs:
            return 0
        name = segs[-1]
        path = self.dir / name
        size = path.stat().st_size
        torn = self._torn_bytes(name, size)
        if not torn:
            return 0
        quarantine.mkdir(parents=True, exist_ok=True)
        keep = quarantine / f"torn-{name}-{int(time.time())}-{size}.bin"
        keep.write_bytes(torn)
        with open(path, "r+b") as fh:
            fh.truncate(size - len(torn))
            fh.flush()
            os.fsync(fh.fileno())
        return len(torn)

    def append(self, lines: list[bytes], segment: str) -> Position:
        """Append encoded event lines (each ending in a newline) to `segment`; fsync.

        The caller chooses the segment (never an older one than the newest) and must hold
        the store's write lock.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / segment
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            data = b"".join(lines)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            end = os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
        if new:
            fsync_path(self.dir)
        return Position(segment, end)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory, so that a new or renamed entry survives)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path
