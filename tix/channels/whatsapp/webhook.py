"""The WhatsApp webhook receiver: verify, spool durably, answer 200. Nothing else.

Meta expects a median answer of 250 ms or less and delivers concurrently, so the request
path does no business logic (no JSON parsing, no store lock): `tix fetch` does that later
from the spool (`tix.channels.whatsapp.spool`, then `tix.ingest`).

- GET without a query: 200 `ok` (a health check).
- GET: the verification handshake. `hub.mode=subscribe` and `hub.verify_token` equal to the
  configured token (constant-time compare) -> 200 with `hub.challenge` echoed verbatim;
  wrong token or mode -> 403; missing parameters -> 400.
- POST: `X-Hub-Signature-256: sha256=<hex>` must be the HMAC-SHA256 of the raw body with
  the app secret (constant-time compare), else 401. Bodies over `max_body_bytes` -> 413;
  no Content-Length -> 411. A valid body is written to `spool/whatsapp/<time_ns>-<pid>-<n>.json`
  with `tix.store.files.atomic_write` (temp file, fsync, rename) and the directory
  fsynced (one fsync for concurrent requests: `GroupSync`); only then the answer is 200.
  If the spool cannot be written the answer is 500, so Meta delivers again later.
- Anything else: 405.

`make_app(store)` returns the WSGI application (run it behind any WSGI server); the module
attribute `application` builds one from `TIX_STORE` on first use. `serve(store, host, port)`
runs it on a threaded wsgiref server (`tix webhook serve`).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import socketserver
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tix.errors import UsageError
from tix.store.files import atomic_write

_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class Receiver:
    """The WSGI application. Secrets are read once, when it is made."""

    def __init__(self, spool: Path, app_secret: str, verify_token: str | None, max_body: int,
                 path: str | None = None):
        if not app_secret:
            raise UsageError("whatsapp: the app secret is empty; set app_secret_env in tix.yaml")
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.secret = app_secret.encode()
        self.verify_token = verify_token.encode() if verify_token else None
        self.max_body = max_body
        self.path = path
        self._counter = itertools.count()
        self._dir_sync = GroupSync(os.open(self.spool, os.O_RDONLY))
        self.accepted = 0

    def __call__(self, environ, start_response):
        if self.path and environ.get("PATH_INFO", "/") != self.path:
            return _answer(start_response, "404 Not Found", b"not found\n")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST":
            return self.post(environ, start_response)
        if method in ("GET", "HEAD"):
            return self.get(environ, start_response)
        return _answer(start_response, "405 Method Not Allowed", b"GET or POST only\n",
                       [("Allow", "GET, POST")])

    # -- GET: the handshake ---------------------------------------------------------------
    def get(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if not query:  # a health check (load balancer, monitoring): alive, nothing else said
            return _answer(start_response, "200 OK", b"ok\n")
        mode = (query.get("hub.mode") or [None])[0]
        token = (query.get("hub.verify_token") or [None])[0]
        challenge = (query.get("hub.challenge") or [None])[0]
        if mode is None or token is None or challenge is None:
            return _answer(start_response, "400 Bad Request", b"expected hub.mode, hub.verify_token, hub.challenge\n")
        if (mode != "subscribe" or self.verify_token is None
                or not hmac.compare_digest(token.encode(), self.verify_token)):
            return _answer(start_response, "403 Forbidden", b"verification refused\n")
        return _answer(start_response, "200 OK", challenge.encode())

    # -- POST: verify, spool, 200 ---------------------------------------------------------
    def post(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            return _answer(start_response, "411 Length Required", b"Content-Length required\n")
        size = int(length)
        if size > self.max_body:
            return _answer(start_response, "413 Content Too Large", b"body too large\n")
        body = _read(environ["wsgi.input"], size)
        if len(body) != size:
            return _answer(start_response, "400 Bad Request", b"body shorter than Content-Length\n")
        if not self.signature_ok(body, environ.get("HTTP_X_HUB_SIGNATURE_256")):
            return _answer(start_response, "401 Unauthorized", b"bad or missing X-Hub-Signature-256\n")
        try:
            self.spool_write(body)
        except OSError:
            return _answer(start_response, "500 Internal Server Error", b"could not spool; deliver again\n")
        return _answer(start_response, "200 OK", b"OK\n")

    def signature_ok(self, body: bytes, header: str | None) -> bool:
        """HMAC-SHA256 of the raw bytes (never of re-serialised JSON), constant-time compare."""
        if not header or not header.startswith("sha256="):
            return False
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header[7:].strip().lower().encode(), expected.encode())

    def spool_write(self, body: bytes) -> Path:
        """Write durably: `atomic_write`, then fsync the directory (shared with concurrent requests)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):08d}.json"
        final = atomic_write(self.spool / name, body, mode=0o600, sync_dir=False)
        self._dir_sync.sync()  # the rename is durable once the directory is fsynced
        self.accepted += 1
        return final


