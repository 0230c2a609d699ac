"""Snapshot + tail equals folding the whole log; rebuild; the property test."""
from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tix.model import PRIORITIES, STATUSES
from tix.store import Store
from tix.tickets import create_ticket, get_ticket, set_fields, tag

COLUMNS = "number, subject, status, priority, team, assignee, tags, fields, created_at, updated_at, " \
          "resolved_at, closed_at, first_response_at, reopened, notes, messages_in, messages_out, last_seq"


def state_of(store: Store):
    con = store.connect()
    return con.execute(f"SELECT {COLUMNS} FROM tickets ORDER BY number").fetchall()


def rebuilt_state(store: Store, tmp_path):
    copy = tmp_path / "rebuilt"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store.root, copy)
    other = Store(copy)
    shutil.rmtree(copy / "snapshot")
    (copy / "snapshot").mkdir()
    other.rebuild()
    return state_of(other)


def test_snapshot_plus_tail_equals_full_fold(store, tmp_path):
    with store.writing(actor="user:a", via="t") as b:
        for i in range(5):
            create_ticket(b, f"t{i}", team="billing")
    store.refresh_snapshot()
    with store.writing(actor="user:a", via="t") as b:
        row = get_ticket(b, 2)
        set_fields(b, row, {"status": "resolved", "fields.order_id": "X"})
        tag(b, get_ticket(b, 3), ["vip"])
        create_ticket(b, "t5")
    assert len(store.read().tail) == 3
    assert state_of(store) == rebuilt_state(store, tmp_path)


ops = st.lists(st.tuples(
    st.sampled_from(["create", "status", "priority", "tag", "untag", "assign", "note", "snapshot", "field"]),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=10)), min_size=1, max_size=40)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_property_fold_of_log_equals_snapshot_plus_tail(tmp_path_factory, seq):
    tmp = tmp_path_factory.mktemp("prop")
    store = Store.init(tmp / "store")
    for op, n, k in seq:
        if op == "snapshot":
            store.refresh_snapshot()
            continue
        with store.writing(actor="user:p", via="prop") as b:
            if op == "create" or b.reader.max_ticket == 0:
                create_ticket(b, f"s{k}", priority=PRIORITIES[k % 4])
                continue
            row = get_ticket(b, 1 + (n - 1) % b.reader.max_ticket)
            if op == "status":
                set_fields(b, row, {"status": STATUSES[k % 5]})
            elif op == "priority":
                set_fields(b, row, {"priority": PRIORITIES[k % 4]})
            elif op == "tag":
                tag(b, row, [f"t{k % 3}"])
            elif op == "untag":
                tag(b, row, [], [f"t{k % 3}"])
            elif op == "assign":
                set_fields(b, row, {"assignee": ["ani", "budi", None][k % 3]})
            elif op == "field":
                set_fields(b, row, {"fields.order_id": None if k % 4 == 0 else f"INV-{k}"})
            else:
                b.emit("ticket.note", ticket=row["number"], data={"body": "n"})
    assert state_of(store) == rebuilt_state(store, tmp)


def test_rebuild_command_replaces_a_lost_snapshot(store, tix):
    for i in range(3):
        tix("new", f"ticket {i}", check=0)
    store.refresh_snapshot()
    before = state_of(store)
    shutil.rmtree(store.root / "snapshot")
    (store.root / "snapshot").mkdir()
    tix("rebuild", check=0)
    assert state_of(store) == before
    assert store.read().tail == []


def test_snapshot_refreshes_itself_when_the_tail_grows(tmp_path):
    store = Store.init(tmp_path / "s", config_text="settings:\n  snapshot_every: 10\n")
    with store.writing(actor="user:a", via="t") as b:
        for i in range(12):
            create_ticket(b, f"t{i}")
    r = store.read()
    assert r.meta is not None and r.meta["seq"] == 12 and r.tail == []
    assert state_of(store)[11][1] == "t11"


def test_delta_refresh_then_compaction(store, tmp_path, monkeypatch):
    import tix.store.reader as storemod

    monkeypatch.setattr(storemod, "COMPACT_MIN_ROWS", 3)
    with store.writing(actor="user:a", via="t") as b:
        for i in range(12):
            create_ticket(b, f"t{i}")
    first = store.refresh_snapshot()
    assert first["tickets_delta"] is None  # the first refresh writes a base
    with store.writing(actor="user:a", via="t") as b:
        set_fields(b, get_ticket(b, 2), {"priority": "high"})
    second = store.refresh_snapshot()
    assert second["tickets"] == first["tickets"] and second["tickets_delta"]  # only a delta was written
    assert state_of(store) == rebuilt_state(store, tmp_path)
    with store.writing(actor="user:a", via="t") as b:
        for n in (3, 4, 5, 6):
            set_fields(b, get_ticket(b, n), {"priority": "urgent"})
    third = store.refresh_snapshot()
    assert third["tickets_delta"] is None and third["tickets"] != first["tickets"]  # compacted
    assert state_of(store) == rebuilt_state(store, tmp_path)


