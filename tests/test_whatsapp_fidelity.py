"""WhatsApp fidelity: every webhook field a business account receives is taken in, shown, or
skipped out loud, change by change; `tix show` shows what the customer sent; `tix fetch -v`
counts add up (issue 19). Payloads: tests/data/whatsapp/from-docs/webhooks/fields/ (written
from Meta's documented webhook formats, see tests/data/whatsapp/README.md)."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.plugins.email import make_mail
from tests.plugins.whatsapp import FIXTURES, PNID, envelope, sign, spool, text_payload
from tix.ingest import fetch_all, fetch_spool

FIELDS = FIXTURES / "from-docs" / "webhooks" / "fields"


def body(name: str) -> dict:
    return json.loads((FIELDS / f"{name}.json").read_text())


def events(store, kind=None):
    out = []
    for raw, _s, _o in store.log.read_raw():
        ev = orjson.loads(raw)
        if kind is None or ev["type"] == kind:
            out.append(ev)
    return out


def edit_config(store, old: str, new: str) -> None:
    path = store.path("tix.yaml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    store.reload_config()


def contact(store, cid: int) -> dict:
    row = dict(store.read().contact(cid))
    row["fields"] = orjson.loads(row.get("fields") or "{}")
    return row


def local(ts: int, store) -> str:
    tz = ZoneInfo(store.config.setting("timezone"))
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M")


# -- 1. each change on its own ------------------------------------------------------------------
def test_a_post_of_18_changes_keeps_the_text_and_quarantines_only_the_bad_change(wa_store, tix):
    """The reproduction: 18 changes incl. one customer text (and one malformed change) used to be
    quarantined whole, so the text never became a ticket."""
    spool(wa_store, body("many_changes_one_text"))
    proc = tix("-v", "fetch", "--no-send")
    assert proc.returncode == 1  # one change quarantined: exit 1, the rest taken in
    texts = [e["data"]["text"] for e in events(wa_store, "message.received")]
    assert texts == ["hello, my order has not arrived"]
    assert len(events(wa_store, "whatsapp.account")) == 15
    q = events(wa_store, "message.quarantined")
    assert len(q) == 1 and "not an object" in q[0]["data"]["error"]
    # the quarantined item is that one change alone, as a payload replay can read
    qdir = wa_store.path("quarantine", "whatsapp")
    (entry,) = list(qdir.iterdir())
    alone = json.loads((entry / "item.json").read_bytes())
    assert [c["field"] for c in alone["entry"][0]["changes"]] == ["messages"]
    assert alone["entry"][0]["changes"][0]["value"]["messages"] == "not a list"
    assert "change 16 (messages)" in proc.stderr
    assert ("fetched: 1 stored (1 new tickets), 0 on existing tickets, 0 bounces, 0 statuses, 15 account events, "
            "0 contact events, 0 sent from the phone, 1 skipped, 0 already stored, 1 quarantined") in proc.stdout
    assert "skipped 1x history: the phone app's past chats are not imported" in proc.stdout
    # Meta redelivers the POST: nothing new, the bad change is not quarantined twice
    spool(wa_store, body("many_changes_one_text"))
    proc = tix("-v", "fetch", "--no-send")
    assert proc.returncode == 0, proc.stderr
    assert ("fetched: 0 stored (0 new tickets), 0 on existing tickets, 0 bounces, 0 statuses, 0 account events, "
            "0 contact events, 0 sent from the phone, 1 skipped, 17 already stored, 0 quarantined") in proc.stdout
    assert len(list(qdir.iterdir())) == 1


def test_every_field_posted_signed_to_the_receiver_is_answered_and_taken_in(wa_store, receiver, tix):
    """The issue's reproduction end to end: each payload POSTed signed to `tix webhook serve`,
    then fetched: only the one malformed change is quarantined, every message is taken in."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(receiver)
    files = sorted(FIELDS.glob("*.json"))
    for f in files:
        raw = f.read_bytes()
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("POST", "/", body=raw, headers={"X-Hub-Signature-256": sign(raw),
                                                     "Content-Type": "application/json"})
        assert conn.getresponse().status == 200, f.name
        conn.close()
    proc = tix("-v", "fetch", "--no-send")
    assert proc.returncode == 1 and proc.stderr.count("quarantined as") == 1
    wamids = {e["data"]["message"] for e in events(wa_store, "message.received")}
    for f in files:
        for entry in json.loads(f.read_text())["entry"]:
            for change in entry["changes"]:
                msgs = change["value"].get("messages")
                for m in msgs if isinstance(msgs, list) else ():
                    if m.get("type") != "system" and not m.get("group_id"):
                        assert m["id"] in wamids, f.name
    assert not list(wa_store.path("spool", "whatsapp").glob("*.json"))


