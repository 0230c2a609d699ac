"""`security: plain` only for a loopback relay (issue 12, finding 8).

It was accepted for remote hosts, sending the IMAP/SMTP password in clear, and `config
check` said ok although the README says loopback only.
"""
from __future__ import annotations

import pytest

from tests.plugins.email import add_config
from tix.ingest import fetch_all

IMAP = ("channels:\n  - name: support\n    type: imap\n    host: {host}\n    security: plain\n"
        "    user: support@toko.example\n    password_env: TIX_TEST_IMAP_PASSWORD\n{extra}")
SMTP = "outbound:\n  host: {host}\n  security: plain\n  from: support@toko.example\n{extra}"


@pytest.mark.parametrize("section", [IMAP, SMTP])
def test_config_check_refuses_plain_to_a_remote_host(store, tix, section):
    add_config(store, section.format(host="mail.example.co.id", extra=""))
    proc = tix("config", "check")
    assert proc.returncode == 2
    assert "security: plain would send the password in clear to mail.example.co.id" in proc.stdout + proc.stderr
    assert "tix.yaml:" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("host", "extra"), [("127.0.0.1", ""), ("localhost", ""), ("::1", ""),
                                             ("10.0.0.5", "    allow_plaintext: true\n")])
def test_plain_is_fine_on_loopback_or_when_allowed(store, tix, host, extra, monkeypatch):
    monkeypatch.setenv("TIX_TEST_IMAP_PASSWORD", "x")
    add_config(store, IMAP.format(host=host, extra=extra))
    proc = tix("config", "check")
    assert "in clear" not in proc.stdout + proc.stderr


def test_fetch_never_connects_in_clear_to_a_remote_host(store, monkeypatch):
    monkeypatch.setenv("TIX_TEST_IMAP_PASSWORD", "s3cr3t")
    add_config(store, IMAP.format(host="192.0.2.1", extra=""))  # TEST-NET-1: nothing answers there
    rep = fetch_all(store)
    (line,) = rep.errors
    assert "would send the password in clear to 192.0.2.1" in line and "s3cr3t" not in line
