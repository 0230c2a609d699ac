"""The snapshot refresh in steps (tix.store.refresh): the same snapshot as one fold, and a kill
between steps leaves a store the next reader and the next refresh read whole."""
from __future__ import annotations

import os
import shutil

import pytest

from tix.store import Store, refresh
from tix.store.reader import Reader

CONFIG = "settings:\n  snapshot_every: 100000\n"  # no writer refreshes by itself here


def _history(store: Store) -> None:
    """A base snapshot, then a tail whose events change the same tickets and contacts over and
    over (statuses there and back, tags, custom fields set and removed, messages, notes,
    routing), contacts created, updated, merged and erased, and new tickets late in it."""
    with store.writing(actor="user:a", via="t") as b:
        for c in range(1, 5):
            b.emit("contact.created", contact=c, data={"name": f"C{c}", "emails": [f"c{c}@x.example"],
                                                       "phones": [], "fields": {}})
        for n in range(1, 7):
            b.emit("ticket.created", ticket=n, data={"subject": f"t{n}", "channel": "email", "contact": 1 + n % 4,
                                                     "tags": ["awal"], "fields": {"asal": "web"}})
    refresh.run(store)
    with store.writing(actor="user:b", via="t") as b:
        for i in range(40):
            n = 1 + i % 6
            kind = i % 8
            if kind == 0:
                b.emit("ticket.updated", ticket=n, data={"set": {"status": ["resolved", "open", "closed"][i % 3]}})
            elif kind == 1:
                b.emit("ticket.tagged", ticket=n, data={"add": [f"x{i % 3}"], "remove": ["awal"] if i % 5 else []})
            elif kind == 2:
                b.emit("ticket.updated", ticket=n, data={"set": {"fields.order": None if i % 4 == 2 else f"INV-{i}",
                                                                  "assignee": ["ani", "budi"][i % 2]}})
            elif kind == 3:
                b.emit("message.received", ticket=n, data={"text": f"m{i}"})
            elif kind == 4:
                b.emit("message.sent", ticket=n, data={"text": f"r{i}", "auto": i % 3 == 0})
            elif kind == 5:
                b.emit("ticket.note", ticket=n, data={"body": "n"})
            elif kind == 6:
                b.emit("ticket.routed", ticket=n, data={"upto": b.seq, "rules": ["r"]})
            else:
                b.emit("ticket.updated", ticket=n, data={"set": {"status": "pending", "priority": "high"}})
            if i == 10:
                b.emit("contact.updated", contact=2, data={"set": {"name": "Dua", "fields.kota": "Bandung"},
                                                           "add_emails": ["dua@x.example"]})
            if i == 20:
                b.emit("contact.merged", contact=3, data={"into": 2})
            if i == 25:
                b.emit("contact.erased", contact=4, data={})
            if i == 30:
                b.emit("contact.created", contact=5, data={"name": "Lima", "emails": [], "phones": ["62811"]})
                b.emit("ticket.created", ticket=7, data={"subject": "t7", "contact": 5, "status": "closed"})
            if i == 35:
                b.emit("contact.updated", contact=5, data={"remove_phones": ["62811"], "add_phones": ["62812"]})


def _snapshot(store: Store) -> tuple:
    """The snapshot's rows (base and delta merged), sorted by key, and its meta's positions."""
    reader = Reader(store)
    con = reader.connect()
    tickets = con.execute(f"SELECT * FROM ({reader.snapshot_sql('tickets')}) ORDER BY number").fetchall()
    contacts = con.execute(f"SELECT * FROM ({reader.snapshot_sql('contacts')}) ORDER BY id").fetchall()
    meta = {k: reader.meta[k] for k in ("seq", "segment", "offset", "max_ticket", "max_contact")}
    return tickets, contacts, meta


def _read(store: Store) -> tuple:
    """What a reader sees: the snapshot plus the tail."""
    con = store.connect()
    return (con.execute("SELECT * FROM tickets ORDER BY number").fetchall(),
            con.execute("SELECT * FROM contacts ORDER BY id").fetchall())


