"""The webhook sender: a notification as a JSON POST (requests).

The body is `{"id", "key", "subject", "text", …payload}`, or with `slack: true` in the
payload a Slack-compatible `{"text": "subject\\nbody"}`. A webhook URL is a secret for most
services, so the target may be `env:NAME` (read when sending) and errors show only the
URL's scheme and host. 5xx, 408, 429 and network errors are `SendTemporary`; other 4xx
`SendPermanent`.
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import orjson

from tix.errors import SendPermanent, SendTemporary

TIMEOUT = 15


def webhook_url(target: str) -> str:
    if target.startswith("env:"):
        url = os.environ.get(target[4:])
        if not url:
            raise SendTemporary(f"webhook: environment variable {target[4:]} is not set")
        return url
    return target


def target_problem(target: str) -> str | None:
    """What is wrong with a configured webhook target (None: fine), worded without its secret.

    A literal URL must be http(s) with a host and no `user:password@`: the target is recorded
    in the event log with the notification, and a password belongs in an environment
    variable (`env:NAME`), which is recorded by name only."""
    if re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", target):
        return None
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in target):
        got = f"{parts.scheme}:…" if parts.scheme and parts.scheme not in ("http", "https") else "no host"
        return f"must be an http(s) URL or env:VARIABLE holding one (got {got})"
    if "@" in parts.netloc:
        return (f"{redact(target)}: a user:password@ in the URL would be stored in the event log; put the URL "
                "in an environment variable and write env:NAME")
    return None


def redact(url: str) -> str:
    """Webhook URLs carry their secret in the path, query or `user:password@`: show only
    scheme, host and port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…"


def slack_text(text: str) -> str:
    """Customer text made inert for Slack's mrkdwn: `<!channel>`, `<@U123>` and
    `<https://evil|a friendly label>` would otherwise ping everyone or hide a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookSender:
    """Sends outbox items of channel `webhook` (one HTTP session per flush)."""

    def __init__(self, store):
        self.store = store
        self.session = None

    def render(self, item: dict) -> bytes:
        payload = dict(item.get("payload") or {})
        slack = payload.pop("slack", False)
        if slack:
            body = {"text": slack_text(f"{item.get('subject') or ''}\n{item.get('body') or ''}".strip())}
        else:
            body = {"id": item["id"], "key": item.get("key"), "subject": item.get("subject"),
                    "text": item.get("body"), **payload}
        return orjson.dumps(body)

    def send(self, item: dict, body: bytes) -> dict:
        import requests

        target = str(item.get("target") or "")
        url = webhook_url(target)
        shown = target if target.startswith("env:") else redact(url)
        if self.session is None:
            self.session = requests.Session()
        try:
            resp = self.session.post(url, data=body, timeout=TIMEOUT,
                                      headers={"User-Agent": "tix-notify", "Content-Type": "application/json"})
        except requests.RequestException as exc:
            raise SendTemporary(f"webhook {shown} unreachable: {exc.__class__.__name__}") from None
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise SendTemporary(f"webhook {shown} answered {resp.status_code}")
        if resp.status_code >= 400:
            raise SendPermanent(f"webhook {shown} answered {resp.status_code}")
        return {"http_status": resp.status_code}

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
