"""The one atomic write: `atomic_write` for bytes, `commit_temp` for files a library writes itself."""
from __future__ import annotations

import os
import stat

import pytest

from tix import tickets
from tix.store.files import FILE_MODE, commit_temp, temp_name


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_commit_temp_replaces_with_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "t.parquet"
    target.write_bytes(b"old")
    tmp = temp_name(target)
    tmp.write_bytes(b"new")  # as pyarrow would, by the umask
    assert commit_temp(tmp, target, mode=FILE_MODE) == target
    assert target.read_bytes() == b"new" and _mode(target) == FILE_MODE
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_commit_temp_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "x").write_text("keep")  # a non-empty directory cannot be replaced by a file
    tmp = temp_name(target)
    tmp.write_bytes(b"new")
    with pytest.raises(OSError):
        commit_temp(tmp, target)
    assert (target / "x").read_text() == "keep" and not tmp.exists()


def test_snapshot_and_sla_state_files_are_store_files(sla_store):
    from tix.sla.escalate import escalate

    store = sla_store
    old = os.umask(0o022)  # a library writing by the umask would leave 0644
    try:
        with store.writing(actor="user:ani") as batch:
            tickets.create_ticket(batch, "a ticket", priority="urgent")
        store.rebuild()
        escalate(store, flush_outbox=False)
    finally:
        os.umask(old)
    written = [p for p in store.path("snapshot").rglob("*") if p.is_file()]
    assert {p.parent.name for p in written if p.suffix == ".parquet"} == {"snapshot", "sla"}
    assert {p.name: _mode(p) for p in written} == {p.name: FILE_MODE for p in written}
    assert not [p for p in written if p.name.endswith(".tmp")]
