"""Outbound WhatsApp: compose (window, context, templates), send against the fake Graph API,
error classification by code, the outbox end to end, and status webhooks afterwards."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.plugins.whatsapp import FIXTURES, PNID, TOKEN, spool, status_payload, text_payload
from tix.ingest import fetch_spool
from tix.channels.whatsapp.send import TemplateRequired, compose, send_item
from tix.errors import ChannelStopped, SendPermanent, SendTemporary, UsageError

T0 = 1760000100
AT = datetime.fromtimestamp(T0, timezone.utc)


def events(store, kind):
    return [e for e in (orjson.loads(r) for r, _s, _o in store.log.read_raw()) if e["type"] == kind]


def one_ticket(store, payload=None):
    spool(store, payload or text_payload("wamid.IN1", "Halo kak, pesanan saya belum datang", ts=T0))
    fetch_spool(store)
    reader = store.read()
    return reader, dict(reader.ticket(1))


def doc(name):
    return json.loads((FIXTURES / "from-docs" / "api" / name).read_text())


def test_compose_text_inside_window_matches_documented_request(wa_store):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "Ticket #42 received. We are on it.", now=AT + timedelta(minutes=5))
    assert item["request"] == doc("send_text_request.json")
    assert item["phone_number_id"] == PNID and item["to"] == ["+15555550100"] and item["context"] is None


def test_compose_quotes_the_customer_when_the_reply_is_late(wa_store):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "Re: your message", now=AT + timedelta(hours=3))
    assert item["request"]["context"] == {"message_id": "wamid.IN1"}


def test_compose_outside_window_refuses_free_text(wa_store):
    reader, row = one_ticket(wa_store)
    with pytest.raises(UsageError) as exc:
        compose(wa_store, reader, row, "hello?", now=AT + timedelta(hours=25))
    msg = str(exc.value)
    assert "only an approved template may be sent" in msg and "followup" in msg and "#1" in msg


def test_compose_template_outside_window(wa_store):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "", template="followup", now=AT + timedelta(days=3))
    req = item["request"]
    want = doc("send_template_request.json")
    assert req["type"] == "template" and req["to"] == want["to"]
    assert req["template"]["name"] == "ticket_update" and req["template"]["language"] == {"code": "en_US"}
    assert req["template"]["components"][0]["parameters"] == [{"type": "text", "text": "1"},
                                                              {"type": "text", "text": "new"}]
    with pytest.raises(UsageError, match="only an approved template"):
        compose(wa_store, reader, row, "not a template", template="nosuch", now=AT + timedelta(days=3))


def test_compose_username_user_uses_recipient(wa_store):
    payload = json.loads((FIXTURES / "from-docs/webhooks/text_bsuid_username_no_phone.json").read_text())
    reader, row = one_ticket(wa_store, payload)
    item = compose(wa_store, reader, row, "Reply to a username-only user", now=AT + timedelta(minutes=400))
    assert item["request"]["recipient"] == "US.1000000000000000001" and "to" not in item["request"]


def test_compose_refuses_non_whatsapp_ticket(wa_store):
    from tix.tickets import create_ticket

    with wa_store.writing() as batch:
        create_ticket(batch, "email one", channel="email")
    reader = wa_store.read()
    with pytest.raises(UsageError, match="not a WhatsApp ticket"):
        compose(wa_store, reader, dict(reader.ticket(1)), "x")


def test_send_item_posts_documented_request_with_bearer(wa_store, graph):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "Re: your message", now=AT + timedelta(hours=3))
    out = send_item(wa_store, {"payload": item, "id": "tix-outbox-0001", "ticket": 1, "attempts": 0})
    assert out["message"].startswith("wamid.FAKE") and out["channel"] == "whatsapp" and out["wa_id"] == "15555550100"
    (req,) = graph.sent()
    assert req["path"] == f"/v25.0/{PNID}/messages"
    assert req["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert req["headers"]["content-type"] == "application/json"
    want = doc("send_reply_request.json")
    want["context"]["message_id"] = "wamid.IN1"
    want["text"]["preview_url"] = False  # tix always says so: no link previews of customer data
    assert req["json"] == want


@pytest.mark.parametrize("code,status,kind", [
    (130429, None, SendTemporary), (131056, None, SendTemporary), (131000, None, SendTemporary),
    (131000, 500, SendTemporary), (80007, None, SendTemporary), (None, 503, SendTemporary),
    (131047, None, TemplateRequired), (100, None, SendPermanent), (190, None, ChannelStopped),
])
def test_send_errors_classified_by_code(wa_store, graph, code, status, kind):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "x", now=AT)
    graph.fail(code, status)
    with pytest.raises(kind) as exc:
        send_item(wa_store, {**item, "attempts": 2})
    assert exc.value.code == code
    assert TOKEN not in str(exc.value)
    if code == 131056:
        assert exc.value.retry_after == 16  # 4^X seconds, X = attempts so far
    if kind is SendTemporary:
        assert not isinstance(exc.value, SendPermanent)


def test_send_without_token_stops_channel(wa_store, graph, monkeypatch):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "x", now=AT)
    monkeypatch.delenv("TIX_WA_TOKEN")
    with pytest.raises(ChannelStopped, match="TIX_WA_TOKEN"):
        send_item(wa_store, item)
    assert graph.sent() == []


def test_send_unreachable_is_temporary(wa_store, graph):
    reader, row = one_ticket(wa_store)
    item = compose(wa_store, reader, row, "x", now=AT)
    cfg = wa_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace(graph.base_url, "http://127.0.0.1:9"))
    wa_store.reload_config()
    with pytest.raises(SendTemporary, match="unreachable"):
        send_item(wa_store, item)


def recent_ticket(store):
    now = int(datetime.now(timezone.utc).timestamp())
    return one_ticket(store, text_payload("wamid.NOW", "Halo, pesanan INV-1001 belum sampai", ts=now - 60))


def test_outbox_end_to_end_then_status_webhooks(wa_store, graph):
    from tix.outbox import flush, queue

    reader, row = recent_ticket(wa_store)
    with wa_store.writing(actor="user:ani", via="test") as batch:
        queued = queue(batch, dict(batch.reader.ticket(1)), "whatsapp", "Baik kak, kami cek dulu ya")
    rep = flush(wa_store)
    assert rep.sent == 1 and rep.errors == []
    (req,) = graph.sent()
    assert req["json"]["text"]["body"] == "Baik kak, kami cek dulu ya"
    assert req["json"]["biz_opaque_callback_data"] == queued["outbox"]
    sent = events(wa_store, "outbox.sent")[0]
    wamid = sent["data"]["message"]
    assert wamid.startswith("wamid.FAKE") and sent["ticket"] == 1
    # status webhooks for our message: sent and read in one run (applied in time order), then a
    # late 'delivered' that must not move it back
    spool(wa_store, status_payload(wamid, "read", ts=1760000020), name="01.json")
    spool(wa_store, status_payload(wamid, "sent", ts=1760000010), name="02.json")
    fetch_spool(wa_store)
    spool(wa_store, status_payload(wamid, "delivered", ts=1760000011), name="03.json")
    fetch_spool(wa_store)
    sts = events(wa_store, "message.status")
    assert [(s["data"]["status"], s["ticket"]) for s in sts] == [("sent", 1), ("read", 1)]


def test_outbox_131047_notes_ticket_and_then_only_templates(wa_store, graph):
    from tix.outbox import flush, queue

    recent_ticket(wa_store)
    with wa_store.writing(actor="user:ani", via="test") as batch:
        queue(batch, dict(batch.reader.ticket(1)), "whatsapp", "hello")
    graph.fail(131047)
    rep = flush(wa_store)
    assert rep.failed == 1 and "131047" in rep.errors[0]
    notes = [e for e in events(wa_store, "ticket.note") if e["data"].get("kind") == "send_failed"]
    assert notes and "only an approved template" in notes[0]["data"]["body"]
    reader = wa_store.read()
    with pytest.raises(UsageError, match="131047"):
        compose(wa_store, reader, dict(reader.ticket(1)), "again")
    item = compose(wa_store, reader, dict(reader.ticket(1)), "", template="followup")
    assert item["request"]["type"] == "template"


def test_temporary_error_stays_queued_and_is_retried(wa_store, graph):
    from tix.outbox import flush, queue

    recent_ticket(wa_store)
    with wa_store.writing(actor="user:ani", via="test") as batch:
        queue(batch, dict(batch.reader.ticket(1)), "whatsapp", "hello")
    graph.fail(130429)
    rep = flush(wa_store)
    assert rep.pending == 1 and rep.sent == 0
    rep = flush(wa_store, force=True)
    assert rep.sent == 1 and len(graph.sent()) == 2
    assert graph.sent()[0]["json"] == graph.sent()[1]["json"]


def test_tix_reply_cli_sends_and_refuses_outside_window(wa_store, graph, tix):
    recent_ticket(wa_store)
    proc = tix("reply", "1", "-m", "Terima kasih, sudah kami proses")
    assert proc.returncode == 0, proc.stderr
    assert graph.sent()[0]["json"]["text"]["body"] == "Terima kasih, sudah kami proses"
    spool(wa_store, text_payload("wamid.OLD", "lama", wa_id="15555550101", ts=T0))
    fetch_spool(wa_store)
    proc = tix("reply", "2", "-m", "hello")
    assert proc.returncode == 2 and "only an approved template may be sent" in proc.stderr
    assert len(graph.sent()) == 1


def test_tix_reply_template_outside_window(wa_store, graph, tix):
    spool(wa_store, text_payload("wamid.OLD2", "lama sekali", wa_id="15555550101", ts=T0))
    fetch_spool(wa_store)
    refused = tix("reply", "1", "-m", "hello")
    assert refused.returncode == 2 and "only an approved template may be sent" in refused.stderr
    proc = tix("reply", "1", "--template", "followup")
    assert proc.returncode == 0, proc.stderr
    sent = graph.sent()[-1]["json"]
    assert sent["type"] == "template" and sent["template"]["name"] == "ticket_update"
    both = tix("reply", "1", "--template", "followup", "--macro", "x")
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_template_whose_parameter_would_be_empty_is_refused_before_queueing(wa_store, graph, tix):
    """`tix reply N --template NAME` without -m sent an empty template parameter (Meta rejects it)."""
    spool(wa_store, text_payload("wamid.OLD3", "lama sekali", wa_id="15555550101", ts=T0))
    fetch_spool(wa_store)
    proc = tix("reply", "1", "--template", "withtext")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("Error: whatsapp.templates.withtext: parameter 2 ({{ text | truncate(60) }}) is "
                                   "empty (give the text with -m TEXT); WhatsApp refuses a template with an empty "
                                   "parameter")
    assert graph.sent() == [] and tix("outbox", "list", "-f", "json").stdout.strip() == "[]"
    proc = tix("reply", "1", "--template", "withtext", "-m", "Paket sudah dikirim ulang")
    assert proc.returncode == 0, proc.stderr
    params = graph.sent()[-1]["json"]["template"]["components"][0]["parameters"]
    assert params == [{"type": "text", "text": "1"}, {"type": "text", "text": "Paket sudah dikirim ulang"}]


def test_a_template_parameter_reads_custom_fields_as_a_mapping(wa_store, graph, tix):
    """Custom fields reached WhatsApp template parameters as a JSON string."""
    spool(wa_store, text_payload("wamid.OLD4", "lama sekali", wa_id="15555550101", ts=T0))
    fetch_spool(wa_store)
    assert tix("set", "1", "fields.order_id=INV-2026-1101").returncode == 0
    proc = tix("reply", "1", "--template", "order")
    assert proc.returncode == 0, proc.stderr
    params = graph.sent()[-1]["json"]["template"]["components"][0]["parameters"]
    assert params == [{"type": "text", "text": "INV-2026-1101"}]
