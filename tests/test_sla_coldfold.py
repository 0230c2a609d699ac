"""The SQL cold fold (tix.sla.coldfold) and the event-by-event fold (tix.sla.clock) agree."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tix.sla.clock import Track
from tix.sla.coldfold import fold_log, track_schema
from tix.sla.state import SlaState, tracks_to_arrow
from tix.store import Store
from tix.store.log import iso

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
STATUSES = ("new", "open", "pending", "resolved", "closed")

event = st.one_of(
    st.tuples(st.just("ticket.updated"), st.sampled_from(STATUSES)),
    st.tuples(st.just("ticket.updated"), st.just(None)),  # a change that is not a status
    st.tuples(st.just("message.received"), st.booleans()),  # True: an automatic message (out of office)
    st.tuples(st.just("message.sent"), st.booleans()),  # True: an auto-reply
    st.tuples(st.just("sla.step"), st.sampled_from(["k1", "k2"])),
    st.tuples(st.just("ticket.note"), st.none()),
)
ticket_story = st.tuples(st.sampled_from(STATUSES[:3] + ("resolved",)),
                         st.lists(st.tuples(event, st.integers(0, 7200)), max_size=14))


def _write(store: Store, stories, first: int = 1, t0: datetime = T0, more=()) -> None:
    """Each story as a ticket numbered from `first`; `more`: events for ticket 1 after them."""
    with store.writing(actor="system", via="test") as batch:
        t = t0
        todo = [(number, initial, events) for number, (initial, events) in enumerate(stories, start=first)]
        if more:
            todo.append((1, None, more))
        for number, initial, events in todo:
            if initial is not None:
                batch.emit("ticket.created", ticket=number, data={"status": initial, "subject": "x"}, ts=iso(t))
            for (kind, arg), gap in events:
                t += timedelta(seconds=gap)
                if kind == "ticket.updated":
                    data = {"set": {"status": arg}} if arg else {"set": {"priority": "high"}}
                elif kind in ("message.sent", "message.received"):
                    data = {"auto": True} if arg else {}
                elif kind == "sla.step":
                    data = {"key": f"{number}:{arg}"}
                else:
                    data = {}
                batch.emit(kind, ticket=number, data=data, ts=iso(t))


def _normal(rows):
    for r in rows:
        r["keys"] = sorted(r["keys"])
    return rows


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(stories=st.lists(ticket_story, min_size=1, max_size=4))
def test_sql_fold_equals_event_by_event_fold(stories):
    root = Path(tempfile.mkdtemp(prefix="tix-coldfold-"))
    try:
        store = Store.init(root / "store")
        _write(store, stories)
        table, pos, seq = fold_log(store)
        ref = SlaState(store)
        ref.fold_all()
        assert (pos, seq) == (ref.pos, ref.seq)
        expected = tracks_to_arrow(ref.tracks.values()).sort_by("ticket").to_pylist()
        assert _normal(table.to_pylist()) == _normal(expected)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(stories=st.lists(ticket_story, min_size=2, max_size=7), chunk=st.integers(1, 12))
def test_sql_fold_by_ranges_of_tickets_equals_event_by_event_fold(stories, chunk):
    """The windows run per range of ticket numbers (issue 16: bounded memory); with ranges of a
    few events each, every ticket still folds whole and the tracks come out in ticket order."""
    root = Path(tempfile.mkdtemp(prefix="tix-coldfold-"))
    try:
        store = Store.init(root / "store")
        _write(store, stories)
        table, _pos, _seq = fold_log(store, chunk_events=chunk)
        ref = SlaState(store)
        ref.fold_all()
        expected = tracks_to_arrow(ref.tracks.values()).sort_by("ticket").to_pylist()
        assert _normal(table.to_pylist()) == _normal(expected)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_empty_log():
    root = Path(tempfile.mkdtemp(prefix="tix-coldfold-"))
    try:
        store = Store.init(root / "store")
        table, _pos, seq = fold_log(store)
        assert table.num_rows == 0 and seq == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_track_columns_are_the_track_fields_in_order():
    assert track_schema().names == [f.name for f in fields(Track)]


def test_the_cold_fold_does_not_depend_on_the_sla_state(tmp_path):
    """tix.sla.state uses the cold fold; the cold fold must not need the state (no import cycle)."""
    Store.init(tmp_path / "s")
    code = ("import sys; from tix.store import Store; from tix.sla.coldfold import fold_log; "
            "fold_log(Store(sys.argv[1])); print(sorted(m for m in sys.modules if m.startswith('tix.sla.')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['tix.sla.coldfold']"


def _without_gen(rows):
    return [{k: v for k, v in r.items() if k != "gen"} for r in _normal(rows)]


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(stories=st.lists(ticket_story, min_size=1, max_size=5), later=st.lists(ticket_story, max_size=2),
       more=st.lists(st.tuples(event, st.integers(0, 7200)), max_size=6), chunk=st.integers(1, 12))
def test_cold_fold_from_the_history_cache_equals_event_by_event_fold(stories, later, more, chunk):
    """Issue 16: the cold start reads the ticket history cache (Parquet) and only the `sla.*`
    lines and the events after the cache from the JSON log; the tracks are the same as the
    event-by-event fold's, but for `gen` (the seq of the last event in the cache or with a key,
    never above the event-by-event fold's: later events still have higher seqs)."""
    from tix.sla import coldfold
    from tix.store.history import History

    root = Path(tempfile.mkdtemp(prefix="tix-coldfold-"))
    try:
        store = Store.init(root / "store")
        _write(store, stories)
        History(store).build()
        if later or more:  # events after the cache (new tickets, and more of ticket 1): read from the log
            _write(store, later, first=len(stories) + 1, t0=T0 + timedelta(days=2), more=more)
        used = []
        original = coldfold._raw_from_history

        def spy(*args):
            used.append(original(*args))
            return used[-1]

        coldfold._raw_from_history = spy
        try:
            table, pos, seq = fold_log(store, chunk_events=chunk)
        finally:
            coldfold._raw_from_history = original
        assert used == [True]
        ref = SlaState(store)
        ref.fold_all()
        assert (pos, seq) == (ref.pos, ref.seq)
        expected = tracks_to_arrow(ref.tracks.values()).sort_by("ticket").to_pylist()
        got = table.to_pylist()
        assert _without_gen(got) == _without_gen(expected)
        assert all(g["gen"] <= e["gen"] for g, e in zip(got, expected, strict=True))
        from_log, _, _ = fold_log(store, chunk_events=chunk, history=False)
        assert _without_gen(from_log.to_pylist()) == _without_gen(got)
    finally:
        shutil.rmtree(root, ignore_errors=True)



