"""The first `tix escalate` on a store (issue 16): what makes it cheaper keeps its output."""
from __future__ import annotations

import orjson

from tests.plugins.sla import jkt
from tix.sla.escalate import escalate


def test_the_closed_part_keeps_dictionaries_for_strings_only(sla_store, timeline):
    """Times and seconds are nearly all distinct: no dictionary is tried on them (half the
    write); statuses, policies and states keep theirs. The rows read back are the rows."""
    import pyarrow.parquet as pq

    for i in range(6):
        n = timeline.create(jkt(2026, 11, 23, 9, i))
        timeline.reply(n, jkt(2026, 11, 23, 9, 30 + i))
        timeline.status(n, jkt(2026, 11, 23, 10, i), "closed" if i % 2 else "resolved")
    open_one = timeline.create(jkt(2026, 11, 23, 11, 0))
    escalate(sla_store, now=jkt(2026, 11, 24, 9, 0))
    folder = sla_store.path("snapshot", "sla")
    meta = orjson.loads((folder / "sla-meta.json").read_bytes())
    (part,) = meta["done"]
    md = pq.ParquetFile(folder / part).metadata
    enc = {md.schema.column(i).path: set(md.row_group(0).column(i).encodings) for i in range(md.num_columns)}
    dictionary = {path for path, e in enc.items() if any("DICTIONARY" in x for x in e)}
    assert {"status", "policy", "v_fr_state", "v_res_state"} <= dictionary
    assert not dictionary & {"created", "fr_met", "v_fr_due", "v_fr_bsec", "ticket"}
    rows = sla_store.connect().execute("SELECT ticket, target, state FROM sla ORDER BY ticket, target").fetchall()
    assert {r[0] for r in rows} == set(range(1, 7)) | {open_one}
    assert {r[2] for r in rows if r[0] != open_one and r[1] == "first_response"} == {"met"}


def test_every_clock_state_from_a_first_run(sla_store, timeline):
    """The states (computed as codes, then named): met, warning, ok, paused, stopped, breached."""
    met = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.reply(met, jkt(2026, 11, 23, 9, 30))
    warning = timeline.create(jkt(2026, 11, 23, 9, 0))  # 6.5 of 8 office hours at 16:30
    ok = timeline.create(jkt(2026, 11, 23, 11, 0))  # 4.5 h
    paused = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.status(paused, jkt(2026, 11, 23, 10, 0), "pending")
    stopped = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.status(stopped, jkt(2026, 11, 23, 10, 0), "closed")
    breached = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")  # 1 h, 24/7
    escalate(sla_store, now=jkt(2026, 11, 23, 16, 30), flush_outbox=False)
    rows = dict(sla_store.connect().execute(
        "SELECT ticket, state FROM sla WHERE target = 'first_response'").fetchall())
    assert rows == {met: "met", warning: "warning", ok: "ok", paused: "paused", stopped: "stopped",
                    breached: "breached"}
    assert sla_store.connect().execute("SELECT count(*) FROM sla WHERE target = 'next_response'").fetchone() == (0,)


def test_no_policy_and_no_state_folds_nothing_and_still_sends_notifications(store, smtp_sink, monkeypatch):
    """Issue 16: with no `sla:` policies, the first `tix escalate` at a million tickets still
    folded the whole log (10 s, 789 MB) to compute no clock. With no policy and no state saved
    by an earlier configuration, nothing is folded or written; queued notifications are still
    sent. A policy added later makes the next run a first run, as ever."""
    from tests.plugins.sla import SLA_YAML, Timeline, use_smtp
    from tix.outbox.enqueue import notify
    from tix.sla import coldfold, state

    use_smtp(store, smtp_sink.port)
    timeline = Timeline(store)
    late = timeline.create(jkt(2026, 11, 2, 9, 0))  # weeks old, never answered
    with store.writing(actor="user:ani", via="test") as batch:
        notify(batch, kind="email", target="lead@example.co.id", subject="Rapat", body="Jam 10", key="test:rapat",
               ticket=late)
    end = store.log.end()

    def no_fold(*a, **k):
        raise AssertionError("the log was folded")

    monkeypatch.setattr(coldfold, "fold_log", no_fold)
    monkeypatch.setattr(state, "fold_log", no_fold)
    report = escalate(store, now=jkt(2026, 11, 24, 9, 0))
    assert report.unwatched and report.ok and not report.planned
    assert not store.path("snapshot", "sla").exists()
    assert [rcpt for rcpt, _msg in smtp_sink.messages] == [["lead@example.co.id"]]
    written = [e["type"] for e, *_ in store.log.read(end)]
    assert written and not [t for t in written if not t.startswith("outbox.")]  # the send, nothing of SLA
    monkeypatch.undo()
    path = store.path("tix.yaml")
    path.write_text(path.read_text(encoding="utf-8") + SLA_YAML, encoding="utf-8")
    store.reload_config()
    report = escalate(store, now=jkt(2026, 11, 24, 9, 0))
    assert not report.unwatched and report.cold and store.path("snapshot", "sla", "sla-meta.json").exists()
    assert report.open_tickets == 1


def test_the_closed_part_is_written_while_the_next_chunk_is_computed(sla_store):
    """`write_part` writes each chunk in a thread while the caller computes the next: the part
    holds every chunk in order; a chunk that fails to compute, or to write, ends it with that
    error after the write in flight, and leaves no file behind (nor a part listed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from tix.sla.state import SlaState, schema

    def chunk(numbers):
        return pa.Table.from_pylist([{"ticket": n, "status": "closed", "rev": 0} for n in numbers], schema=schema())

    st = SlaState(sla_store)
    st.seq, st.rev = 7, 3
    st.write_part(iter([chunk([1, 2]), chunk([3]), chunk([4, 5, 6])]))
    assert st.parts == ["sla-done-7-closed.parquet"]
    back = pq.read_table(st.dir / st.parts[0])
    assert back["ticket"].to_pylist() == [1, 2, 3, 4, 5, 6] and set(back["rev"].to_pylist()) == {3}

    def failing(second, fail: bool):
        yield chunk([10, 11])
        yield second
        if fail:
            raise RuntimeError("computing the next chunk failed")
        yield chunk([13])

    for second, fail, error in ((chunk([12]), True, RuntimeError),
                                (chunk([12]).drop_columns(["policy"]), False, ValueError)):  # not the part's schema
        st = SlaState(sla_store)
        st.seq, st.rev = 8, 4
        with pytest.raises(error):
            st.write_part(failing(second, fail))
        assert st.parts == [] and sorted(p.name for p in st.dir.iterdir()) == ["sla-done-7-closed.parquet"]
