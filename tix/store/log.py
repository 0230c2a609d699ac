"""The append-only event log: monthly JSONL segments under `events/`.

See `tix.store` for the format contract. This module only knows about lines,
segments, sequence numbers, fsync and torn lines; it never interprets an event.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Callable, Iterator
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


def iso_many(epoch) -> list[str]:
    """`iso(datetime.fromtimestamp(t, timezone.utc))` of each of a numpy array of epoch seconds
    (years 1970-9999), at numpy's speed: the microseconds rounded as Python rounds them (the
    fraction of the second times 10^6, half to even)."""
    import numpy as np

    whole = np.floor(epoch)
    micro = np.rint((epoch - whole) * 1e6)  # as datetime.fromtimestamp: modf, scale, round half even
    us = whole.astype(np.int64) * 1_000_000 + micro.astype(np.int64)
    return [s + "Z" for s in np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()]


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
        back = 0
        while True:  # a few KB back holds the line (reading 1 MB each time cost a report 5 ms)
            back = min(offset, max(4096, back * 4), 1 << 20)
            fh.seek(offset - back)
            block = fh.read(back)
            if not block.endswith(b"\n"):
                return None
            if b"\n" in block[:-1] or back >= min(offset, 1 << 20):
                break
    line = block[:-1].rsplit(b"\n", 1)[-1]
    try:
        return orjson.loads(line).get("seq")
    except ValueError:
        return None


# The commit mark: the last line of every batch ends with it (see the contract in tix.store).
# orjson writes the keys in insertion order and escapes every quote inside a string, so a
# line ends with these bytes only when `commit` is its last top-level key.
COMMIT_MARK = b',"commit":true}\n'
FORMAT_FILE = "state/log-format.json"  # under the store's root, beside events/
LOG_FORMAT = 2
_BLOCK = 1 << 16
_UNMAP_AT = 8 << 20  # a backward search of a mapped segment gives back what it searched every this many bytes


def unmark(line: bytes) -> bytes:
    """A line (without its newline) as its event was written: the commit mark taken off."""
    if line.endswith(b',"commit":true}'):
        return line[:-15] + b"}"
    return line


class EventLog:
    """Reads and appends events. Appending requires the caller to hold the store lock.

    Readers see committed batches only: `end()` is the position after the last commit
    mark, and every read stops there (see the contract in tix.store).
    """

    def __init__(self, directory: Path, format_path: Path | None = None):
        self.dir = Path(directory)
        self.format_path = Path(format_path) if format_path else self.dir.parent / FORMAT_FILE
        self._format: dict | None = None

    # -- format ----------------------------------------------------------------------------
    def log_format(self) -> dict | None:
        """`state/log-format.json`, or None for a log written before commit marks existed
        (in which every whole line is committed). Kept once read: it never changes."""
        if self._format is None:
            try:
                fmt = orjson.loads(self.format_path.read_bytes())
                Position(str(fmt["marked_since"]["segment"]), int(fmt["marked_since"]["offset"]))
            except FileNotFoundError:
                return None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                report_damage(FORMAT_FILE, None,
                              f"unreadable ({_why(exc)}); taken as missing: run tix check")
                return None
            self._format = fmt
        return self._format

    def _marked_since(self) -> Position | None:
        fmt = self.log_format()
        if fmt is None:
            return None
        since = fmt["marked_since"]
        return Position(since["segment"], int(since["offset"]))

    def write_format(self, since: Position) -> None:
        """Record that every line after `since` is written in marked batches (lock held)."""
        from tix.store.files import atomic_write

        data = {"format": LOG_FORMAT, "marked_since": {"segment": since.segment, "offset": since.offset}}
        atomic_write(self.format_path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        self._format = data

    # -- reading ---------------------------------------------------------------------------
    def segments(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if p.name.endswith(SEGMENT_SUFFIX))

    def holds_any(self, since: Position, upto: Position, marks: tuple[bytes, ...], block: int = 8 << 20) -> bool:
        """Whether any of `marks` occurs in the log's bytes from `since` to `upto`: checked on
        large blocks, without splitting or decoding lines (a mark cut across two blocks is
        found too). For a cache that only cares about some events: when none is there (e.g.
        after a bulk change of priorities), it moves its position without reading the lines."""
        overlap = max(map(len, marks)) - 1
        segment, carry = None, b""
        for name, _at, chunk in self.blocks(since, upto, block):
            if name != segment:
                segment, carry = name, b""
            chunk = carry + chunk
            if any(mark in chunk for mark in marks):  # bytes.find each: twice a regex's speed
                return True
            carry = chunk[-overlap:] if overlap else b""
        return False

    def blocks(self, since: Position | None, upto: Position, block: int = 8 << 20) -> Iterator[tuple[str, int, bytes]]:
        """(segment, offset, bytes) of the log from `since` (None: its start) to `upto`, in
        blocks of at most `block` bytes, neither split into lines nor decoded: the one bulk
        read of the log (`holds_any`, the snapshot refresh's steps and its SQL fold)."""
        for name in self.segments():
            if (since is not None and name < since.segment) or name > upto.segment:
                continue
            pos = since.offset if since is not None and name == since.segment else 0
            stop = upto.offset if name == upto.segment else None
            with open(self.dir / name, "rb") as fh:
                fh.seek(pos)
                while stop is None or pos < stop:
                    data = fh.read(block if stop is None else min(block, stop - pos))
                    if not data:
                        break
                    yield name, pos, data
                    pos += len(data)

    def read(self, since: Position | None = None, upto: Position | None = None) -> Iterator[tuple[dict, Position]]:
        """Yield (event, position after it) for every committed event after `since`.

        A torn last line and the lines of a batch not yet committed are never yielded, nor
        is a damaged line (it is reported: `report_damage`).
        """
        loads = orjson.loads
        for raw, seg, off in self.read_raw(since, upto):
            try:
                ev = loads(raw)
            except ValueError as exc:
                self.damaged(seg, off - len(raw) - 1, _why(exc))
                continue
            yield ev, Position(seg, off)

    def read_raw(self, since: Position | None = None,
                 upto: Position | None = None) -> Iterator[tuple[bytes, str, int]]:
        """Yield (line without newline or commit mark, segment, end offset) for the committed
        lines after `since` (up to `upto`, default `end()`). A line that is not a JSON object
        at all (`{…}`) is reported as damaged and skipped; the caller parses the rest."""
        upto = upto or self.end()
        if not upto.segment:
            return
        for name in self.segments():
            if since is not None and name < since.segment:
                continue
            if name > upto.segment:
                break
            start = since.offset if since is not None and name == since.segment else 0
            stop = upto.offset if name == upto.segment else None
            yield from self._raw_one(name, start, stop)

    def _raw_one(self, name: str, start: int, stop: int | None):
        mark, cut = COMMIT_MARK, len(COMMIT_MARK)
        try:
            fh = open(self.dir / name, "rb")
        except FileNotFoundError:  # removed by a writer's repair after we listed it
            return
        with fh:
            fh.seek(start)
            offset = start
            for line in fh:
                if stop is not None and offset >= stop:
                    break
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                if line[:1] != b"{" or line[-2:] != b"}\n" or b"\0" in line:
                    self.damaged(name, offset - len(line), "not a JSON object")
                    continue
                if line.endswith(mark):
                    yield line[:-cut] + b"}", name, offset
                else:
                    yield line[:-1], name, offset

    def end(self) -> Position:
        """The position after the last committed event (a torn tail and the lines of a batch
        not yet committed excluded)."""
        segs = self.segments()
        since = self._marked_since() if segs else None
        for i in range(len(segs) - 1, -1, -1):
            off = self._committed(segs[i], since)
            if off > 0 or i == 0:
                return Position(segs[i], off)
            # a new segment holding only lines of an open batch: the log ends in the one before
        return Position("", 0)

    def _committed(self, name: str, since: Position | None) -> int:
        """Bytes of segment `name` that belong to committed batches."""
        path = self.dir / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        if since is None or name < since.segment:  # written before commit marks: whole lines
            return size - len(self._torn_bytes(name, size))
        legacy = since.offset if name == since.segment else 0
        return max(self._last_mark(path, size, legacy), legacy)

    def _last_mark(self, path: Path, size: int, floor: int) -> int:
        """The offset right after the last commit mark of a file (searching back to `floor`), or 0."""
        with open(path, "rb") as fh:
            pos, carry, block = size, b"", _BLOCK
            while pos > floor:
                step = min(block, pos - floor)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + carry
                hit = buf.rfind(COMMIT_MARK)
                if hit >= 0:
                    return pos + hit + len(COMMIT_MARK)
                carry = buf[:len(COMMIT_MARK) - 1]
                block = min(block * 4, 1 << 24)
        return 0

    def last_event(self) -> dict | None:
        """The last committed, readable event of the log, read backwards from `end()`."""
        return next(self.read_backward(), None)

    def read_backward(self, match: bytes | None = None, first_segment: str | None = None,
                      passed: Callable[[dict], bool] | None = None) -> Iterator[dict]:
        """Every committed event, the last first, read backwards from `end()`: the cost of
        what the caller reads before it stops (a damaged line is reported and skipped).
        `match`: only lines holding these bytes are decoded (e.g. b'"rule.auto_reply"');
        `first_segment`: no segment before this one is read; `passed` (with `match`): asked of
        the first whole event of each block read, true ends the read (nothing before it is
        wanted, e.g. it is older than a window)."""
        end = self.end()
        for name in reversed([s for s in self.segments() if s <= end.segment
                              and (first_segment is None or s >= first_segment)]):
            stop = end.offset if name == end.segment else None
            lines = self._lines_backward(name, stop) if match is None else \
                self._matches_backward(name, stop, match, passed)
            for line, start in lines:
                if line is None:
                    return
                try:
                    yield orjson.loads(unmark(line))
                except ValueError as exc:
                    self.damaged(name, start, _why(exc))

    def read_after(self, seq: int) -> list[dict]:
        """The committed events whose seq is above `seq`, in log order (read backwards)."""
        out: list[dict] = []
        for ev in self.read_backward():
            if int(ev.get("seq") or 0) <= seq:
                break
            out.append(ev)
        return out[::-1]

    def _lines_backward(self, name: str, stop: int | None) -> Iterator[tuple[bytes, int]]:
        """(line without newline, its start offset) for the whole lines before `stop`, last first."""
        with open(self.dir / name, "rb") as fh:
            if stop is None:
                size = os.fstat(fh.fileno()).st_size
                stop = size - len(self._torn_bytes(name, size))
            pos, buf = stop, b""  # buf: the bytes [pos, pos + len(buf)), ending with a newline
            while True:
                hi = len(buf)
                while hi:
                    cut = buf.rfind(b"\n", 0, hi - 1)
                    if cut < 0:
                        break
                    yield buf[cut + 1:hi - 1], pos + cut + 1
                    hi = cut + 1
                buf = buf[:hi]
                if pos == 0:
                    if buf:
                        yield buf[:-1], 0
                    return
                step = min(_BLOCK, pos)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + buf

    def _matches_backward(self, name: str, stop: int | None, match: bytes,
                          passed: Callable[[dict], bool] | None = None) -> Iterator[tuple[bytes | None, int]]:
        """Like `_lines_backward`, only the lines holding `match`, found by searching whole
        blocks (a month's segment where nothing matches costs a search, not a loop per line).
        With `passed`: after each block, its first whole event is decoded and given to it;
        true yields (None, position) and ends the read. The segment is mapped, not read: the
        search runs on the page cache (reading and joining the blocks were two thirds of the
        3.5 s a scan of the 1M store's 2.4 GB log took, e.g. the SLA cold fold's)."""
        import mmap

        step = _BLOCK * 8
        with open(self.dir / name, "rb") as fh:
            if stop is None:
                size = os.fstat(fh.fileno()).st_size
                stop = size - len(self._torn_bytes(name, size))
            if stop <= 0:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                hi = pos = stop  # the lines before hi (a line's start, or stop) are left to search
                kept = len(mm)  # pages from here to the end are mapped in: searched, given back below
                while hi > 0:
                    if kept - hi >= _UNMAP_AT:  # the searched pages leave this process's RSS (the
                        low = hi // mmap.PAGESIZE * mmap.PAGESIZE  # page cache keeps them): a read
                        mm.madvise(mmap.MADV_DONTNEED, low, kept - low)  # back through a day of a
                        kept = low  # big store's log showed as 600 MB of a cron route's peak
                    pos = max(0, pos - step)
                    if pos:  # whole lines from the first newline in [pos, hi) on, but hi's own
                        nl = mm.find(b"\n", pos, hi - 1)
                        if nl < 0:
                            continue  # a line longer than the block: take more
                        floor = nl + 1
                    else:
                        floor = 0
                    top = hi
                    while (at := mm.rfind(match, floor, top)) >= 0:
                        start = mm.rfind(b"\n", floor, at) + 1 or floor
                        end = mm.find(b"\n", at, top)
                        yield mm[start:end if end >= 0 else top], start
                        top = start
                    if passed is not None and floor:
                        nl = mm.find(b"\n", floor, hi)
                        try:
                            first = orjson.loads(unmark(mm[floor:nl])) if nl > floor else None
                        except ValueError:
                            first = None
                        if isinstance(first, dict) and passed(first):
                            yield None, floor
                            return
                    hi = floor

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

    # -- damage ----------------------------------------------------------------------------
    def damaged(self, name: str, start: int, why: str) -> None:
        """Report the line of segment `name` starting at byte `start` as damaged (once)."""
        report_damage(f"{self.dir.name}/{name}", lambda: self.line_number(name, start),
                      f"damaged line skipped ({why}); run tix check", key=(str(self.dir), name, start))

    def line_number(self, name: str, offset: int) -> int:
        """The 1-based number of the line starting at byte `offset` of segment `name`."""
        count = 0
        with open(self.dir / name, "rb") as fh:
            left = offset
            while left > 0:
                chunk = fh.read(min(left, 1 << 22))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                left -= len(chunk)
        return count + 1

    # -- writing (lock held) ---------------------------------------------------------------
    def repair(self, quarantine: Path) -> int:
        """Cut everything after the last committed batch: a torn line, and the whole lines of
        a batch a crash cut short. Their bytes go to `quarantine/` (up to KEEP_TORN bytes).
        A log without `state/log-format.json` gets one: from here on its batches carry marks.

        Returns the number of bytes removed (0 when the log was whole).
        """
        end = self.end()
        removed = 0
        for name in reversed(self.segments()):
            if end.segment and name < end.segment:
                break
            path = self.dir / name
            size = path.stat().st_size
            keep = end.offset if name == end.segment else 0
            if size <= keep:
                continue
            self._keep_torn(quarantine, name, path, keep, size)
            if keep == 0:
                path.unlink()
                fsync_path(self.dir)
            else:
                self.truncate(Position(name, keep))
            removed += size - keep
        if self.log_format() is None and self.dir.is_dir() and not self.format_path.exists():
            self.write_format(self.end())
        return removed

    def _keep_torn(self, quarantine: Path, name: str, path: Path, keep: int, size: int) -> None:
        """Copy the bytes about to be cut into quarantine (best effort: they were never
        committed, and a full disk must not stop the repair that frees it)."""
        try:
            quarantine.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as fh:
                fh.seek(keep)
                data = fh.read(min(size - keep, KEEP_TORN))
            (quarantine / f"torn-{name}-{int(time.time())}-{keep}-{size}.bin").write_bytes(data)
        except OSError:
            pass

    def truncate(self, pos: Position) -> None:
        """Cut segment `pos.segment` back to `pos.offset` and fsync (lock held)."""
        with open(self.dir / pos.segment, "r+b") as fh:
            fh.truncate(pos.offset)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, data: bytes, segment: str, sync: bool = True) -> Position:
        """Append encoded event lines (each ending in a newline) to `segment`; fsync unless
        `sync` is False. Returns the position after them.

        The caller chooses the segment (never an older one than the newest) and must hold
        the store's write lock. A failed write (a full disk, an I/O error) is cut back off
        before StoreWriteError is raised: the segment is as it was.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / segment
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
            end = start + len(data)
        except OSError as exc:
            _cut_back(fd, start)
            os.close(fd)
            if new and start == 0:
                _unlink_quietly(path)
            from tix.store.files import write_error

            raise write_error(exc, path, len(data)) from None
        os.close(fd)
        if new:
            fsync_path(self.dir)
        return Position(segment, end)


# Bytes of a cut batch kept in quarantine (the rest is dropped: a bulk update cut short by a
# kill can leave hundreds of MB that were never committed).
KEEP_TORN = 1 << 20


def _cut_back(fd: int, offset: int) -> None:
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    except OSError:  # the next writer's repair cuts it (no commit mark follows)
        pass


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _why(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


_REPORTED: set = set()


def forget_reports() -> None:
    """Let `report_damage` say again what it said (a new command in the same process)."""
    _REPORTED.clear()


def report_damage(where: str, line, message: str, key=None) -> None:
    """Say once per process, in one line on stderr, that a part of the store is damaged and
    was skipped: `events/2026-11.jsonl:123456: damaged line skipped (…); run tix check`.

    The one place the store itself speaks: a reader that meets damage goes on where it
    safely can, and cron mails the line. `line` is a number, a function computing it (only
    called once), or None.
    """
    key = key or (where, message)
    if key in _REPORTED:
        return
    _REPORTED.add(key)
    number = line() if callable(line) else line
    text = f"{where}:{number}: {message}" if number else f"{where}: {message}"
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory, so that a new or renamed entry survives)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path