def test_refresh_with_tickets_and_contacts_in_the_tail(tmp_path):
    from tix.tickets import ContactIndex, find_or_create_contact

    store = Store.init(tmp_path / "s", config_text="settings:\n  snapshot_every: 6\n")
    for round_ in range(3):
        with store.writing(actor="user:a", via="t") as b:
            index = ContactIndex()
            for i in range(4):
                cid = find_or_create_contact(b, index, name=f"c{round_}{i}", email=f"c{round_}{i}@x.example")
                create_ticket(b, f"t{round_}{i}", contact=cid)
    r = store.read()
    assert r.meta["max_contact"] == 12 and r.meta["max_ticket"] == 12
    assert state_of(store) == rebuilt_state(store, tmp_path)


def _copies_of_the_tail(monkeypatch) -> list:
    """Record each time a snapshot refresh reads the log's tail back (`_copy_tail`)."""
    import tix.store.reader as readermod

    calls: list = []
    copy = readermod._copy_tail

    def recorded(*args, **kwargs):
        calls.append(args[1:3])
        return copy(*args, **kwargs)
    monkeypatch.setattr(readermod, "_copy_tail", recorded)
    return calls


def test_bulk_update_refresh_writes_the_rows_it_folded(store, tix, tmp_path, monkeypatch):
    """Issue 16: after a large `tix update` the refresh writes the rows the update folded
    itself, without reading its events back from the log, and they equal a rebuild's."""
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 3"))
    store.reload_config()
    with store.writing(actor="user:a", via="t") as b:
        for i in range(10):
            create_ticket(b, f"t{i}", team="billing", status=STATUSES[i % 5], tags=["vip"] if i % 2 else [],
                          fields={"order_id": f"PO-{i}"} if i % 3 else {})
    store.refresh_snapshot()
    copies = _copies_of_the_tail(monkeypatch)
    ids = "\n".join(str(n) for n in range(1, 11)) + "\n"
    for args in (["--set", "status=open"],  # reopens the resolved and closed ones
                 ["--set", "status=resolved", "--set", "priority=urgent"],
                 ["--set", "status=closed", "--why", "done"],
                 ["--set", "order_id=X-1", "--set", "team=support"],
                 ["--set", "order_id=", "--add-tag", "checked", "--remove-tag", "vip"],
                 ["--note", "called back", "--set", "assignee=ani"]):
        tix("update", "--ids", "-", *args, "--yes", input=ids, check=0)
        reader = store.read()
        assert reader.tail == [] and reader.meta["seq"] == store.log.last_event()["seq"]
        assert copies == []  # the refresh wrote the folded rows: the log was not read back
        assert state_of(store) == rebuilt_state(store, tmp_path), args
    closed = [e for e in store.events_for(ticket=4) if e["type"] == "ticket.updated"
              and e["data"]["set"].get("status") == "closed"]
    assert [(e["why"], e["via"], e["actor"].startswith("user:")) for e in closed] == [("done", "tix update", True)]


def test_refresh_reads_the_log_when_the_batch_did_not_fold_it_all(store, tmp_path, monkeypatch):
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 2"))
    store.reload_config()
    with store.writing(actor="user:a", via="t") as b:
        for i in range(4):
            create_ticket(b, f"t{i}", status="resolved" if i % 2 else "open")
    store.refresh_snapshot()
    copies = _copies_of_the_tail(monkeypatch)
    with store.writing(actor="user:a", via="t") as b:  # a row without what the fold of a status reads
        for n in (1, 2, 3):
            b.fold_onto({"number": n, "status": b.reader.ticket(n)["status"]})
            set_fields(b, get_ticket(b, n), {"status": "closed"})
    assert b.folded is None and len(copies) == 1
    assert state_of(store) == rebuilt_state(store, tmp_path)
    with store.writing(actor="user:a", via="t") as b:
        set_fields(b, get_ticket(b, 1), {"priority": "low"})  # a tail before the folded part
    with store.writing(actor="user:a", via="t") as b:
        for n in (2, 3):
            row = get_ticket(b, n)
            b.fold_onto(row)
            set_fields(b, row, {"priority": "high"})
    # the tail before the batch was folded from the log (up to the batch), the batch's rows as folded
    assert b.folded is not None and len(copies) == 2 and copies[-1][1] == b.start
    assert store.read().tail == []
    assert state_of(store) == rebuilt_state(store, tmp_path)
    with store.writing(actor="user:a", via="t") as b:  # a ticket the snapshot does not have yet
        b.fold_onto({"number": 9, "priority": None})
        b.emit("ticket.updated", ticket=9, data={"set": {"priority": "low"}, "old": {}})
        b.fold_onto({"number": 4, "priority": "normal"})
        b.emit("ticket.updated", ticket=4, data={"set": {"priority": "low"}, "old": {}})
    assert b.folded is not None and len(copies) == 3  # its row could not be joined: the log was read
    assert state_of(store) == rebuilt_state(store, tmp_path)


