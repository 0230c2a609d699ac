"""Webhook notifications leak no secret and carry no live Slack markup from customers (issue 12).

Slack payloads carried customer text unescaped (`<!channel>` pinged everyone, `<url|label>`
hid a link), and a webhook URL with `user:password@` was shown in full in listings and errors.
"""
from __future__ import annotations

from datetime import datetime, timezone

from tix import outbox
from tix.outbox.webhook import redact

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def test_slack_text_from_a_customer_is_inert(store, hook_server):
    with store.writing(actor="system", via="test") as batch:
        outbox.notify(batch, "webhook", hook_server.url, subject="[#1] VIP: <!channel> <https://evil.example|klik>",
                      body="a & b <@U123>", payload={"slack": True}, key="t1")
    rep = outbox.flush(store, NOW)
    assert rep.sent == 1
    (_path, body), = hook_server.requests
    assert body == {"text": "[#1] VIP: &lt;!channel&gt; &lt;https://evil.example|klik&gt;\na &amp; b &lt;@U123&gt;"}


def test_a_webhook_url_password_is_never_shown(store, hook_server):
    url = hook_server.url.replace("http://", "http://bot:s3cr3t-pass@") + "?token=s3cr3t-token"
    hook_server.status = 503
    with store.writing(actor="system", via="test") as batch:
        outbox.notify(batch, "webhook", url, subject="s", body="b", key="t2")
    rep = outbox.flush(store, NOW)
    assert rep.failed == 1
    shown = " ".join(str(v) for row in outbox.items(store) for v in row.values()) + " ".join(rep.errors)
    assert "s3cr3t" not in shown and "bot" not in shown
    assert redact("https://u:p@hooks.example:8443/T/B?x=1") == "https://hooks.example:8443/…"
