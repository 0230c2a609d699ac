"""Shared fixtures: every test gets its own store in a temp dir, pointed at by TIX_STORE."""
from __future__ import annotations

import os
import subprocess
import sys
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
    monkeypatch.delenv("TIX_ACTOR", raising=False)


@pytest.fixture
def store(tmp_path) -> Store:
    """A fresh store created by `tix init` with the example tix.yaml."""
    return Store.init(tmp_path / "store")


@pytest.fixture
def tix(store):
    """Run the real CLI in a subprocess: tix("list", "--format", "json") -> CompletedProcess."""

    def run(*args, input=None, env=None, check=None):
        full_env = dict(os.environ, TIX_STORE=str(store.root), **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "tix", *args], input=input, capture_output=True,
                              text=True, env=full_env, timeout=120)
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run