@pytest.mark.parametrize("compact", [False, True])
def test_a_refresh_in_steps_writes_the_snapshot_one_fold_writes(tmp_path, monkeypatch, compact):
    import tix.store.reader as readermod

    if compact:  # steps that compact the delta into the base now and then
        monkeypatch.setattr(readermod, "COMPACT_MIN_ROWS", 2)
    one = Store.init(tmp_path / "one", config_text=CONFIG)
    _history(one)
    stepped = tmp_path / "stepped"
    shutil.copytree(one.root, stepped)
    steps = Store(stepped)
    with one.lock():
        refresh.run(one, step=10 ** 9)
    generations = []
    real = Reader.write_snapshot
    monkeypatch.setattr(Reader, "write_snapshot", lambda self: generations.append(self.tail_lines) or real(self))
    with steps.lock():
        refresh.run(steps, step=7)
    assert generations == [7] * 6 + [4]  # 46 events: 7 generations, none of more than a step
    assert _snapshot(steps) == _snapshot(one)
    assert _read(steps) == _read(one)
    contacts = {row[0]: row for row in _snapshot(one)[1]}  # (id, name, emails, phones, fields, merged_into, …)
    assert contacts[2][1] == "Dua" and contacts[3][5] == 2 and contacts[4][1] is None and 5 in contacts
    assert _snapshot(one)[0][-1][0] == 7  # the ticket made late in the tail


def test_a_refresh_killed_between_steps_leaves_a_store_read_whole(tmp_path, monkeypatch):
    one = Store.init(tmp_path / "one", config_text=CONFIG)
    _history(one)
    killed = tmp_path / "killed"
    shutil.copytree(one.root, killed)
    with one.lock():
        refresh.run(one)
    store = Store(killed)
    pid = os.fork()
    if pid == 0:  # a refresh killed as it starts its third step
        done = []
        real = Reader.write_snapshot

        def write(self):
            if len(done) == 2:
                os._exit(9)
            done.append(1)
            return real(self)

        Reader.write_snapshot = write
        with store.lock():
            refresh.run(store, step=10)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    meta = store.snapshot.meta()
    assert meta["seq"] == 10 + 20 and store.snapshot.damage() is None  # two steps of 10 folded
    assert _read(store) == _read(one)  # the rest comes from the tail
    store.refresh_snapshot()  # and the next refresh folds it
    assert _snapshot(store) == _snapshot(one)


def test_a_writer_leaving_a_long_tail_folds_it_in_steps(tmp_path, monkeypatch):
    """The end-of-command refresh of every writer (a first route over an imported history, an
    import, a bulk update) goes through the same steps: 2.3M events folded at once took 1.8 GB."""
    from tix.tickets import create_ticket

    store = Store.init(tmp_path / "s", config_text="settings:\n  snapshot_every: 10\n")
    monkeypatch.setattr(refresh, "STEP", 8)
    generations = []
    real = Reader.write_snapshot
    monkeypatch.setattr(Reader, "write_snapshot", lambda self: generations.append(self.tail_lines) or real(self))
    with store.writing(actor="user:a", via="t") as b:
        for i in range(30):
            create_ticket(b, f"t{i}")
    assert generations == [8, 8, 8, 6]
    reader = store.read()
    assert reader.meta["seq"] == 30 and reader.tail == [] and reader.max_ticket == 30


def test_cuts_count_committed_lines_across_segments(tmp_path):
    store = Store.init(tmp_path / "s", config_text=CONFIG)
    for month in ("2026-10", "2026-11"):
        with store.writing(actor="user:a", via="t") as b:
            for i in range(5):
                b.emit("ticket.note", ticket=1, data={"body": str(i)}, ts=f"{month}-02T00:00:00Z")
    end = store.log.end()
    cuts = refresh.cuts(store, end, step=3)
    assert [c.segment for c in cuts] == ["2026-10.jsonl"] * 1 + ["2026-11.jsonl"] * 3
    lines = [off for _raw, _seg, off in store.log.read_raw()]
    assert [c.offset for c in cuts] == [lines[2], lines[5], lines[8], lines[9]] and cuts[-1] == end
