"""Verifying the whole store (`tix check`) and making a damaged log whole again.

`scan_log` reads every line of every segment: each must be a committed JSON event with a
seq one above the one before it. `check_store` adds the snapshot (meta.json readable, the
files it names whole, its position on the event it names) and the log's own format file,
and says what to run. `replace_damaged` (`tix rebuild --replace-damaged`) puts a
`log.damaged` event in place of each damaged line whose seq the lines around it tell,
after keeping its bytes in `quarantine/`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from tix.errors import Problem
from tix.store.files import atomic_write, commit_temp, temp_name, write_all
from tix.store.log import COMMIT_MARK, FORMAT_FILE, SEGMENT_SUFFIX, _why, seq_before, unmark

if TYPE_CHECKING:
    from tix.store.store import Store


@dataclass
class Damaged:
    """One damaged line: where it is, its bytes, and the seq the lines around it leave for it."""

    segment: str
    line: int
    start: int
    end: int
    raw: bytes
    why: str
    seq: int | None = None


@dataclass
class LogScan:
    events: int = 0
    last_seq: int = 0
    damaged: list[Damaged] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    gaps: int = 0  # seq jumps not explained by damaged lines
    open_lines: int = 0  # whole lines after the last commit (a crash): the next writer cuts them
    notes: list[str] = field(default_factory=list)  # worth saying, not a problem


def scan_log(store: Store) -> LogScan:
    """Read every line of the log and report what is wrong with it (see the module doc)."""
    log = store.log
    scan = LogScan()
    end = log.end()
    loads = orjson.loads
    prev: int | None = None
    pending: list[Damaged] = []  # damaged lines since the last good one
    for name in log.segments():
        where = f"{log.dir.name}/{name}"
        committed = end.offset if name == end.segment else (None if name < end.segment else 0)
        with open(log.dir / name, "rb") as fh:
            number, offset = 0, 0
            for line in fh:
                number += 1
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    scan.problems.append(Problem(where, number, "torn last line (a crash while writing): "
                                                                "the next writing command cuts it off"))
                    break
                if committed is not None and start >= committed:
                    scan.open_lines += 1
                    continue
                try:
                    if line[:1] != b"{" or line[-2:] != b"}\n" or b"\0" in line:
                        raise ValueError("not a JSON object")  # as readers see it (EventLog.read_raw)
                    ev = loads(unmark(line[:-1]))
                    seq = _check_event(ev)
                except (ValueError, KeyError, TypeError) as exc:
                    d = Damaged(name, number, start, offset, line, _why(exc))
                    scan.damaged.append(d)
                    pending.append(d)
                    scan.problems.append(Problem(where, number, f"damaged line ({d.why})"))
                    continue
                _number_damaged(pending, prev, seq)
                if prev is not None and seq != prev + 1:
                    missing = seq - prev - 1 - len(pending)
                    if seq <= prev:
                        scan.problems.append(Problem(where, number, f"seq {seq} follows seq {prev}: out of order"))
                        scan.gaps += 1
                    elif missing:
                        scan.problems.append(Problem(where, number, f"seq jumps from {prev} to {seq}: "
                                                                    f"{missing} event(s) missing from the log"))
                        scan.gaps += 1
                pending = []
                prev = seq
                scan.events += 1
                scan.last_seq = seq
    if scan.open_lines:
        where = f"{log.dir.name}/{end.segment or log.segments()[-1]}"
        writer = _writer_pid(store)
        if writer is not None:  # a bulk update writing its parts: not damage
            scan.notes.append(f"{where}: {scan.open_lines} line(s) of a batch not committed yet: "
                              f"a writer (pid {writer or '?'}) holds the lock")
        else:
            scan.problems.append(Problem(where, None, f"{scan.open_lines} line(s) of a batch never committed "
                                                      "(a crash): the next writing command cuts them off"))
    return scan


def _writer_pid(store: Store) -> int | None:
    """The pid in `state/lock` when a writer holds the lock now (0 if unknown), else None."""
    import fcntl

    try:
        fd = os.open(store.path("state", "lock"), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _check_event(ev) -> int:
    if type(ev) is not dict:
        raise ValueError("not a JSON object")
    seq = ev["seq"]
    if type(seq) is not int or seq < 1:
        raise ValueError(f"bad seq {seq!r}")
    if not isinstance(ev["type"], str):
        raise ValueError("type is not a string")
    datetime.fromisoformat(ev["ts"])
    return seq


def _number_damaged(pending: list[Damaged], prev: int | None, seq: int) -> None:
    """Give damaged lines between two good ones their seqs, when the gap holds exactly them."""
    if pending and seq - (prev or 0) - 1 == len(pending):
        for i, d in enumerate(pending, start=1):
            d.seq = (prev or 0) + i


def quarantine_damaged(store: Store, damaged: list[Damaged]) -> list[Path]:
    """Copy each damaged line into `quarantine/damaged-SEGMENT-LLINE.bin` (once); their paths."""
    out = []
    qdir = store.path("quarantine")
    qdir.mkdir(parents=True, exist_ok=True)
    for d in damaged:
        path = qdir / f"damaged-{d.segment.removesuffix(SEGMENT_SUFFIX)}-L{d.line}-{d.start}.bin"
        if not path.exists():
            atomic_write(path, d.raw)
        out.append(path)
    return out


def replace_damaged(store: Store, damaged: list[Damaged]) -> tuple[int, list[Damaged]]:
    """Replace each damaged line whose seq is known with a `log.damaged` event (lock held).

    Returns (lines replaced, lines left as they are: their seq cannot be told). The bytes
    must already be in quarantine (`quarantine_damaged`). Saved log positions after a
    replaced line no longer fit; their owners notice (`seq_before`) and read again.
    """
    fixable = [d for d in damaged if d.seq is not None]
    left = [d for d in damaged if d.seq is None]
    by_segment: dict[str, list[Damaged]] = {}
    for d in fixable:
        by_segment.setdefault(d.segment, []).append(d)
    for name, lines in by_segment.items():
        _rewrite_segment(store, name, lines)
    return len(fixable), left


def _rewrite_segment(store: Store, name: str, lines: list[Damaged]) -> None:
    path = store.log.dir / name
    data = path.read_bytes()
    parts, pos, ts = [], 0, None
    for d in sorted(lines, key=lambda x: x.start):
        before = data[pos:d.start]
        parts.append(before)
        ts = _last_ts(before) or ts or "1970-01-01T00:00:00.000000Z"
        ev = {"seq": d.seq, "ts": ts, "actor": "system", "via": "tix rebuild --replace-damaged",
              "type": "log.damaged", "data": {"segment": name, "line": d.line, "why": d.why,
                                              "quarantine": f"quarantine/damaged-{name.removesuffix(SEGMENT_SUFFIX)}"
                                                            f"-L{d.line}-{d.start}.bin"}}
        parts.append(orjson.dumps(ev)[:-1] + COMMIT_MARK)
        pos = d.end
    parts.append(data[pos:])
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        write_all(fd, b"".join(parts))
    finally:
        os.close(fd)
    commit_temp(tmp, path, needed=len(data))


def _last_ts(block: bytes) -> str | None:
    line = block.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        return orjson.loads(unmark(line))["ts"]
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    last_seq: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(store: Store) -> CheckReport:
    """Verify the whole store without changing it: every line of the log, seq contiguity,
    the log's format file, the snapshot against its meta and the log, the search index's
    pages. Says what to run."""
    from tix.store.snapshot import KINDS, parquet_problem

    report = CheckReport()
    if store.log.format_path.exists() and store.log.log_format() is None:
        report.problems.append(Problem(FORMAT_FILE, None, "unreadable"))
        report.advice.append(f"restore {FORMAT_FILE} from a backup, or delete it: the next writer writes a new "
                             "one (then a batch a crash cut short before it is kept, as in older stores)")
    scan = scan_log(store)
    report.problems += scan.problems
    report.notes += scan.notes
    report.events, report.last_seq = scan.events, scan.last_seq
    if scan.damaged:
        report.advice.append(f"{len(scan.damaged)} damaged line(s): restore them from a backup if you can; "
                             "else `tix rebuild --replace-damaged` keeps their bytes in quarantine/ and puts a "
                             "log.damaged event in their place")
    if scan.gaps:
        report.advice.append("events are missing or out of order: the log was edited; restore it from a backup")
    if scan.open_lines or any("torn" in p.message for p in scan.problems):
        report.advice.append("run any writing command (e.g. `tix rebuild`) to cut off what a crash left")
    snap = store.snapshot
    if (snap.dir / "meta.json").exists():
        meta = snap.meta()
        bad = []
        if meta is None:
            bad.append(Problem(f"{snap.dir.name}/meta.json", None, "unreadable"))
        else:
            for kind in KINDS:
                name = meta.get(kind)
                why = parquet_problem(snap.dir / name) if name else None
                if why is None and name:
                    why = _parquet_footer(snap.dir / name)
                if why:
                    bad.append(Problem(f"{snap.dir.name}/{name}", None, why))
            seg = store.log.dir / meta["segment"] if meta["segment"] else None
            if meta["seq"] and (seg is None or not seg.exists() or seq_before(seg, meta["offset"]) != meta["seq"]):
                bad.append(Problem(f"{snap.dir.name}/meta.json", None,
                                   f"position {meta['segment']}:{meta['offset']} is not right after seq "
                                   f"{meta['seq']} in the log"))
            elif meta["seq"] > scan.last_seq:
                bad.append(Problem(f"{snap.dir.name}/meta.json", None,
                                   f"seq {meta['seq']} is beyond the log's last event ({scan.last_seq})"))
        if bad:
            report.problems += bad
            report.advice.append("run `tix rebuild` (the snapshot is a cache of the log)")
    from tix.store.search import NAME, SearchIndex

    index = SearchIndex(store)
    if index.exists() and not index.sound():
        report.problems.append(Problem(f"state/{NAME}", None, "damaged (SQLite's quick_check finds errors)"))
        report.advice.append("run `tix rebuild --search` (the search index is a cache of the log)")
    return report


def _parquet_footer(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read the footer is the damage reported
        return f"unreadable ({_why(exc)})"
    return None
