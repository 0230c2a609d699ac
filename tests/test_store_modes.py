"""File modes are decided once (issue 12, finding 7; DESIGN invariant 10).

Under umask 022, snapshot Parquet files, the mail index, quarantine items and WhatsApp media
were world-readable while events were 0640. After a full `tix demo` run (fetch of mail and
WhatsApp, quarantine, route, escalate, a report) every directory is 0750 (setgid, so files
keep the store's group), every file 0640, and secrets and caches 0600.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys


def test_no_path_of_a_demo_store_is_world_readable(tmp_path):
    env = dict(os.environ)
    env.pop("TIX_STORE", None)
    proc = subprocess.run(["sh", "-c", f"umask 022 && exec {sys.executable} -m tix demo --dir demo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "demo"
    seen = {"dirs": 0, "files": 0, "private": 0}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert not mode & 0o007, f"{path.relative_to(tmp_path)} is {oct(mode)}: readable by others"
        if path.is_dir():
            assert mode & 0o777 == 0o750 and mode & stat.S_ISGID, f"{path}: {oct(mode)}"
            seen["dirs"] += 1
        elif mode == 0o600:
            seen["private"] += 1
        else:
            assert mode == 0o640, f"{path.relative_to(tmp_path)} is {oct(mode)}"
            seen["files"] += 1
    assert seen["dirs"] > 10 and seen["files"] > 50
    assert list(root.glob("quarantine/*/*")) and list(root.glob("snapshot/**/*.parquet"))
