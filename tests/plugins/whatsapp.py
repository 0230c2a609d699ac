"""pytest fixtures for the WhatsApp tests: a fake Graph API on loopback, a configured store,
the webhook receiver, and helpers to sign and spool payloads.

`FakeGraph` follows the documented Cloud API (API-NOTES §2, §3, §5):
`POST /{ver}/{pnid}/messages` (bearer required, else error 190; validates messaging_product,
to/recipient and the type's object; returns a fresh wamid), `GET /{ver}/{media_id}` (JSON with
a `url` pointing back at the fake), `GET /media/{id}` (bytes, bearer required), `POST
/{ver}/{pnid}/media` (a multipart upload: `file`, `type`, `messaging_product`; returns a media
id, kept in `uploads`; a message naming an unknown media id is refused with 100). Errors are
injected per call with the documented envelopes from the fixtures. Every request is recorded
(method, path, headers, JSON) so tests assert what tix sent.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "whatsapp"
APP_SECRET = "tix-test-app-secret"
VERIFY_TOKEN = "tix-verify-token"
TOKEN = "test-graph-token"
PNID = "100000000000001"
BUSINESS = "15550001111"
ERROR_STATUS = {131047: 400, 131056: 400, 100: 400, 131000: 400, 130429: 429, 80007: 429, 190: 401}

WA_CONFIG = f"""
whatsapp:
  numbers:
    - phone_number_id: "{PNID}"
      number: "{BUSINESS}"
  team: support
  verify_token_env: TIX_WA_VERIFY_TOKEN
  app_secret_env: TIX_WA_APP_SECRET
  token_env: TIX_WA_TOKEN
  base_url: BASE_URL
  version: v25.0
  reopen_days: 7
  templates:
    followup:
      name: ticket_update
      language: en_US
      params: ["{{{{ ticket.number }}}}", "{{{{ ticket.status }}}}"]
    withtext:
      name: ticket_note
      language: id
      params: ["{{{{ ticket.number }}}}", "{{{{ text | truncate(60) }}}}"]
    order:
      name: order_update
      language: id
      params: ["{{{{ ticket.fields.order_id }}}}"]