def test_rebuild_in_parts_equals_one_fold_and_leaves_no_working_file(store, tmp_path, monkeypatch):
    """`tix rebuild` folds tickets in ranges of numbers, in a working database under state/:
    any number of parts gives the same rows, and the working file is gone afterwards."""
    import tix.store.store as storemod

    with store.writing(actor="user:a", via="t") as b:
        for i in range(9):
            create_ticket(b, f"t{i}", team="billing")
    with store.writing(actor="user:a", via="t") as b:
        for n in (2, 5, 9):
            set_fields(b, get_ticket(b, n), {"status": "resolved", "fields.order_id": f"X{n}"})
            tag(b, get_ticket(b, n), ["vip"])
    one = rebuilt_state(store, tmp_path)
    monkeypatch.setattr(storemod, "REBUILD_PART_EVENTS", 4)  # 24 events: 6 parts
    assert rebuilt_state(store, tmp_path) == one
    assert not list((tmp_path / "rebuilt" / "state").glob("rebuild-*"))


def test_a_killed_rebuilds_working_database_is_removed(store):
    from tix.store.files import clean_stale

    dead = store.path("state", "rebuild-999999999.duckdb")
    dead.write_bytes(b"x")
    store.path("state", "rebuild-999999999.duckdb.wal").write_bytes(b"x")
    assert clean_stale(store.root) == 2
    assert not list(store.path("state").glob("rebuild-*"))


def test_rebuild_folds_contacts_as_the_python_fold_does(store, tmp_path):
    """Plain creations are taken in SQL by `tix rebuild` (`sqlfold.plain_contacts_sql`), the
    rest by the Python fold: both give what the fold of the tail gives, row for row."""
    created = [
        {"name": "Ani", "emails": ["a@x.example"], "phones": [], "fields": {}},
        {"name": "Budi", "emails": ["b@x.example", "b2@x.example", "b@x.example"], "phones": ["62811", "62811"]},
        {"name": None, "phones": ["62812"], "fields": None},
        {"name": "Çitra 😀", "emails": [], "phones": [], "fields": {"tier": "gold", "a": 1}},
        {},
        {"name": "Dewi", "emails": ["d@x.example"]},  # updated below
        {"name": "Eko", "emails": ["e@x.example"]},  # merged below
        {"name": "Fajar", "emails": ["f@x.example"], "fields": {"x": "y"}},  # erased below
        {"name": "Gita", "emails": "g@x.example"},  # not a list: left to the Python fold
    ]
    with store.writing(actor="user:a", via="t") as b:
        for i, data in enumerate(created, start=1):
            b.emit("contact.created", contact=i, data=data)
        b.emit("contact.updated", contact=6, data={"set": {"name": "Dewi S", "fields.vip": True},
                                                   "add_emails": ["d2@x.example"], "remove_emails": ["d@x.example"]})
        b.emit("contact.merged", contact=7, data={"into": 1})
        b.emit("contact.erased", contact=8)
        b.emit("contact.updated", contact=10, data={"add_phones": ["62813"]})  # no creation
    cols = "id, name, emails, phones, fields, merged_into, created_at, updated_at"
    folded = store.connect().execute(f"SELECT {cols} FROM contacts ORDER BY id").fetchall()
    assert len(store.read().tail) == len(created) + 4  # folded in Python, from the log
    copy = tmp_path / "rebuilt"
    shutil.copytree(store.root, copy)
    other = Store(copy)
    other.rebuild()
    assert other.read().tail == []
    assert other.connect().execute(f"SELECT {cols} FROM contacts ORDER BY id").fetchall() == folded
    assert other.read().meta["max_contact"] == 10
