"""Shared fixtures: every test gets its own store in a temp dir, pointed at by TIX_STORE.

Two ways to run the CLI:

* `tix(...)` runs `tix.cli.main()` in this process (Typer's `CliRunner` isolation: argv,
  stdin, stdout, stderr and the environment are swapped in and restored), which is what
  nearly every CLI test needs; starting an interpreter per call cost the suite minutes.
* `tix_proc(...)` runs `python -m tix` in a new process, for tests where the process is the
  point: kill -9, a lock held by another process, a terminal, signals, the entry point.

Both return an object with `.returncode`, `.stdout` and `.stderr` (text).
"""
from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tix.store import Store

pytest_plugins = [f"tests.plugins.{name}" for name in ("email", "rules", "sla", "reports", "whatsapp")]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def env_setup(tmp_path, monkeypatch):
    """No test may touch a real store: TIX_STORE points into the test's temp dir."""
    monkeypatch.setenv("TIX_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("TIX_LOCK_TIMEOUT", "10")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # compiled templates, parsed YAML
    monkeypatch.delenv("TIX_ACTOR", raising=False)


@pytest.fixture
def store(tmp_path) -> Store:
    """A fresh store created by `tix init` with the example tix.yaml."""
    return Store.init(tmp_path / "store")


@dataclass
class Result:
    """What a finished `tix` run left: the shape of subprocess.CompletedProcess the tests use."""

    args: list
    returncode: int
    stdout: str
    stderr: str


def run_in_process(args, input=None, env=None) -> Result:
    """`tix ARGS` in this process, as the console entry point runs it (`tix.cli.main`).

    `env` is set for the run and restored after it (a None value unsets the variable).

    The exit code is main()'s `sys.exit` code; an exception that escapes main() is printed
    as a traceback on stderr with exit code 1, as the interpreter would.
    """
    from typer.testing import CliRunner

    from tix.cli import main

    argv, hook = sys.argv, sys.excepthook  # Typer installs its own excepthook when called
    with CliRunner().isolation(input=input, env=env) as (out, err, _):
        sys.argv = ["tix", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:  # as the interpreter exits: None is 0, an int is itself, text is 1
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
            if code == 1 and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except Exception:  # noqa: BLE001 - an exception escaping main() ends the process: traceback, 1
            traceback.print_exc()
            code = 1
        finally:
            sys.argv, sys.excepthook = argv, hook
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    return Result([*args], code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))


def run_process(args, input=None, env=None) -> Result:
    """`python -m tix ARGS` in a new interpreter (the environment is this one's plus `env`; None unsets)."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    proc = subprocess.run([sys.executable, "-m", "tix", *args], input=input, capture_output=True,
                          text=True, env=full_env, timeout=120)
    return Result(proc.args, proc.returncode, proc.stdout, proc.stderr)


def _runner(store, how):
    def run(*args, input=None, env=None, check=None):
        result = how(args, input=input, env={"TIX_STORE": str(store.root), **(env or {})})
        if check is not None:
            assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
        return result

    return run


@pytest.fixture
def tix(store):
    """Run the real CLI in this process: tix("list", "--format", "json") -> Result."""
    return _runner(store, run_in_process)


@pytest.fixture
def tix_proc(store):
    """Run the real CLI as `python -m tix` in a new process (crash, lock, signal and terminal tests)."""
    return _runner(store, run_process)