class GroupSync:
    """fsync of one file descriptor shared by concurrent requests (group commit).

    A caller that needs "everything I did before now is durable" calls `sync()`. If no
    fsync is running, it runs one for everybody who asked so far; otherwise it waits for
    the running one and, if that began before it asked, for the next. Under load one
    directory fsync covers many renames instead of one each.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.cv = threading.Condition()
        self.asked = 0
        self.done = 0
        self.running = False

    def sync(self) -> None:
        with self.cv:
            self.asked += 1
            mine = self.asked
            while self.done < mine:
                if self.running:
                    self.cv.wait()
                    continue
                self.running = True
                upto = self.asked
                self.cv.release()
                ok = False
                try:
                    os.fsync(self.fd)
                    ok = True
                finally:  # a failed fsync covers nobody: the next caller tries again
                    self.cv.acquire()
                    self.running = False
                    if ok:
                        self.done = max(self.done, upto)
                    self.cv.notify_all()


def _read(stream, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _answer(start_response, status: str, body: bytes, headers=()):
    start_response(status, [*_TEXT, ("Content-Length", str(len(body))), *headers])
    return [body]


def make_app(store) -> Receiver:
    """The receiver for a store, configured from its `whatsapp:` section."""
    from tix.channels.whatsapp.config import load_settings

    settings = load_settings(store)
    if settings is None:
        raise UsageError(f"{store.config.path}: no whatsapp: section; add one (see tix.example.yaml)")
    secret = settings.secret("app_secret")
    if not secret:
        raise UsageError(f"{store.config.path}: whatsapp: set app_secret_env (the Meta app secret "
                         f"signs every webhook)")
    verify = settings.secret("verify_token")
    return Receiver(store.path("spool", "whatsapp"), secret, verify, settings.max_body_bytes, settings.path)


_app: Receiver | None = None
_app_lock = threading.Lock()


def application(environ, start_response):
    """WSGI entry point for gunicorn/uWSGI/mod_wsgi: the store comes from TIX_STORE."""
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                from tix.store import Store

                _app = make_app(Store.open())
    return _app(environ, start_response)


# -- the built-in server ---------------------------------------------------------------------
MAX_CONNECTIONS = 64  # connections served at once; more are closed at once, not queued in threads
CLIENT_TIMEOUT = 10.0  # seconds a client may take to send each part of its request


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref with a thread per connection, at most `MAX_CONNECTIONS` at once.

    A slow client never holds up the others, and many slow clients (partial headers, a
    trickled body) cannot take every thread or file descriptor: each socket has a timeout
    (`CLIENT_TIMEOUT`) and a connection over the limit is closed at once.
    """

    daemon_threads = True
    request_queue_size = 1024  # Meta delivers in bursts; the default backlog of 5 drops SYNs
    allow_reuse_address = True
    max_connections = MAX_CONNECTIONS

    def server_activate(self):
        super().server_activate()
        self.slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the limit: shed it, Meta retries
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class QuietHandler(WSGIRequestHandler):
    """One access-log line per request only with -v; never the body, headers or query string
    (the verification handshake carries the verify token in it)."""

    verbose = False
    timeout = CLIENT_TIMEOUT
    wbufsize = 1 << 16  # one send per answer instead of one per status line, header and body

    def log_message(self, format, *args):  # the stdlib's name
        if self.verbose:
            line = _QUERY.sub("?…", format % args)
            sys.stderr.write(f"{self.address_string()} {line}\n")


_QUERY = re.compile(r"\?[^\s\"]*")


def make_server_for(app, host: str = "127.0.0.1", port: int = 8080, verbose: bool = False,
                    timeout: float = CLIENT_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
    handler = type("Handler", (QuietHandler,), {"verbose": verbose, "timeout": timeout})
    server_class = type("Server", (ThreadingWSGIServer,), {"max_connections": max_connections})
    return make_server(host, port, app, server_class=server_class, handler_class=handler)


def serve(store, host: str = "127.0.0.1", port: int = 8080, verbose: bool = False, ready=None) -> None:
    """Run the receiver until interrupted (`tix webhook serve`)."""
    server = make_server_for(make_app(store), host, port, verbose)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