def test_account_fields_are_typed_events_and_incidents_are_marked(wa_store):
    names = ["account_update_banned", "account_update_restricted", "account_update_violation",
             "account_update_verified", "account_review_update", "phone_number_name_update",
             "phone_number_quality_update", "template_status_paused", "template_status_rejected",
             "template_status_scheduled", "template_quality_update", "template_category_update",
             "business_capability_update", "group_lifecycle_update"]
    for i, name in enumerate(names):
        spool(wa_store, body(name), name=f"{i:03d}.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == [] and rep.quarantined == 0 and rep.account_events == len(names)
    got = {(e["data"]["field"], e["data"]["event"]): e["data"] for e in events(wa_store, "whatsapp.account")}
    assert len(got) == len(names)
    sev = {k: d["severity"] for k, d in got.items()}
    assert sev[("account_update", "DISABLED_UPDATE")] == "incident"  # banned
    assert sev[("account_update", "ACCOUNT_RESTRICTION")] == "incident"
    assert sev[("account_update", "ACCOUNT_VIOLATION")] == "incident"
    assert sev[("account_update", "VERIFIED_ACCOUNT")] == "info"
    assert sev[("phone_number_name_update", "REJECTED")] == "incident"
    assert sev[("phone_number_quality_update", "FLAGGED")] == "incident"
    assert sev[("message_template_status_update", "PAUSED")] == "incident"
    assert sev[("message_template_status_update", "REJECTED")] == "incident"
    assert sev[("account_review_update", "APPROVED")] == "info"
    assert sev[("business_capability_update", None)] == "info"
    assert got[("account_update", "DISABLED_UPDATE")]["text"] == "account DISABLED_UPDATE; ban: DISABLE on 2026-12-01"
    assert "scheduled to be disabled on 2026-12-13" in got[("message_template_status_update", "FLAGGED")]["text"]
    assert got[("template_category_update", None)]["text"] == \
        "template ticket_update (en_US): category UTILITY -> MARKETING"
    assert got[("message_template_status_update", "PAUSED")]["template"] == "ticket_update"
    # the incidents are warnings of the run; a redelivery is recorded once
    assert sum("whatsapp account:" in w for w in rep.warnings) == 8
    spool(wa_store, body("account_update_banned"))
    rep = fetch_spool(wa_store, media=False)
    assert rep.account_events == 0 and rep.duplicates == 1


def test_an_incident_queues_the_whatsapp_alert_once(wa_store, tix):
    edit_config(wa_store, "\n  version: v25.0\n", "\n  version: v25.0\n  alerts:\n    email: [ops@toko.example]\n")
    spool(wa_store, body("account_update_banned"), name="1.json")
    spool(wa_store, body("template_status_paused"), name="2.json")
    spool(wa_store, body("account_update_verified"), name="3.json")  # not an incident: no alert
    fetch_spool(wa_store, media=False)
    queued = [e["data"] for e in events(wa_store, "outbox.queued")]
    assert [q["subject"] for q in queued] == ["WhatsApp incident: account_update DISABLED_UPDATE",
                                             "WhatsApp incident: message_template_status_update PAUSED"]
    assert all(q["target"] == "ops@toko.example" and q["kind"] == "email" for q in queued)
    assert "ban: DISABLE" in queued[0]["body"]
    listed = tix("notify", "list", "-f", "json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2
    spool(wa_store, body("account_update_banned"))
    fetch_spool(wa_store, media=False)
    assert len(events(wa_store, "outbox.queued")) == 2


def test_alerts_config_is_checked(wa_store, tix):
    edit_config(wa_store, "\n  version: v25.0\n", "\n  version: v25.0\n  alerts:\n    emial: [ops@toko.example]\n")
    spool(wa_store, text_payload("wamid.T1", "x"))
    proc = tix("fetch")
    assert proc.returncode != 0 and "whatsapp.alerts: unknown key 'emial' (did you mean 'email'?)" in proc.stderr
    assert len(list(wa_store.path("spool", "whatsapp").glob("*.json"))) == 1  # nothing consumed


def test_unknown_field_unknown_type_and_unknown_status_are_counted_never_quarantined(wa_store, tix):
    for i, name in enumerate(["unknown_field", "history_sync", "group_message", "unknown_type",
                              "status_unknown_message"]):
        spool(wa_store, body(name), name=f"{i:03d}.json")
    proc = tix("-v", "fetch", "--no-send")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1x some_future_field: unknown field" in proc.stdout
    assert "skipped 1x history: the phone app's past chats are not imported" in proc.stdout
    assert "skipped 1x messages (group): group messages are not taken in" in proc.stdout
    assert ("fetched: 1 stored (1 new tickets), 0 on existing tickets, 0 bounces, 1 statuses, 0 account events, "
            "0 contact events, 0 sent from the phone, 3 skipped, 0 already stored, 0 quarantined") in proc.stdout
    (msg,) = events(wa_store, "message.received")
    assert msg["data"]["text"] == "[unknown message - Message type unknown]"
    assert msg["data"]["errors"][0]["code"] == 131051
    (st,) = events(wa_store, "message.status")
    assert st.get("ticket") is None and st["data"]["message"] == "wamid.NEVERSENT1"
    assert not events(wa_store, "message.quarantined")


def test_not_json_or_not_whatsapp_is_quarantined_alone_with_its_reason(wa_store):
    spool(wa_store, b"{not json", name="001.json")
    spool(wa_store, {"object": "page", "entry": []}, name="002.json")
    spool(wa_store, text_payload("wamid.FINE", "fine"), name="003.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.quarantined == 2 and rep.stored == 1 and rep.tickets_created == 1
    assert "not JSON" in rep.errors[0] and "unexpected object 'page'" in rep.errors[1]


def test_a_change_for_an_unknown_number_is_quarantined_alone_and_replays_after_the_fix(wa_store):
    from tix.ingest import replay_quarantined

    good = text_payload("wamid.GOOD1", "good")
    other = text_payload("wamid.OTHER1", "to another number", wa_id="15555550101")
    other_change = other["entry"][0]["changes"][0]
    other_change["value"]["metadata"]["phone_number_id"] = "999"
    good["entry"][0]["changes"].append(other_change)
    spool(wa_store, good)
    rep = fetch_spool(wa_store, media=False)
    assert rep.stored == 1 and rep.quarantined == 1
    assert "phone_number_id '999'" in rep.errors[0]
    edit_config(wa_store, '\n      number: "15550001111"\n',
                '\n      number: "15550001111"\n    - phone_number_id: "999"\n      number: "15550009999"\n')
    out = replay_quarantined(wa_store)
    assert out.replayed and not out.errors
    assert {e["data"]["message"] for e in events(wa_store, "message.received")} == {"wamid.GOOD1", "wamid.OTHER1"}


# -- 2. identity and coexistence --------------------------------------------------------------
def test_user_changed_number_without_from_links_old_and_new_and_shows_in_the_conversation(wa_store, tix):
    spool(wa_store, text_payload("wamid.BEFORE", "first", ts=1760000100, user_id="US.1000000000000000001"),
          name="1.json")
    spool(wa_store, body("system_user_changed_number"), name="2.json")
    spool(wa_store, text_payload("wamid.AFTER", "from my new number", wa_id="15555550199", ts=1760000450,
                                 user_id="US.1000000000000000002"), name="3.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == [] and rep.quarantined == 0 and rep.contact_events == 1
    assert rep.tickets_created == 1 and rep.joined == 1
    c = contact(wa_store, 1)
    assert sorted(c["phones"]) == ["15555550100", "15555550199"]
    assert c["fields"]["wa_user_id"] == "US.1000000000000000002"
    assert c["fields"]["wa_previous_user_ids"] == ["US.1000000000000000001"]
    (sysev,) = events(wa_store, "whatsapp.system")
    assert sysev["ticket"] == 1 and sysev["contact"] == 1
    assert {e["ticket"] for e in events(wa_store, "message.received")} == {1}
    shown = tix("show", "1").stdout
    assert ("WhatsApp notice\n[system] User Ada changed from 15555550100 to 15555550199 (linked on the contact: "
            "number +15555550199 added; user id US.1000000000000000001 -> US.1000000000000000002)") in shown


def test_user_changed_user_id_links_the_new_id(wa_store):
    spool(wa_store, text_payload("wamid.B1", "hi", user_id="US.1000000000000000001"), name="1.json")
    spool(wa_store, body("system_user_changed_user_id"), name="2.json")
    spool(wa_store, text_payload("wamid.B2", "again", ts=1760000500, user_id="US.1000000000000000003"),
          name="3.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == [] and rep.contact_events == 1
    c = contact(wa_store, 1)
    assert c["fields"]["wa_user_id"] == "US.1000000000000000003"
    assert c["fields"]["wa_previous_user_ids"] == ["US.1000000000000000001"]
    assert {e["contact"] for e in events(wa_store, "message.received")} == {1}


def test_a_message_sent_from_the_phone_app_is_an_outbound_message_on_the_ticket(wa_store, tix):
    spool(wa_store, text_payload("wamid.ASK", "where is my parcel?", ts=1760000300), name="1.json")
    spool(wa_store, body("smb_message_echoes"), name="2.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.echoes == 1 and rep.tickets_created == 1 and rep.joined == 1 and rep.stored == 1
    (sent,) = events(wa_store, "message.sent")
    d = sent["data"]
    assert sent["ticket"] == 1 and d["from_phone"] is True and d["message"] == "wamid.ECHO0001"
    assert d["text"] == "Sent from the phone: your parcel left today." and d["to"] == ["15555550100"]
    shown = tix("show", "1").stdout
    assert "reply sent from the WhatsApp Business app (phone)" in shown
    assert f"--- {local(1760000500, wa_store)}  reply sent" in shown
    spool(wa_store, body("smb_message_echoes"))  # redelivered: kept once
    assert fetch_spool(wa_store, media=False).duplicates == 1
    assert len(events(wa_store, "message.sent")) == 1


def test_an_echo_to_a_customer_without_a_ticket_opens_a_pending_one(wa_store):
    spool(wa_store, body("smb_message_echoes"))
    rep = fetch_spool(wa_store, media=False)
    assert rep.echoes == 1 and rep.tickets_created == 1
    row = wa_store.read().ticket(1)
    assert row["status"] == "pending" and row["channel"] == "whatsapp"


MARKETING = ("\n  templates:\n", "\n  templates:\n    promo:\n      name: spring_sale\n      language: en_US\n"
                               "      category: marketing\n")


def test_marketing_opt_out_is_stored_and_refuses_marketing_templates(wa_store, tix):
    edit_config(wa_store, *MARKETING)
    spool(wa_store, text_payload("wamid.P1", "hi"), name="1.json")
    spool(wa_store, body("user_preferences_stop"), name="2.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.contact_events == 1 and rep.errors == []
    assert contact(wa_store, 1)["fields"]["wa_marketing"] == "stop"
    (pref,) = events(wa_store, "whatsapp.preference")
    assert pref["ticket"] == 1 and pref["data"]["value"] == "stop"
    proc = tix("reply", "1", "--template", "promo", "--no-send")
    assert proc.returncode == 2 and "stopped marketing messages" in proc.stderr
    assert not events(wa_store, "message.sent")
    assert tix("reply", "1", "--template", "followup", "--no-send").returncode == 0  # not marketing
    spool(wa_store, body("user_preferences_resume"))
    fetch_spool(wa_store, media=False)
    assert contact(wa_store, 1)["fields"]["wa_marketing"] == "resume"
    assert tix("reply", "1", "--template", "promo", "--no-send").returncode == 0


def test_a_template_meta_moved_to_marketing_is_refused_after_a_stop(wa_store, tix):
    spool(wa_store, text_payload("wamid.P2", "hi"), name="1.json")
    spool(wa_store, body("user_preferences_stop"), name="2.json")
    fetch_spool(wa_store, media=False)
    assert tix("reply", "1", "--template", "followup", "--no-send").returncode == 0  # utility so far
    spool(wa_store, body("template_category_update"))  # ticket_update: UTILITY -> MARKETING
    fetch_spool(wa_store, media=False)
    proc = tix("reply", "1", "--template", "followup", "--no-send")
    assert proc.returncode == 2 and "'followup' is a marketing template" in proc.stderr


def test_calls_are_recorded_on_the_contacts_ticket(wa_store, tix):
    spool(wa_store, text_payload("wamid.C1", "please call me", ts=1760000700), name="1.json")
    spool(wa_store, body("calls"), name="2.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.contact_events == 2 and rep.errors == [] and rep.statuses == 0
    assert rep.skips == ["calls (call status): call statuses are not recorded"]
    calls = events(wa_store, "whatsapp.call")
    assert [c["data"]["event"] for c in calls] == ["connect", "terminate"] and {c["ticket"] for c in calls} == {1}
    assert calls[1]["data"]["duration"] == 33
    shown = tix("show", "1").stdout
    assert "[call from the customer: terminate, COMPLETED, 33 s]" in shown
    spool(wa_store, body("calls"))
    assert fetch_spool(wa_store, media=False).duplicates == 2


def test_a_call_from_someone_without_a_ticket_is_kept_on_the_contact(wa_store):
    spool(wa_store, body("calls"))
    rep = fetch_spool(wa_store, media=False)
    assert rep.contact_events == 2 and rep.tickets_created == 0
    assert {(c.get("ticket"), c["contact"]) for c in events(wa_store, "whatsapp.call")} == {(None, 1)}


# -- 3. tix show -----------------------------------------------------------------------------
def test_show_renders_what_the_customer_sent(wa_store, tix):
    for i, name in enumerate(["flow_reply", "order", "product_question", "ad_referral", "media_error",
                              "unknown_type"]):
        spool(wa_store, body(name), name=f"{i:03d}.json")
    assert fetch_spool(wa_store, media=False).errors == []
    order = next(e for e in events(wa_store, "message.received") if e["data"]["wa_type"] == "order")
    assert order["data"]["order"]["items"] == [
        {"sku": "SKU-RED-M", "quantity": 2, "price": 125000, "currency": "IDR"},
        {"sku": "SKU-CAP", "quantity": 1, "price": 50000, "currency": "IDR"}]
    shown = tix("show", "1").stdout
    assert "[flow reply: flow] order_number: INV-1042; reason: damaged" in shown
    assert "    flow reply (flow):\n      order_number: INV-1042\n      reason: damaged\n" in shown
    assert "TOKEN1" not in shown
    assert "    order (catalog 400000000000001):\n      SKU-RED-M  x2  125000 IDR\n      SKU-CAP  x1  50000 IDR\n" \
        in shown
    assert "    about product SKU-RED-M (catalog 400000000000001)" in shown
    assert '    came from ad "Free delivery this week" <https://fb.me/example-ad>' in shown
    assert "[unsupported message: video - Media download error]" in shown
    assert "    ! WhatsApp error 131052: Media download error - The file is larger than 100 MB" in shown
    assert "[unknown message - Message type unknown]" in shown
    # the customer's own send time, not the time of the fetch
    assert f"--- {local(1760000900, wa_store)}  from Ada Example" in shown
    assert f"--- {local(1760001400, wa_store)}  from Ada Example" in shown


def test_show_json_keeps_the_order_items(wa_store, tix):
    spool(wa_store, body("order"))
    fetch_spool(wa_store, media=False)
    data = json.loads(tix("show", "1", "-f", "json").stdout)
    msg = next(e for e in data["conversation"] if e["type"] == "message.received")
    assert msg["data"]["order"]["catalog_id"] == "400000000000001"


def test_show_reads_the_stored_media_result(wa_store, graph, tix, tmp_path):
    data = os.urandom(2048)
    sha = graph.add_media("900000000000009", data)
    msg = {"from": "15555550100", "id": "wamid.IMGSHOW", "timestamp": "1760000100", "type": "image",
           "image": {"caption": "foto struk", "mime_type": "image/jpeg", "sha256": sha, "id": "900000000000009"}}
    spool(wa_store, envelope({"contacts": [{"profile": {"name": "Ada"}, "wa_id": "15555550100"}],
                              "messages": [msg]}))
    assert fetch_spool(wa_store).media_stored == 1
    shown = tix("show", "1").stdout
    assert "    [attachment 1: image.jpg, image/jpeg, 2048 bytes, stored]\n      save: tix attachment 1 1 -o FILE\n" \
        in shown
    assert "pending" not in shown and "not downloaded" not in shown
    out = tmp_path / "saved.jpg"
    assert tix("attachment", "1", "1", "-o", str(out)).returncode == 0  # the hint works
    assert out.read_bytes() == data


def test_show_says_media_not_downloaded_yet(wa_store, tix, monkeypatch):
    monkeypatch.delenv("TIX_WA_TOKEN", raising=False)
    msg = {"from": "15555550100", "id": "wamid.IMGPEND", "timestamp": "1760000100", "type": "image",
           "image": {"mime_type": "image/jpeg", "sha256": "x", "id": "900000000000010"}}
    spool(wa_store, envelope({"messages": [msg]}))
    fetch_spool(wa_store)
    shown = tix("show", "1").stdout
    assert "[attachment 1: image.jpg, image/jpeg, not downloaded yet (tix fetch retries)]\n\n" in shown


# -- 4. counts that add up ---------------------------------------------------------------------
def test_fetch_counts_21_new_whatsapp_tickets(wa_store, tix):
    for i in range(21):
        spool(wa_store, text_payload(f"wamid.N{i:02d}", f"hello {i}", wa_id=f"155555502{i:02d}"))
    spool(wa_store, text_payload("wamid.N99", "and again", wa_id="15555550200", ts=1760000200))
    proc = tix("-v", "fetch", "--no-send")
    assert proc.returncode == 0, proc.stderr
    assert "fetched: 22 stored (21 new tickets), 1 on existing tickets," in proc.stdout


def test_fetch_counts_every_channel_and_they_add_up(wa_store, tmp_path, tix):
    from tests.plugins.email import add_config

    md = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(wa_store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n"
                         f"    address: support@toko.example\n    team: support\n")
    first = make_mail(msgid="<m1@pelanggan.example>")
    (md / "new" / "1.test").write_bytes(first)
    (md / "new" / "2.test").write_bytes(make_mail(subject="Re: Pesanan", msgid="<m2@pelanggan.example>",
                                                  in_reply_to="<m1@pelanggan.example>"))
    spool(wa_store, text_payload("wamid.X1", "hi"), name="1.json")
    spool(wa_store, body("smb_message_echoes"), name="2.json")
    spool(wa_store, body("account_update_banned"), name="3.json")
    spool(wa_store, body("unknown_field"), name="4.json")
    spool(wa_store, body("status_unknown_message"), name="5.json")
    rep = fetch_all(wa_store, media=False)
    assert rep.sources["inbox"]["tickets_created"] == 1 and rep.sources["inbox"]["joined"] == 1
    wa = rep.sources["whatsapp"]
    assert (wa["stored"], wa["tickets_created"], wa["joined"], wa["echoes"], wa["statuses"],
            wa["account_events"], wa["skipped"], wa["quarantined"]) == (1, 1, 1, 1, 1, 1, 1, 0)
    for c in rep.sources.values():
        assert c["stored"] + c["echoes"] == c["tickets_created"] + c["joined"] + c["bounces"]
    assert rep.tickets_created == 2
    proc = tix("-v", "fetch", "--no-send")  # nothing new: the per-source lines are still there
    assert "  inbox: 0 stored (0 new tickets)" in proc.stdout and "  whatsapp: 0 stored" in proc.stdout


@pytest.mark.parametrize("name", sorted(p.stem for p in FIELDS.glob("*.json")))
def test_every_field_fixture_is_taken_in_or_counted(wa_store, name):
    spool(wa_store, body(name))
    rep = fetch_spool(wa_store, media=False)
    taken = (rep.stored + rep.statuses + rep.account_events + rep.contact_events + rep.echoes + rep.skipped
             + rep.quarantined)
    assert taken >= 1, rep
    assert rep.quarantined == (1 if name == "many_changes_one_text" else 0), rep.errors
    assert PNID  # the fixtures name the configured number


def test_webhook_events_lists_account_events_for_admins(wa_store, tix):
    spool(wa_store, body("account_update_banned"), name="1.json")
    spool(wa_store, body("account_review_update"), name="2.json")
    fetch_spool(wa_store, media=False)
    rows = json.loads(tix("webhook", "events", "-f", "json").stdout)
    assert [(r["field"], r["severity"]) for r in rows] == [("account_update", "incident"),
                                                           ("account_review_update", "info")]
    rows = json.loads(tix("webhook", "events", "--incidents", "-f", "json").stdout)
    assert [r["text"] for r in rows] == ["account DISABLED_UPDATE; ban: DISABLE on 2026-12-01"]
    assert "ban: DISABLE" in tix("webhook", "events").stdout


def test_the_commented_whatsapp_example_with_alerts_is_valid():
    from pathlib import Path

    from tix import yamlio
    from tix.channels.whatsapp import validate_config

    text = (Path(__file__).resolve().parent.parent / "tix" / "data" / "tix.example.yaml").read_text()
    start = text.index("# whatsapp:\n")
    block = text[start:text.index("\n\n", start)]
    doc = yamlio.loads("\n".join(line[2:] for line in block.splitlines()), "tix.yaml")
    assert "alerts" in doc["whatsapp"] and doc["whatsapp"]["templates"]["promo"]["category"] == "marketing"
    assert validate_config(doc["whatsapp"], "tix.yaml") == []


def test_a_previous_user_id_still_finds_the_contact_in_a_later_run(wa_store):
    spool(wa_store, text_payload("wamid.L1", "hi", user_id="US.1000000000000000001"))
    fetch_spool(wa_store, media=False)
    spool(wa_store, body("system_user_changed_user_id"))
    fetch_spool(wa_store, media=False)
    late = text_payload("wamid.L2", "late delivery under my old id", ts=1760000300, user_id="US.1000000000000000001")
    late["entry"][0]["changes"][0]["value"]["contacts"][0].pop("wa_id")
    late["entry"][0]["changes"][0]["value"]["messages"][0].pop("from")
    late["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"] = "US.1000000000000000001"
    spool(wa_store, late)
    rep = fetch_spool(wa_store, media=False)
    assert rep.stored == 1 and rep.joined == 1
    assert {e["contact"] for e in events(wa_store, "message.received")} == {1}
    assert contact(wa_store, 1)["fields"]["wa_user_id"] == "US.1000000000000000003"


def test_identity_changes_over_runs_keep_every_previous_user_id(wa_store):
    spool(wa_store, text_payload("wamid.H1", "hi", user_id="US.1000000000000000001"))
    fetch_spool(wa_store, media=False)
    spool(wa_store, body("system_user_changed_number"))  # 001 -> 002, new number 15555550199
    fetch_spool(wa_store, media=False)
    spool(wa_store, body("system_user_changed_user_id"))  # names 001 as previous, new 003
    fetch_spool(wa_store, media=False)
    c = contact(wa_store, 1)
    assert c["fields"]["wa_user_id"] == "US.1000000000000000003"
    assert c["fields"]["wa_previous_user_ids"] == ["US.1000000000000000001", "US.1000000000000000002"]
    assert sorted(c["phones"]) == ["15555550100", "15555550199"]
    assert len(events(wa_store, "whatsapp.system")) == 2


def test_replaying_a_post_quarantined_whole_by_an_older_tix_takes_the_text_in(wa_store):
    """Stores upgraded from a tix that quarantined the 18-change POST whole: replay takes in
    the customer's text and the account changes and keeps only the bad change quarantined."""
    from tix.ingest import replay_quarantined
    from tix.store import quarantine

    raw = (FIELDS / "many_changes_one_text.json").read_bytes()
    old = quarantine.put(wa_store, "whatsapp", raw, "malformed messages change: …", source="whatsapp",
                         key="spool:00000000000000000001-1-1.json", ext="json")
    rep = replay_quarantined(wa_store)
    assert rep.replayed == [old] and not rep.failed
    assert [e["data"]["text"] for e in events(wa_store, "message.received")] == ["hello, my order has not arrived"]
    assert len(events(wa_store, "whatsapp.account")) == 15
    (left,) = quarantine.entries(wa_store)
    assert left["id"] != old and "not an object" in left["error"]
    again = replay_quarantined(wa_store)  # the bad change alone: still bad, stays
    assert again.failed == [left["id"]] and not again.replayed


PYWA_SHOWN = {
    "message:text": "Body Text\n",
    "message:image": "[image]\n    [attachment 1: image.jpg, image/jpeg, not downloaded yet (tix fetch retries)]\n",
    "message:media_with_url": "[image]\n    [attachment 1: image.jpg, image/jpeg, not downloaded yet",
    "message:video": "caption\n    [attachment 1: video.mp4, video/mp4, not downloaded yet",
    "message:document": "caption\n    [attachment 1: filename.pdf, application/pdf, not downloaded yet",
    "message:audio": "[audio]\n    [attachment 1: audio.oga, audio/ogg; codecs=opus, not downloaded yet",
    "message:voice": "[voice message]\n    [attachment 1: audio.oga",
    "message:static_sticker": "[sticker]\n    [attachment 1: sticker.webp, image/webp",
    "message:animated_sticker": "[animated sticker]\n    [attachment 1: sticker.webp",
    "message:reaction": "[reaction \U0001F62E]\n",
    "message:unreaction_empty": "[reaction removed]\n",
    "message:unreaction_no_emoji": "[reaction removed]\n",
    "message:current_location": "[location] (12.25089, 43.90539)\n",
    "message:chosen_location": "[location] Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025 (37.4611978, -122.2164385)",
    "message:contacts": "[contact card] Chandler Bing +1 555-555-5555; Monica +1 666-666-6666;",
    "message:order": "[order: 3 items]\n    order (catalog 354160437058781):\n      HAMBURGER  x3  30 ILS\n",
    "message:unsupported": "[unsupported message - Message type unknown]\n    ! WhatsApp error 131051: Message "
                           "type unknown - Message type is currently not supported.\n",
    "message:unsupported_with_type": "[unsupported message: pool - Message type unknown]\n",
    "message:reply": "replied text\n",
    "message:forwarded": "forwarded text\n    (forwarded)\n",
    "message:forwarded_many_times": "text forwarded many times\n    (forwarded many times)\n",
    "message:interactive_message_with_err": "[interactive message]\n    ! WhatsApp error 131000: Something went wrong"
                                            " - Unsupported webhook payload\n",
    "message:referral": 'BODY\n    came from ad or post "AD_TITLE" <AD_OR_POST_FB_URL>\n',
    "callback_button:button": "title\n",
    "callback_button:quick_reply": "title\n",
    "callback_button:quick_reply_without_context": "title\n",
    "callback_selection:callback": "title\n",
    "callback_selection:description": "title (description)\n",
    "edited_message:image": "[edited] Updated image caption\n    [attachment 1: image.jpg",
    "deleted_message:revoke": "[message deleted by the customer]\n",
}


@pytest.mark.parametrize("case", sorted(PYWA_SHOWN))
def test_show_renders_each_message_type(wa_store, tix, case):
    """`tix show` for every inbound message type in the pywa fixtures (MIT, tests/data/whatsapp/pywa)."""
    name, key = case.split(":")
    payload = json.loads((FIXTURES / "pywa" / f"{name}.json").read_text())[key]
    text = (json.dumps(payload).replace("1122334455667", PNID).replace("106540352242922", PNID)
            .replace("<BUSINESS_PHONE_NUMBER_ID>", PNID))
    spool(wa_store, text.encode())
    fetch_spool(wa_store, media=False)
    shown = tix("show", "1").stdout
    assert re.search(r"via whatsapp  \[msg \d+\]\n" + re.escape(PYWA_SHOWN[case]), shown), shown


def test_show_gives_an_email_attachment_its_size_and_how_to_save_it(wa_store, tmp_path, tix):
    from tests.plugins.email import add_config

    md = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(wa_store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n"
                         f"    address: support@toko.example\n    team: support\n")
    (md / "new" / "1.test").write_bytes(make_mail(attachments=[("struk.pdf", "application/pdf", b"%PDF-1.4 x")]))
    fetch_all(wa_store, media=False)
    shown = tix("show", "1").stdout
    assert "    [attachment 1: struk.pdf, application/pdf, 10 bytes]\n      save: tix attachment 1 1 -o FILE\n" in shown


@pytest.mark.parametrize("alerts, error", [
    ("{email: ops}", "whatsapp.alerts.email: not an email address: 'ops'"),
    ("{webhook: 'https://u:secret@hooks.example/x'}", "whatsapp.alerts.webhook https://hooks.example/…: a user:"),
    ("{slack: true}", "whatsapp.alerts needs email: ADDRESS(ES) or webhook: URL"),
])
def test_alerts_targets_are_checked(alerts, error):
    from tix import yamlio
    from tix.channels.whatsapp import validate_config

    doc = yamlio.loads(f"whatsapp:\n  numbers: [{{phone_number_id: '1'}}]\n  alerts: {alerts}\n", "tix.yaml")
    problems = [str(p) for p in validate_config(doc["whatsapp"], "tix.yaml")]
    assert len(problems) == 1 and error in problems[0] and "secret" not in problems[0]


def test_an_old_incident_is_recorded_but_alerts_no_one(wa_store):
    edit_config(wa_store, "\n  version: v25.0\n", "\n  version: v25.0\n  alerts:\n    email: [ops@toko.example]\n")
    old = body("account_update_banned")
    old["entry"][0]["time"] = 1760000000  # October 2025: long before the run
    spool(wa_store, old)
    rep = fetch_spool(wa_store, media=False)
    assert rep.account_events == 1
    assert events(wa_store, "whatsapp.account")[0]["data"]["at"] == "2025-10-09T08:53:20.000000Z"
    assert not events(wa_store, "outbox.queued")


def test_what_the_customer_sent_reaches_the_terminal_harmlessly(wa_store, tix):
    evil = "\x1b]0;owned\x07\u202e"
    flow = body("flow_reply")
    reply = flow["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]["nfm_reply"]
    reply["response_json"] = json.dumps({"note": evil})
    order = body("order")
    order["entry"][0]["changes"][0]["value"]["messages"][0]["order"]["product_items"][0]["product_retailer_id"] = evil
    ad = body("ad_referral")
    ad["entry"][0]["changes"][0]["value"]["messages"][0]["referral"]["headline"] = evil
    for i, b in enumerate((flow, order, ad)):
        spool(wa_store, b, name=f"{i}.json")
    fetch_spool(wa_store, media=False)
    shown = tix("show", "1").stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert shown.count("\u241b]0;owned\u2407") == 5  # subject, flow line and field, SKU, headline


def test_a_message_deleted_on_the_phone_joins_its_ticket_as_a_business_deletion(wa_store, tix):
    spool(wa_store, text_payload("wamid.Q", "question", ts=1760000300), name="1.json")
    spool(wa_store, body("smb_message_echoes"), name="2.json")
    revoke = body("smb_message_echoes")
    echo = revoke["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    echo.update(id="wamid.ECHO0002", timestamp="1760000600", type="revoke",
                revoke={"original_message_id": "wamid.ECHO0001"})
    echo.pop("text")
    spool(wa_store, revoke, name="3.json")
    rep = fetch_spool(wa_store, media=False)
    assert rep.echoes == 2 and rep.tickets_created == 1
    sent = events(wa_store, "message.sent")
    assert [e["ticket"] for e in sent] == [1, 1] and sent[1]["data"]["revoke_of"] == "wamid.ECHO0001"
    assert "[message deleted from the phone app]" in tix("show", "1").stdout
