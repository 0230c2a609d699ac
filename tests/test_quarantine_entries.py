"""Quarantine entries (issue 18 item 3, issue 15 item 12): one entry per source item, written
whole or not at all, cleaned when no event records them; and a way out: `tix quarantine drop`
(audited) and `tix quarantine list --older`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from tests.plugins.email import add_config, drop, make_mail, maildir_source
from tests.test_store_atomic_full_disk import fill, small_disk  # noqa: F401 - a fixture used below
from tix.store import Store, quarantine

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
POISON = b"Subject: no sender\n\nhello\n"


@pytest.fixture
def md_store(store, tmp_path, monkeypatch):
    monkeypatch.setenv("TIX_NOW", NOW.isoformat())
    maildir_source(store, tmp_path / "maildir", "    team: support\n")
    return store


def entry_dirs(store) -> list[Path]:
    root = store.root / "quarantine" / "email"
    return sorted(root.iterdir()) if root.is_dir() else []


def quarantined_events(store) -> list[dict]:
    return [ev for ev, _ in store.log.read() if ev["type"] == "message.quarantined"]


def test_a_rerun_after_a_kill_between_entry_and_event_keeps_one_entry(md_store, tix):
    """The entry was written before its event and its id held a timestamp, so a rerun after
    a kill wrote a second entry for the same item (386 directories for 381 events)."""
    drop(md_store, POISON, "00001.test")
    # what a fetch killed after writing the entry (an hour earlier) and before its event left behind
    killed = quarantine.put(md_store, "email", POISON, "no sender address", source="inbox",
                            key="maildir:inbox:00001.test", now=NOW - timedelta(hours=1))
    assert tix("fetch").returncode == 1
    assert [d.name for d in entry_dirs(md_store)] == [killed]
    (ev,) = quarantined_events(md_store)
    assert ev["data"]["quarantine"] == killed
    assert len(quarantine.entries(md_store)) == 1
    assert tix("fetch").returncode == 0  # acknowledged: skipped from now on
    assert len(entry_dirs(md_store)) == 1


def test_entries_no_event_records_and_dead_writers_temp_dirs_are_cleaned(md_store, tix):
    drop(md_store, make_mail(msgid="<ok1@x>", subject="good one"), "00001.test")
    drop(md_store, POISON, "00002.test")
    # a killed run's entry whose item then left the mailbox, and a killed writer's half entry
    orphan = quarantine.put(md_store, "email", b"Subject: gone\n\n", "no sender address", source="inbox",
                            key="maildir:inbox:00009.test")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    half = md_store.root / "quarantine" / "email" / f".tmp-0123456789abcdef.{dead}"
    half.mkdir()
    (half / "item.eml").write_bytes(b"From: x@y\n\npart")
    assert [e["id"] for e in quarantine.entries(md_store)] == [orphan]  # a temp dir is never an entry
    assert tix("fetch").returncode == 1
    names = [d.name for d in entry_dirs(md_store)]
    assert orphan not in names and half.name not in names
    (ev,) = quarantined_events(md_store)
    assert names == [ev["data"]["quarantine"]]
    assert all((d / "error.json").is_file() for d in entry_dirs(md_store))


def test_the_same_item_quarantined_twice_is_one_entry_with_its_first_time(store):
    a = quarantine.put(store, "email", POISON, "first", source="inbox", key="k1", now=NOW)
    b = quarantine.put(store, "email", POISON, "second", source="inbox", key="k1", now=NOW + timedelta(minutes=5))
    c = quarantine.put(store, "email", POISON, "other item", source="inbox", key="k2", now=NOW)
    assert a == b != c
    e = quarantine.get(store, a)
    assert (e["error"], e["ts"]) == ("second", "2026-11-24T08:00:00.000000Z")  # the first time it was quarantined


def test_quarantine_drop_is_audited_and_fetch_still_skips_the_item(md_store, tix):
    drop(md_store, POISON, "00001.test")
    assert tix("fetch").returncode == 1
    (entry,) = quarantine.entries(md_store)
    assert tix("quarantine", "drop", entry["id"]).returncode == 2  # --why is required
    dry = tix("quarantine", "drop", entry["id"], "--why", "spam", "--dry-run")
    assert dry.returncode == 0 and f"would drop {entry['id']}" in dry.stdout
    assert len(quarantine.entries(md_store)) == 1
    proc = tix("quarantine", "drop", entry["id"], "--why", "spam nobody can fix", "--as", "dewi")
    assert proc.returncode == 0, proc.stderr
    assert quarantine.entries(md_store) == [] and entry_dirs(md_store) == []
    (ev,) = [ev for ev, _ in md_store.log.read() if ev["type"] == "quarantine.dropped"]
    assert (ev["actor"], ev["why"], ev["data"]["quarantine"], ev["data"]["key"]) == (
        "user:dewi", "spam nobody can fix", entry["id"], "maildir:inbox:00001.test")
    # the item is back in new/ (someone moved it): fetch still knows it, nothing new
    for p in (md_store.md / "cur").iterdir():
        p.rename(md_store.md / "new" / p.name.split(":2,")[0])
    assert tix("fetch").returncode == 0
    assert quarantine.entries(md_store) == []
    assert tix("quarantine", "drop", entry["id"], "--why", "again").returncode == 1  # no such entry


def test_quarantine_list_and_drop_older_than(md_store, tix, monkeypatch):
    drop(md_store, POISON, "00001.test")
    tix("fetch")
    monkeypatch.setenv("TIX_NOW", (NOW + timedelta(days=20)).isoformat())
    drop(md_store, b"Subject: also no sender\n\nhi\n", "00002.test")
    tix("fetch")
    monkeypatch.setenv("TIX_NOW", (NOW + timedelta(days=40)).isoformat())
    every = orjson.loads(tix("quarantine", "list", "-f", "json").stdout)
    old = orjson.loads(tix("quarantine", "list", "--older", "30d", "-f", "json").stdout)
    assert len(every) == 2 and [e["ts"] for e in old] == ["2026-11-24T08:00:00.000000Z"]
    assert tix("quarantine", "list", "--older", "soon").returncode == 2
    assert tix("quarantine", "drop", every[1]["id"], "--older", "30d", "--why", "x").returncode == 2
    assert tix("quarantine", "drop", "--older", "30d", "--why", "30-day review").returncode == 0
    assert [e["id"] for e in quarantine.entries(md_store)] == [every[1]["id"]]


def test_a_fetch_on_a_full_disk_leaves_no_half_entry_and_the_rerun_quarantines_each_item_once(tmp_path, small_disk):  # noqa: F811
    """Fetch on a full disk printed a traceback and left 8 quarantine directories without error.json."""
    store = Store.init(small_disk / "store")
    md = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n    after: seen\n"
                      f"    address: support@toko.example\n")
    for i in range(30):
        raw = (b"Subject: poison %d\n\n" % i + b"x" * 20000) if i % 3 == 0 else make_mail(
            msgid=f"<m{i}@x>", subject=f"good {i}", body="isi " * 4000)
        (md / "new" / f"{i:05d}.test").write_bytes(raw)
    env = dict(os.environ, TIX_STORE=str(store.root), TIX_NOW=NOW.isoformat())
    filler = fill(small_disk, 96 * 1024)
    proc = subprocess.run([sys.executable, "-m", "tix", "fetch", "--no-send"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    qroot = store.root / "quarantine" / "email"
    if qroot.is_dir():
        assert all((d / "error.json").is_file() and not d.name.startswith(".") for d in qroot.iterdir())
    filler.unlink()
    proc = subprocess.run([sys.executable, "-m", "tix", "fetch", "--no-send"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the poison items: quarantined, exit 1
    events = [json.loads(line) for seg in sorted((store.root / "events").glob("*.jsonl"))
              for line in seg.read_text().splitlines() if line.strip() and not line.startswith("#")]
    received = [e for e in events if e["type"] == "message.received"]
    quarantined = [e for e in events if e["type"] == "message.quarantined"]
    assert len(received) == 20 and len({e["data"]["message"] for e in received}) == 20
    assert len(quarantined) == 10
    assert sorted(d.name for d in qroot.iterdir()) == sorted(e["data"]["quarantine"] for e in quarantined)
    leftovers = [p for p in store.root.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
