"""The webhook receiver over real HTTP on loopback: signature vectors, handshake, limits, load,
and `tix webhook serve` as a real process."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest

from tests.plugins.whatsapp import APP_SECRET, FIXTURES, sign, text_payload
from tix.store.files import TEMP_GLOB, temp_name

SIG = FIXTURES / "from-docs" / "signature"


def request(url, method="GET", path="/", body=None, headers=None):
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def spooled(store):
    return sorted(store.path("spool", "whatsapp").glob("*.json"))


@pytest.mark.parametrize("vector", json.loads((SIG / "vectors.json").read_text())["vectors"],
                         ids=lambda v: f"{v['body_file']}-{v['expect']}-{(v['x_hub_signature_256'] or 'none')[7:15]}")
def test_signature_vectors(receiver, wa_store, vector):
    body = (SIG / vector["body_file"]).read_bytes()
    headers = {"Content-Type": "application/json"}
    if vector["x_hub_signature_256"]:
        headers["X-Hub-Signature-256"] = vector["x_hub_signature_256"]
    status, _ = request(receiver, "POST", "/", body, headers)
    files = spooled(wa_store)
    if vector["expect"] == "valid":
        assert status == 200
        assert len(files) == 1 and files[0].read_bytes() == body  # byte for byte
    else:
        assert status == 401 and files == []


def test_reserialised_body_fails_even_with_its_own_signature(receiver, wa_store):
    body = (SIG / "payload_unicode_escaped.json").read_bytes()
    reserialised = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    vec = [v for v in json.loads((SIG / "vectors.json").read_text())["vectors"] if "note" in v][0]
    assert sign(reserialised) == vec["x_hub_signature_256"]  # the vector is what the note says
    status, _ = request(receiver, "POST", "/", body, {"X-Hub-Signature-256": vec["x_hub_signature_256"]})
    assert status == 401 and spooled(wa_store) == []
    # the re-serialised bytes with that signature are accepted: the HMAC is over raw bytes
    status, _ = request(receiver, "POST", "/", reserialised, {"X-Hub-Signature-256": vec["x_hub_signature_256"]})
    assert status == 200 and spooled(wa_store)[0].read_bytes() == reserialised


@pytest.mark.parametrize(
    "case", json.loads((FIXTURES / "from-docs/api/verification_get_cases.json").read_text())["cases"])
def test_verification_handshake(receiver, case):
    status, body = request(receiver, "GET", "/?" + urlencode(case["query"]))
    assert status == case["expect_status"]
    if "expect_body" in case:
        assert body.decode() == case["expect_body"]
    if "expect_body_not" in case:
        assert case["expect_body_not"].encode() not in body


def test_challenge_echoed_verbatim(receiver):
    status, body = request(receiver, "GET", "/?" + urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": "tix-verify-token", "hub.challenge": "abc-DEF_123.x"}))
    assert (status, body) == (200, b"abc-DEF_123.x")


def test_limits_and_methods(receiver, wa_store, monkeypatch):
    u = urlsplit(receiver)
    with socket.create_connection((u.hostname, u.port)) as s:  # refused on the header, body never read
        s.sendall(b"POST / HTTP/1.0\r\nContent-Length: 8388609\r\nX-Hub-Signature-256: sha256=00\r\n\r\n")
        assert b" 413 " in s.recv(1000)
    status, _ = request(receiver, "PUT", "/", b"{}", {"X-Hub-Signature-256": sign(b"{}")})
    assert status == 405
    with socket.create_connection((u.hostname, u.port)) as s:  # POST without Content-Length
        s.sendall(b"POST / HTTP/1.0\r\nX-Hub-Signature-256: " + sign(b"").encode() + b"\r\n\r\n")
        assert b" 411 " in s.recv(1000)
    assert spooled(wa_store) == []


def test_spool_write_failure_answers_500(tmp_path):
    """When the body cannot be made durable the answer is 500, so Meta delivers it again."""
    import io
    import shutil

    from tix.channels.whatsapp.webhook import Receiver

    spool_dir = tmp_path / "spool"
    app = Receiver(spool_dir, APP_SECRET, None, 1 << 20)
    shutil.rmtree(spool_dir)
    spool_dir.write_text("not a directory any more")  # every write now fails, even as root
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    got = {}
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_LENGTH": str(len(body)),
           "wsgi.input": io.BytesIO(body), "HTTP_X_HUB_SIGNATURE_256": sign(body)}
    app(env, lambda status, headers: got.setdefault("status", status))
    assert got["status"].startswith("500")


def test_200_concurrent_signed_posts_all_spooled_and_ingested(receiver, wa_store):
    from tix.ingest import fetch_spool

    bodies = [json.dumps(text_payload(f"wamid.L{i}", f"pesan {i}", wa_id=str(6281300000000 + i))).encode()
              for i in range(200)]

    def post(body):
        return request(receiver, "POST", "/", body, {"X-Hub-Signature-256": sign(body),
                                                      "Content-Type": "application/json"})[0]

    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(post, bodies))
    assert statuses == [200] * 200
    files = spooled(wa_store)
    assert len(files) == 200 and sorted(f.read_bytes() for f in files) == sorted(bodies)
    assert not list(wa_store.path("spool", "whatsapp").glob(TEMP_GLOB))
    rep = fetch_spool(wa_store)
    assert rep.stored == 200 and rep.errors == []


def test_wrong_secret_rejected(receiver, wa_store):
    body = (SIG / "payload_ascii.json").read_bytes()
    status, _ = request(receiver, "POST", "/", body, {"X-Hub-Signature-256": sign(body, "other-secret")})
    assert status == 401


def test_wsgi_application_from_tix_store(wa_store, monkeypatch):
    """The module-level WSGI app works without a server (as gunicorn would call it)."""
    import io

    from tix.channels.whatsapp import webhook as whatsapp_webhook

    monkeypatch.setattr(whatsapp_webhook, "_app", None)
    monkeypatch.setenv("TIX_STORE", str(wa_store.root))
    body = (SIG / "payload_ascii.json").read_bytes()
    got = {}
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_LENGTH": str(len(body)),
           "wsgi.input": io.BytesIO(body), "HTTP_X_HUB_SIGNATURE_256": sign(body)}
    out = whatsapp_webhook.application(env, lambda status, headers: got.setdefault("status", status))
    assert got["status"] == "200 OK" and b"".join(out) == b"OK\n"
    assert spooled(wa_store)[0].read_bytes() == body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tix_webhook_serve_process(wa_store):
    port = free_port()
    env = dict(os.environ, TIX_STORE=str(wa_store.root))
    proc = subprocess.Popen([sys.executable, "-m", "tix", "-v", "webhook", "serve", "--port", str(port)],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        body = (SIG / "payload_ascii.json").read_bytes()
        status, _ = request(f"http://127.0.0.1:{port}", "POST", "/", body, {"X-Hub-Signature-256": sign(body)})
        assert status == 200 and spooled(wa_store)[0].read_bytes() == body
        status, _ = request(f"http://127.0.0.1:{port}", "POST", "/", body, {})
        assert status == 401
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "listening on http://127.0.0.1:" in err
    assert APP_SECRET not in err


def test_tix_webhook_serve_without_secret_is_a_config_error(wa_store, tix, monkeypatch):
    proc = tix("webhook", "serve", "--port", "0", env={"TIX_WA_APP_SECRET": ""})
    assert proc.returncode == 2 and "app secret" in proc.stderr.lower()


def test_health_check_and_stale_tmp_cleanup(receiver, wa_store):
    from tix.ingest import fetch_spool

    assert request(receiver, "GET", "/") == (200, b"ok\n")
    d = wa_store.path("spool", "whatsapp")
    old, fresh = temp_name(d / "old.json"), temp_name(d / "fresh.json")  # as the receiver names them
    old.write_bytes(b"{")
    fresh.write_bytes(b"{")
    now = time.time()  # this process's clock for both: under faketime the kernel's file times are not faked
    os.utime(old, (now - 7200, now - 7200))
    os.utime(fresh, (now, now))
    rep = fetch_spool(wa_store)
    assert rep.errors == [] and rep.quarantined == 0
    assert not old.exists() and fresh.exists()  # a fresh one may be a write in progress
