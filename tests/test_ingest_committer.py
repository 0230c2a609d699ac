"""The intake's committer: a chunk is made durable (files synced, events appended and fsynced)
and then acknowledged in a thread of its own, while the next chunk is taken in (issue 16).
The order per chunk stays: durable first, acknowledged after; a chunk whose write fails
fails the run, and nothing after it is written or acknowledged."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import orjson
import pytest

from tests.plugins.email import make_mail, maildir_source
from tix.channels.mail.maildir import MaildirSource
from tix.errors import StoreWriteError
from tix.ingest import fetch_all
from tix.ingest.mail import MailStep
from tix.store.log import EventLog

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


def received(store) -> list[str]:
    """The Message-IDs of the `message.received` events, in log order (committed lines)."""
    out = []
    for raw, _s, _o in store.log.read_raw():
        ev = orjson.loads(raw)
        if ev["type"] == "message.received":
            out.append(ev["data"]["message_id"])
    return out


@pytest.fixture
def md(store, tmp_path):
    """A maildir source reading two messages a chunk, holding six messages."""
    root = maildir_source(store, tmp_path / "maildir", extra="    batch: 2\n")
    for i in range(1, 7):
        (root / "new" / f"{i:05d}.test").write_bytes(
            make_mail(msgid=f"<m{i}@x>", frm=f"Pelanggan {i} <p{i}@pelanggan.example>"))
    return store


def msgid(item) -> str:
    return f"<m{int(item.key.rsplit(':', 1)[1].split('.')[0])}@x>"


def test_a_chunk_is_acknowledged_after_its_events_are_in_the_log_while_the_next_is_taken_in(md, monkeypatch):
    taken, next_taken, seen_at_ack = [], threading.Event(), []
    main = threading.current_thread()
    real_take, real_ack = MailStep.take, MaildirSource.ack

    def take(self, item, parsed, spec, replay=False):
        taken.append(msgid(item))
        if len(taken) == 3:  # the first message of the second chunk
            next_taken.set()
        return real_take(self, item, parsed, spec, replay)

    def ack(self, items):
        if not seen_at_ack:  # the first chunk: acknowledged while the second one is taken in
            seen_at_ack.append(("overlap", next_taken.wait(10), threading.current_thread() is main))
        seen_at_ack.append((tuple(msgid(it) for it in items), tuple(received(md))))
        return real_ack(self, items)

    monkeypatch.setattr(MailStep, "take", take)
    monkeypatch.setattr(MaildirSource, "ack", ack)
    rep = fetch_all(md, now=NOW)
    assert (rep.stored, rep.errors) == (6, [])
    assert seen_at_ack[0] == ("overlap", True, False)
    acks = seen_at_ack[1:]
    assert [a for a, _ in acks] == [("<m1@x>", "<m2@x>"), ("<m3@x>", "<m4@x>"), ("<m5@x>", "<m6@x>")]
    for chunk, in_log in acks:  # each chunk's events were committed before its acknowledgement
        assert set(chunk) <= set(in_log)
    assert received(md) == [f"<m{i}@x>" for i in range(1, 7)]
    assert sorted(p.name.split(":2,")[0] for p in (md.md / "cur").iterdir()) == [f"{i:05d}.test" for i in range(1, 7)]


def test_a_chunk_whose_write_fails_fails_the_run_and_nothing_after_it_is_written(md, monkeypatch):
    real_append, commits = EventLog.append, []

    def append(self, data, segment, sync=True):
        if sync and data:
            commits.append(segment)
            if len(commits) == 2:  # the second chunk's events: the disk is full
                raise StoreWriteError("cannot write events/x.jsonl: no space left on the device")
        return real_append(self, data, segment, sync)

    monkeypatch.setattr(EventLog, "append", append)
    with pytest.raises(StoreWriteError):
        fetch_all(md, now=NOW)
    assert received(md) == ["<m1@x>", "<m2@x>"]  # the third chunk was taken in, and never written
    assert len(commits) == 2
    acked = sorted(p.name.split(":2,")[0] for p in (md.md / "cur").iterdir())
    assert acked == ["00001.test", "00002.test"]  # the failed chunk and the one after stay at the source
    monkeypatch.setattr(EventLog, "append", real_append)
    rep = fetch_all(md, now=NOW)  # once there is space: each message once, the numbers without a gap
    assert (rep.stored, rep.duplicates, rep.errors) == (4, 0, [])
    assert received(md) == [f"<m{i}@x>" for i in range(1, 7)]
    created = [orjson.loads(raw) for raw, _s, _o in md.log.read_raw()]
    assert [e["ticket"] for e in created if e["type"] == "ticket.created"] == [1, 2, 3, 4, 5, 6]


def test_a_failed_acknowledgement_is_the_source_s_error_and_what_was_taken_in_is_stored(md, monkeypatch):
    real_ack, acks = MaildirSource.ack, []

    def ack(self, items):
        acks.append(len(items))
        if len(acks) == 2:
            raise OSError(5, "Input/output error")
        return real_ack(self, items)

    monkeypatch.setattr(MaildirSource, "ack", ack)
    rep = fetch_all(md, now=NOW)
    assert len(rep.errors) == 1 and rep.errors[0].startswith("source inbox: OSError"), rep.errors
    stored = received(md)
    assert stored[:4] == ["<m1@x>", "<m2@x>", "<m3@x>", "<m4@x>"]  # durable before the acknowledgement
    monkeypatch.setattr(MaildirSource, "ack", real_ack)
    rep = fetch_all(md, now=NOW)  # the messages not acknowledged: known, not stored again
    assert rep.errors == [] and rep.stored == 6 - len(stored)
    assert received(md) == [f"<m{i}@x>" for i in range(1, 7)]
