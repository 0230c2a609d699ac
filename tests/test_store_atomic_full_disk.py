"""A full disk (issue 18, why 2): every store write is undone and ends in one line naming the
store and the space needed, exit 1; the next run after space is freed completes, with
nothing lost or doubled. On a real small tmpfs (CI runs as root)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_crash import build_base, env_for, fingerprint

LINE = re.compile(r"^Error: store (?P<store>\S+): no space left on device writing (?P<file>\S+): "
                  r"free at least [\d.]+ MB \([\d.]+ MB free now\); (?P<outcome>.+)$")


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all free space on `disk` but `leave` bytes."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(filler, "ab") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def tix(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tix", *args], env=env_for(store), capture_output=True,
                          text=True, timeout=300)


def temp_files(store: Path) -> list[str]:
    pats = (".*.tmp", "*.tmp", "tail-*.jsonl", "*.parquet.tmp")
    return sorted(str(p.relative_to(store)) for pat in pats for p in store.rglob(pat))


def assert_one_line(proc: subprocess.CompletedProcess, store: Path) -> re.Match:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    m = LINE.match(lines[0])
    assert m and m["store"] == str(store), lines[0]
    return m


UPDATE = ("update", "number>0", "--set", "fields.order_id=X", "--add-tag", "full", "--note", "n1", "--yes")


def test_bulk_update_on_a_full_disk_writes_nothing_and_the_rerun_completes_once(tmp_path, small_disk):
    """`tix update` exited 1 with a traceback, yet 23 of 8,584 tickets were tagged, and a torn line."""
    store = build_base(small_disk / "store", 600)
    before = fingerprint(store)
    seg = sorted((store / "events").glob("*.jsonl"))[-1]
    size = seg.stat().st_size
    filler = fill(small_disk, 64 * 1024)  # the update needs about 400 KB
    proc = tix(store, *UPDATE)
    m = assert_one_line(proc, store)
    assert m["file"] == f"events/{seg.name}" and m["outcome"] == "nothing of it was written: run the command again"
    assert seg.stat().st_size == size and fingerprint(store) == before
    assert temp_files(store) == []
    filler.unlink()
    proc = tix(store, *UPDATE)
    assert (proc.returncode, proc.stdout.strip().split(" of ")[0], proc.stderr) == (0, "changed 600", "")
    after = fingerprint(store)
    assert all(t for t in after["tickets"])
    notes = sum(n for (kind, _t, _v, data), n in after["events"].items() if kind == "ticket.note" and b"n1" in data)
    assert notes == 600


def test_a_note_on_a_full_disk_then_after_space_is_freed(small_disk):
    store = build_base(small_disk / "store", 20)
    before = fingerprint(store)
    filler = fill(small_disk, 0)
    note = "called the courier; " * 500  # more than the room left in the segment's last page
    proc = tix(store, "note", "3", "-m", note)
    assert_one_line(proc, store)
    assert fingerprint(store) == before and temp_files(store) == []
    filler.unlink()
    assert tix(store, "note", "3", "-m", note).returncode == 0
    assert sum(n for (kind, _t, _v, _d), n in fingerprint(store)["events"].items() if kind == "ticket.note") == 1


def test_a_snapshot_refresh_that_finds_the_disk_full_keeps_the_changes_and_says_so(small_disk):
    store = build_base(small_disk / "store", 20)
    config = store / "tix.yaml"
    config.write_text(config.read_text().replace("snapshot_every: 20000", "snapshot_every: 1"))
    meta = (store / "snapshot" / "meta.json").read_bytes()
    filler = fill(small_disk, 4096)  # room for the note's line, not for a new snapshot generation
    proc = tix(store, "note", "3", "-m", "called the courier")
    m = assert_one_line(proc, store)
    assert m["file"].startswith("snapshot/")
    assert m["outcome"].startswith("the changes are saved; only the snapshot (a cache) was not refreshed")
    assert (store / "snapshot" / "meta.json").read_bytes() == meta and temp_files(store) == []
    assert sum(n for (kind, _t, _v, _d), n in fingerprint(store)["events"].items() if kind == "ticket.note") == 1
    filler.unlink()
    assert tix(store, "rebuild").returncode == 0
    assert tix(store, "check").returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["update", "route", "escalate", "rebuild"])
def test_every_write_path_of_a_command_on_a_full_disk(tmp_path, small_disk, command):
    """At each amount of free space the command either completes or stops with the one line
    (whichever write it got to: log, snapshot, SLA state, round-robin state); after space
    is freed, a rerun ends where an unkilled run on a roomy disk ends."""
    from bench.bench_crash import COMMANDS

    args = COMMANDS[command][2:]
    base = build_base(tmp_path / "base", 800)
    ref_dir = tmp_path / "ref"
    shutil.copytree(base, ref_dir)
    assert tix(ref_dir, *args).returncode == 0
    reference = fingerprint(ref_dir)
    outcomes = set()
    for leave in (0, 8 << 10, 64 << 10, 192 << 10, 384 << 10, 768 << 10, 2 << 20):
        store = small_disk / "store"
        shutil.rmtree(store, ignore_errors=True)
        (small_disk / "filler").unlink(missing_ok=True)
        shutil.copytree(base, store)
        filler = fill(small_disk, leave)
        proc = tix(store, *args)
        if proc.returncode != 0:
            m = assert_one_line(proc, store)
            outcomes.add(m["file"].split("/")[0] + ": " + m["outcome"][:40])
            assert temp_files(store) == [], leave
            filler.unlink()
            proc = tix(store, *args) if command != "update" or fingerprint(store) != reference else proc
        else:
            outcomes.add("done")
            filler.unlink()
        assert proc.returncode == 0, (leave, proc.stderr)
        assert fingerprint(store) == reference, leave
    assert len(outcomes) >= 2, outcomes  # at least one level failed and one got through


def test_an_io_error_is_one_line_naming_the_store_and_the_file(store):
    import errno

    from tix.errors import StoreWriteError
    from tix.store.files import write_error

    err = write_error(OSError(errno.EIO, "Input/output error"), store.root / "events" / "2026-11.jsonl", 100)
    assert isinstance(err, StoreWriteError) and err.exit_code == 1
    assert str(err) == (f"store {store.root}: Input/output error writing events/2026-11.jsonl (check the disk: "
                        "dmesg); nothing of it was written: run the command again")
    other = PermissionError(errno.EACCES, "Permission denied")
    assert write_error(other, store.root / "x") is other  # not the disk: raised as it is