def test_cold_fold_reads_odd_data_as_the_event_by_event_fold_does(tmp_path):
    """The JSON log is read with only four fields of `data` (status, set, auto, key), each as a
    JSON fragment: values of other types than usual, fields missing or null, fields that make
    no sense for the event's type, text that looks like a field, `data` null or absent and a
    line that is not JSON (skipped) fold as the event-by-event fold folds them, from the log
    and from the history cache."""
    import orjson

    from tix.store.history import History

    store = Store.init(tmp_path / "s")
    stamps = iter(range(10_000))

    def at() -> str:
        return iso(T0 + timedelta(minutes=7 * next(stamps)))

    with store.writing(actor="system", via="test") as b:
        b.emit("ticket.created", ticket=1, data={"subject": "no status: new"}, ts=at())
        b.emit("message.received", ticket=1, data={"auto": None, "text": '"auto":true'}, ts=at())
        b.emit("message.sent", ticket=1, data={"auto": "true"}, ts=at())  # a string: automatic
        b.emit("message.sent", ticket=1, data={"auto": 1}, ts=at())  # automatic
        b.emit("message.received", ticket=1, data={"auto": {}, "set": "x", "status": [1]}, ts=at())
        b.emit("message.sent", ticket=1, data={"auto": 0, "key": {"k": 1}}, ts=at())  # a reply
        b.emit("message.received", ticket=1, data={"auto": ""}, ts=at())
        b.emit("message.sent", ticket=1, data={"auto": True}, ts=at())
        b.emit("ticket.created", ticket=2, data={"status": "open", "set": {"status": "closed"}}, ts=at())
        b.emit("message.received", ticket=2, data={}, ts=at())
        b.emit("message.sent", ticket=2, data={"text": 'x", "auto": true, "y": "'}, ts=at())
        b.emit("ticket.updated", ticket=2, data={}, ts=at())  # no `set`: no change of status
        b.emit("ticket.updated", ticket=2, data={"set": None}, ts=at())
        b.emit("ticket.updated", ticket=2, data={"set": {"status": None, "priority": "high"}}, ts=at())
        b.emit("ticket.updated", ticket=2, data={"old": {"status": "open"}, "set": {"status": "pending"},
                                                 "auto": [1, 2], "key": {"a": 1}, "status": "closed"}, ts=at())
        b.emit("message.received", ticket=2, data={"text": '{"set": {"status": "closed"}}'}, ts=at())
        b.emit("ticket.updated", ticket=2, data={"set": {"team": "billing", "status": "resolved"}}, ts=at())
        b.emit("ticket.created", ticket=3, data={"status": "new"}, ts=at())
        b.emit("sla.step", ticket=3, data={}, ts=at())  # no key
        b.emit("sla.step", ticket=3, data={"key": None}, ts=at())
        b.emit("sla.breached", ticket=3, data={"key": "3:a", "auto": {"x": 1}, "set": [1]}, ts=at())
        b.emit("sla.step", ticket=3, data={"key": "3:a"}, ts=at())  # again: kept once
        b.emit("sla.step", ticket=4, data={"key": "4:b", "status": "closed"}, ts=at())  # a ticket with only a key
        b.emit("ticket.note", ticket=3, data={"set": {"status": "closed"}}, ts=at())  # not a tracked type
    seg = store.log.dir / store.log.segments()[-1]
    seq = store.log.end() and orjson.loads(seg.read_bytes().splitlines()[-1])["seq"]
    with open(seg, "ab") as fh:  # committed lines written by hand: one not JSON, `data` null or absent
        fh.write(b"not json at all {\n")
        for n, (kind, ticket, data) in enumerate([("message.received", 3, b',"data":null'),
                                                   ("message.sent", 3, b""),
                                                   ("message.received", 1, b',"data":{"auto":false}')], start=1):
            fh.write(b'{"seq":%d,"ts":"%s","actor":"system","via":"test","type":"%s","ticket":%d%s,"commit":true}\n'
                     % (seq + n, at().encode(), kind.encode(), ticket, data))
    ref = SlaState(store)
    ref.fold_all()
    expected = _normal(tracks_to_arrow(ref.tracks.values()).sort_by("ticket").to_pylist())
    assert [r["ticket"] for r in expected] == [1, 2, 3, 4] and expected[2]["keys"] == ["3:a"]
    table, pos, upto = fold_log(store, history=False)
    assert (pos, upto) == (ref.pos, ref.seq) == (store.log.end(), seq + 3)
    assert _normal(table.to_pylist()) == expected
    History(store).build()
    table, _pos, _upto = fold_log(store)
    assert _without_gen(table.to_pylist()) == _without_gen(expected)


@pytest.mark.parametrize("span", [50, 65_536, 65_537, 10**9])
def test_events_of_a_range_are_put_in_ticket_and_log_order(span):
    """`_in_order` sorts a range's events (DuckDB hands them out in no set order) by ticket,
    then seq: by two stable sorts when the tickets span fewer than 65536 numbers, by lexsort
    beyond; both are checked on rows in random order, tickets at both ends of the span."""
    import random

    import pyarrow as pa

    from tix.sla.coldfold import _in_order

    rng = random.Random(span)
    tickets = [7, 7 + span - 1] + [rng.randrange(7, 7 + span) for _ in range(300)]
    rows = [(rng.choice(tickets), seq) for seq in rng.sample(range(1, 10**12), 2000)]
    events = pa.table({"ticket": pa.array([r[0] for r in rows], pa.int64()),
                       "seq": pa.array([r[1] for r in rows], pa.int64()),
                       "k": pa.array([r[1] % 6 for r in rows], pa.int8())})
    out = _in_order(events)
    assert list(zip(out["ticket"].to_pylist(), out["seq"].to_pylist(), strict=True)) == sorted(rows)
    assert out["k"].to_pylist() == [seq % 6 for _t, seq in sorted(rows)]
