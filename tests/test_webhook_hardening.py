"""The webhook receiver survives slow and numerous clients and logs no secret (issue 12, 4 and 9).

300 connections sending partial headers kept 300 threads for ever, and with a low fd limit
`GET /` stopped answering; the `-v` access log printed the verify token of the handshake.
"""
from __future__ import annotations

import io
import socket
import sys
import threading
import time

import requests

from tix.channels.whatsapp.webhook import make_app, make_server_for


def _serve(store, **kw):
    server = make_server_for(make_app(store), "127.0.0.1", 0, **kw)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_slow_partial_clients_neither_hold_threads_nor_stop_the_health_check(wa_store):
    server, url = _serve(wa_store, timeout=1.0, max_connections=16)
    slow = []
    try:
        for _ in range(300):
            s = socket.create_connection(server.server_address)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
            slow.append(s)
        before = threading.active_count()
        assert before < 16 + 10, f"{before} threads for 300 slow clients"
        deadline = time.monotonic() + 15
        while True:  # within the client timeout, the slow ones are dropped and the receiver answers
            try:
                if requests.get(url + "/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "GET / never answered"
            time.sleep(0.2)
        for s in slow[:20]:  # the server closed them: reading gives EOF or a reset, never waits
            s.settimeout(5)
            try:
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
            assert not data.startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
        assert threading.active_count() <= before
    finally:
        for s in slow:
            s.close()
        server.shutdown()
        server.server_close()


def test_the_access_log_shows_no_query_string(wa_store, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    server, url = _serve(wa_store, verbose=True)
    try:
        requests.get(url + "/?hub.mode=subscribe&hub.verify_token=s3cr3t-token&hub.challenge=42", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert "GET /?…" in err.getvalue() and "s3cr3t" not in err.getvalue()