"""


def fixture_bytes(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def api_error(code: int) -> dict:
    for f in (FIXTURES / "from-docs" / "api").glob("error_*.json"):
        data = json.loads(f.read_text())
        if data["error"]["code"] == code:
            return data
    return {"error": {"message": f"(#{code}) error", "type": "OAuthException", "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": "test"}, "fbtrace_id": "T"}}


class FakeGraph:
    def __init__(self):
        self.requests: list[dict] = []
        self.failures: list[tuple[int, int | None]] = []  # (http status, code or None)
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_sha_override: dict[str, str] = {}
        self.uploads: dict[str, dict] = {}  # media id -> {"data", "type", "filename", "form"}
        self.upload_failures: list[tuple[int, int | None]] = []
        self._ids = itertools.count(1)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self, "POST")

            def do_GET(self):
                fake._handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, code: int | None, status: int | None = None, times: int = 1) -> None:
        """The next `times` message sends answer with this documented error."""
        for _ in range(times):
            self.failures.append((status or ERROR_STATUS.get(code, 500), code))

    def add_media(self, media_id: str, data: bytes, mime: str = "image/jpeg") -> str:
        self.media[media_id] = (data, mime)
        return base64.b64encode(hashlib.sha256(data).digest()).decode()

    def sent(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- request handling ---------------------------------------------------------------
    def _handle(self, h, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        url = urlsplit(h.path)
        rec = {"method": method, "path": url.path, "query": parse_qs(url.query),
               "headers": {k.lower(): v for k, v in h.headers.items()}, "body": raw}
        try:
            rec["json"] = json.loads(raw) if raw else None
        except ValueError:
            rec["json"] = None
        with self.lock:
            self.requests.append(rec)
        if rec["headers"].get("authorization") != f"Bearer {TOKEN}":
            return self._json(h, 401, api_error(190))
        parts = [p for p in url.path.split("/") if p]
        if method == "POST" and len(parts) == 3 and parts[2] == "messages":
            return self._send(h, rec)
        if method == "POST" and len(parts) == 3 and parts[2] == "media":
            return self._upload(h, rec)
        if method == "GET" and len(parts) == 2 and parts[0] == "media":
            return self._media_bytes(h, parts[1])
        if method == "GET" and len(parts) == 2:
            return self._media_info(h, parts[1])
        return self._json(h, 404, api_error(100))

    def _send(self, h, rec):
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            status, code = failure
            return self._json(h, status, api_error(code) if code else {"error": {"message": "boom"}})
        body = rec["json"] or {}
        kind = body.get("type")
        if body.get("messaging_product") != "whatsapp" or not (body.get("to") or body.get("recipient")) \
                or not isinstance(body.get(kind), dict):
            return self._json(h, 400, api_error(100))
        media_id = body[kind].get("id")
        if kind in ("image", "video", "audio", "document", "sticker") and media_id not in self.uploads:
            return self._json(h, 400, api_error(100))
        wamid = f"wamid.FAKE{next(self._ids):06d}="
        who = {"input": body.get("to") or body.get("recipient")}
        who.update({"wa_id": body["to"].lstrip("+")} if body.get("to") else {"user_id": body["recipient"]})
        return self._json(h, 200, {"messaging_product": "whatsapp", "contacts": [who], "messages": [{"id": wamid}]})

    def _upload(self, h, rec):
        """Media upload (multipart/form-data), as the Cloud API documents it."""
        from email.parser import BytesParser
        from email.policy import HTTP

        with self.lock:
            failure = self.upload_failures.pop(0) if self.upload_failures else None
        if failure:
            status, code = failure
            return self._json(h, status, api_error(code) if code else {"error": {"message": "boom"}})
        head = f"Content-Type: {rec['headers'].get('content-type', '')}\r\n\r\n".encode()
        msg = BytesParser(policy=HTTP).parsebytes(head + rec["body"])
        form, upload = {}, None
        for part in msg.iter_parts() if msg.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                upload = {"data": part.get_payload(decode=True), "type": part.get_content_type(),
                          "filename": part.get_filename()}
            else:
                form[name] = part.get_payload(decode=True).decode()
        if upload is None or form.get("messaging_product") != "whatsapp" or not form.get("type"):
            return self._json(h, 400, api_error(100))
        media_id = f"{next(self._ids) + 9000000000000000}"
        self.uploads[media_id] = {**upload, "form": form}
        return self._json(h, 200, {"id": media_id})

    def _media_info(self, h, media_id):
        if media_id not in self.media:
            return self._json(h, 404, api_error(100))
        data, mime = self.media[media_id]
        sha = self.media_sha_override.get(media_id) or base64.b64encode(hashlib.sha256(data).digest()).decode()
        return self._json(h, 200, {"messaging_product": "whatsapp", "url": f"{self.base_url}/media/{media_id}",
                                   "mime_type": mime, "sha256": sha, "file_size": str(len(data)), "id": media_id})

    def _media_bytes(self, h, media_id):
        if media_id not in self.media:
            return self._json(h, 404, api_error(100))
        data, mime = self.media[media_id]
        h.send_response(200)
        h.send_header("Content-Type", mime)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _json(h, status, obj):
        data = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


@pytest.fixture
def graph():
    fake = FakeGraph()
    yield fake
    fake.close()


@pytest.fixture
def wa_env(monkeypatch):
    monkeypatch.setenv("TIX_WA_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("TIX_WA_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setenv("TIX_WA_TOKEN", TOKEN)


@pytest.fixture
def wa_store(store, graph, wa_env):
    """The test store with a whatsapp: section pointing at the fake Graph API."""
    path = store.path("tix.yaml")
    path.write_text(path.read_text() + WA_CONFIG.replace("BASE_URL", graph.base_url))
    store.reload_config()
    return store


@pytest.fixture
def receiver(wa_store):
    """The webhook receiver on a free loopback port, in this process: yields its URL."""
    from tix.channels.whatsapp.webhook import make_app, make_server_for

    server = make_server_for(make_app(wa_store), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_spool_n = itertools.count()


def spool(store, body: bytes | dict, name: str | None = None) -> Path:
    """Put a payload into spool/whatsapp/ as the receiver would."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    d = store.path("spool", "whatsapp")
    d.mkdir(parents=True, exist_ok=True)
    p = d / (name or f"{next(_spool_n):020d}-test.json")
    p.write_bytes(body)
    return p


def text_payload(wamid: str, body: str, wa_id: str = "15555550100", name: str = "Ada Example",
                 ts: int = 1760000100, user_id: str | None = None, context: str | None = None) -> dict:
    msg = {"from": wa_id, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": body}}
    if context:
        msg["context"] = {"from": BUSINESS, "id": context}
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        contact["user_id"] = user_id
    return envelope({"contacts": [contact], "messages": [msg]})


def status_payload(wamid: str, status: str, ts: int = 1760000010, errors: list | None = None,
                   recipient: str = "15555550100") -> dict:
    st = {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": recipient}
    if errors:
        st["errors"] = errors
    return envelope({"statuses": [st]})


def envelope(value: dict) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": BUSINESS, "phone_number_id": PNID}, **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "200000000000001", "changes": [{"value": value, "field": "messages"}]}]}
