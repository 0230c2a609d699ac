"""Damage contained and named (issue 18, why 6-8): damaged log lines, meta.json, Parquet files,
and the temp files killed writers leave."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest

from tix.store import Store
from tix.tickets import create_ticket

NOW = "2026-11-24T09:00:00Z"
SEG = "events/2026-11.jsonl"


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setenv("TIX_NOW", NOW)


def _seed(store, batches=3, per=2):
    for b in range(batches):
        with store.writing(actor="user:test", via="test") as batch:
            for i in range(per):
                create_ticket(batch, f"ticket {b}.{i}", team="support")


def _damage(store, line_no: int, data: bytes) -> bytes:
    seg = store.root / SEG
    lines = seg.read_bytes().splitlines(keepends=True)
    old = lines[line_no - 1]
    lines[line_no - 1] = data
    seg.write_bytes(b"".join(lines))
    return old


def _one_damage_line(stderr: str, line_no: int, at_most: bool = False) -> None:
    assert "Traceback" not in stderr
    hits = [ln for ln in stderr.splitlines() if ln.startswith(f"{SEG}:{line_no}: damaged line skipped (")]
    assert len(hits) == 1 or (at_most and not hits), stderr
    assert all(h.endswith("); run tix check") for h in hits)


@pytest.mark.parametrize("bad", [b"\x00\x00\x00\x00\x00\x00garbage\n",
                                 b'{"seq": 3, "ts": "2026-11-24T0 oops", "type": }\n',
                                 b"not json at all\n"], ids=["nul", "broken-json", "text"])
def test_a_damaged_line_in_the_middle_is_named_once_and_every_command_goes_on(store, tix, bad):
    """Issue 18, why 6: fetch, note and list crashed with a traceback, so cron stopped."""
    _seed(store)
    _damage(store, 3, bad)  # ticket 3's creation
    for args, rc in ((("list", "-f", "csv"), 0), (("show", "1"), 0), (("note", "1", "-m", "still here"), 0),
                     (("sql", "SELECT count(*) AS n FROM events"), 0), (("fetch",), 0), (("route",), 0)):
        proc = tix(*args)
        assert proc.returncode == rc, (args, proc.stderr)
        _one_damage_line(proc.stderr, 3, at_most=args[0] == "fetch")  # fetch reads no ticket here
    numbers = [row.split(",")[0] for row in tix("list", "-f", "csv", "--all").stdout.splitlines()[1:]]
    assert "3" not in numbers and {"1", "2", "4", "5", "6"} <= set(numbers)
    readable = len(list(Store(store.root).log.read()))
    assert tix("sql", "SELECT count(*) AS n FROM events", "-f", "csv").stdout.split()[-1] == str(readable)


def test_rebuild_names_counts_and_quarantines_damaged_lines_and_exits_1(store, tix):
    """Issue 18, why 6: rebuild exited 0 and silently dropped the event, leaving a seq gap."""
    _seed(store)
    old = _damage(store, 3, b'{"seq": 3, "ts": broken}\n')
    proc = tix("rebuild")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"{SEG}:3: damaged line (") and len(lines) == 2
    assert lines[-1].startswith("Error: snapshot rebuilt from the log up to seq 6, without 1 damaged line(s) "
                                "(copied to quarantine/)")
    kept = list((store.root / "quarantine").glob("damaged-2026-11-L3-*.bin"))
    assert len(kept) == 1 and kept[0].read_bytes() == b'{"seq": 3, "ts": broken}\n'
    assert old != kept[0].read_bytes()
    assert tix("rebuild").returncode == 1  # still there: it says so every time, and keeps one copy
    assert len(list((store.root / "quarantine").glob("damaged-*"))) == 1


def test_rebuild_replace_damaged_makes_the_log_whole_again(store, tix):
    _seed(store)
    _damage(store, 3, b"\x00" * 40 + b"\n")
    proc = tix("rebuild", "--replace-damaged")
    assert proc.returncode == 0, proc.stderr
    events = [ev for ev, _ in Store(store.root).log.read()]
    assert [ev["seq"] for ev in events] == list(range(1, 7))
    placeholder = events[2]
    assert placeholder["type"] == "log.damaged" and placeholder["data"]["line"] == 3
    assert (store.root / placeholder["data"]["quarantine"]).read_bytes() == b"\x00" * 40 + b"\n"
    assert tix("check").returncode == 0
    proc = tix("list", "-f", "csv", "--all")
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 1 + 5


def test_check_is_silent_on_a_whole_store_and_names_every_problem_with_what_to_run(store, tix):
    _seed(store)
    store.refresh_snapshot()
    _seed(store, 1)
    assert tix("check") .returncode == 0 and tix("check").stderr == ""
    assert tix("-v", "check").stdout == "store ok: 8 events (last seq 8)\n"
    _damage(store, 3, b"oops\n")
    _damage(store, 5, b"")  # seq 5 gone: a gap no damaged line explains
    meta = store.root / "snapshot" / "meta.json"
    name = orjson.loads(meta.read_bytes())["tickets"]
    (store.root / "snapshot" / name).write_bytes(b"PAR1 truncated")
    proc = tix("check")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{SEG}:3: damaged line (not a JSON object)",
        f"{SEG}:5: seq jumps from 4 to 6: 1 event(s) missing from the log",
        f"snapshot/{name}: truncated",
        "snapshot/meta.json: position 2026-11.jsonl:{} is not right after seq 6 in the log".format(
            orjson.loads(meta.read_bytes())["offset"]),
        "to do: 1 damaged line(s): restore them from a backup if you can; else `tix rebuild --replace-damaged` "
        "keeps their bytes in quarantine/ and puts a log.damaged event in their place",
        "to do: events are missing or out of order: the log was edited; restore it from a backup",
        "to do: run `tix rebuild` (the snapshot is a cache of the log)",
    ]


def test_an_unreadable_meta_json_is_taken_as_missing_and_the_next_writer_rebuilds(store, tix):
    """Issue 18, why 7: a damaged meta.json blocked every command, tix rebuild included."""
    _seed(store)
    store.refresh_snapshot()
    meta = store.root / "snapshot" / "meta.json"
    meta.write_bytes(b'{"seq": 6, "segm')
    proc = tix("list", "-f", "csv")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 7
    assert proc.stderr.startswith("snapshot/meta.json: unreadable (") and len(proc.stderr.splitlines()) == 1
    proc = tix("note", "1", "-m", "hello")  # a writer: rebuilds the snapshot first
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(meta.read_bytes())["seq"] >= 6
    assert tix("check").returncode == 0
    meta.write_bytes(b"not json")
    assert tix("rebuild").returncode == 0
    assert tix("check").returncode == 0


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_a_damaged_or_missing_parquet_file_is_taken_as_missing(store, tix, how):
    """Issue 18, why 7: a truncated or deleted snapshot file gave every command a traceback."""
    _seed(store)
    store.refresh_snapshot()
    _seed(store, 1)
    store.refresh_snapshot()  # a delta on top of the base
    meta = orjson.loads((store.root / "snapshot" / "meta.json").read_bytes())
    target = store.root / "snapshot" / (meta["tickets_delta"] or meta["tickets"])
    if how == "deleted":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    proc = tix("list", "-f", "csv")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 9, proc.stderr
    assert proc.stderr.startswith(f"snapshot/{target.name}: ") and "reading the log instead" in proc.stderr
    assert tix("note", "1", "-m", "heal").returncode == 0
    assert tix("check").returncode == 0
    assert tix("list", "-f", "csv").stderr == ""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_writer_removes_the_temp_files_killed_writers_left_and_keeps_live_ones(store, tix):
    """Issue 18, why 8: state/tail-*.jsonl (38 MB after 24 kills) and *.parquet.tmp stayed forever."""
    _seed(store)
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [store.root / "state" / f"tail-{dead}-x1y2.jsonl",
                 store.root / "snapshot" / f".tickets-6.parquet.{dead}.tmp",
                 store.root / "state" / f".mail-index.{dead}.tmp",
                 store.root / "snapshot" / "tickets-6.parquet.tmp"]
        kept = [store.root / "state" / f"tail-{live.pid}-a1b2.jsonl",
                store.root / "snapshot" / f".tickets-7.parquet.{live.pid}.tmp",
                store.root / "snapshot" / "tickets-7.parquet.tmp"]  # no pid, and new: maybe a live one
        now = time.time()
        for path in stale + kept:
            path.write_bytes(b"x" * 100)
            os.utime(path, (now, now))  # this process's clock: under faketime the disk's differs
        old = now - 2 * 3600
        os.utime(stale[-1], (old, old))
        assert tix("note", "1", "-m", "hi").returncode == 0
        assert [p.exists() for p in stale] == [False] * len(stale)
        assert [p.exists() for p in kept] == [True] * len(kept)
    finally:
        live.kill()
        live.wait()


def test_check_tells_a_batch_being_written_from_one_a_crash_left(store, tix):
    _seed(store, 1)
    with store.writing(actor="user:test", via="tix update") as batch:
        for i in range(4):
            create_ticket(batch, f"part {i}")
        batch.flush(commit=False)
        proc = tix("-v", "check")  # a bulk update still writing its parts: not damage
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{SEG}: 3 line(s) of a batch not committed yet: a writer (pid {os.getpid()})")
        with open(store.root / SEG, "rb") as fh:
            cut = fh.read()
    (store.root / SEG).write_bytes(cut)  # as a crash would have left it
    proc = tix("check")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{SEG}: 3 line(s) of a batch never committed (a crash): the next writing command cuts them off",
        "to do: run any writing command (e.g. `tix rebuild`) to cut off what a crash left"]
    assert tix("rebuild").returncode == 0
    assert tix("check").returncode == 0


COMMANDS = (("list",), ("show", "1"), ("fetch",), ("escalate",), ("route",), ("note", "1", "-m", "x"),
            ("rebuild",), ("check",), ("config", "check"), ("sql", "SELECT 1"), ("report", "list"),
            ("update", "number>0", "--add-tag", "x", "--yes"), ("new", "hello"))


@pytest.mark.parametrize("text,line,what", [
    ("", 1, "the file is empty"),
    ("# tix.yaml\n\n# (the rest was lost)\n", 1, "the file is empty"),
    ("settings:\n  timezone: [Asia/Jakarta\nteams:\n  support: {}\n", 3, "YAML syntax error"),
    ("settings:\n  timezone: Asia/Jak", 2, "setting 'timezone': unknown time zone 'Asia/Jak'"),
], ids=["empty", "comments-only", "unparsable", "truncated"])
def test_a_broken_tix_yaml_stops_every_command_with_file_and_line(store, tix, text, line, what):
    """Issue 18, why 9: an empty or truncated tix.yaml passed config check, and fetch and
    escalate exited 0 doing nothing."""
    _seed(store, 1)
    config = store.root / "tix.yaml"
    config.write_text(text, encoding="utf-8")
    for args in COMMANDS if line == 1 and not text else COMMANDS[:4]:
        proc = tix(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(f"{config}:{line}: {what}"), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
