"""Run a command line through a real shell (`bash -c`), as a person or cron would type it.

`tix` inside the line is this checkout's tix (`python -m tix` with the test's interpreter),
so pipes, `&&`, redirections and quoting behave exactly as they would for a user.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PRELUDE = 'tix() { "$TIX_TEST_PYTHON" -m tix "$@"; }\n'


def sh(line: str, cwd: Path, env: dict | None = None, timeout: float = 120, input: str | None = None):
    """`bash -c LINE` in `cwd` -> CompletedProcess (text). `env` adds to (None: removes from) os.environ."""
    full = {**os.environ, "TIX_TEST_PYTHON": sys.executable, **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(["bash", "-c", PRELUDE + line], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout, input=input)


def files(directory: Path) -> set[str]:
    """Every path below `directory`, relative to it (what a command left behind)."""
    return {str(p.relative_to(directory)) for p in Path(directory).rglob("*")}
