"""Property tests of the WhatsApp payload decoder (issue 12's fuzzing harness).

Whatever a POST body holds, `decode` returns a Payload or raises `PayloadError` (the
payload is then quarantined whole, with that reason), and `Payload.parts()` then yields
parts and never raises: a change it cannot read is a `BadChange` (quarantined alone, its
siblings taken in). Texts and names they yield carry no control character that could
reach a terminal raw (the CLI's output stream shows them as symbols).
"""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tix.channels.whatsapp.config import Number, Settings
from tix.channels.whatsapp.payload import AccountEvent, BadChange, Message, PayloadError, decode

SETTINGS = Settings(raw={}, numbers={"123": Number("123", "6281100000000")})
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
               derandomize=True)  # the same inputs on every CI run

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["123", "6281234", "text", "image", "1700000000",
                                                           "wamid.X", "\x1b]0;x\x07", "\u202e"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
MESSAGE_TYPES = ["text", "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive",
                 "button", "reaction", "order", "system", "unsupported", "request_welcome", "bogus"]


@st.composite
def messages(draw):
    kind = draw(st.sampled_from(MESSAGE_TYPES))
    msg = {"from": draw(st.sampled_from(["6281234", "", None, 42])), "id": draw(st.sampled_from(["wamid.A", "", None])),
           "timestamp": draw(st.sampled_from(["1700000000", "x", None, 1700000000, "-1", "9" * 30])),
           "type": kind, kind: draw(json_values)}
    if draw(st.booleans()):
        msg["context"] = draw(json_values)
    return msg


@st.composite
def payloads(draw):
    value = {"messaging_product": "whatsapp",
             "metadata": draw(st.one_of(json_values, st.just({"phone_number_id": "123",
                                                              "display_phone_number": "6281100000000"}))),
             "contacts": draw(st.one_of(json_values, st.lists(st.fixed_dictionaries(
                 {"wa_id": st.text(max_size=12), "profile": st.fixed_dictionaries({"name": st.text(max_size=20)})}),
                 max_size=2))),
             "messages": draw(st.one_of(json_values, st.lists(messages(), max_size=3))),
             "statuses": draw(st.one_of(st.none(), json_values))}
    for key in ("message_echoes", "user_preferences", "calls", "errors", "event", "ban_info"):
        if draw(st.booleans()):
            value[key] = draw(st.one_of(json_values, st.lists(st.dictionaries(
                st.sampled_from(["id", "to", "from", "wa_id", "type", "text", "event", "value", "timestamp"]),
                scalars, max_size=5), max_size=2)))
    fields = ["messages", "account_update", "", None, "smb_message_echoes", "user_preferences", "calls",
              "message_template_status_update", "history", "bogus_field"]
    changes = [{"field": draw(st.sampled_from(fields)), "value": value}, draw(json_values)]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes[:draw(st.integers(1, 2))]}]}


def _drain(body: bytes) -> None:
    try:
        payload = decode(body, SETTINGS)
    except PayloadError:
        return
    for part in payload.parts():  # never raises: a bad change is a BadChange
        if isinstance(part, Message):
            assert isinstance(part.wamid, str) and part.wamid
        elif isinstance(part, BadChange):
            assert part.error and orjson.loads(part.body)["entry"]  # a payload of its own, for replay
        elif isinstance(part, AccountEvent):
            assert isinstance(part.data["text"], str) and part.key


def test_an_absurd_timestamp_is_no_time_not_a_crash():
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "123"}, "contacts": [{"wa_id": "6281234", "profile": {"name": "Sari"}}],
        "messages": [{"from": "6281234", "id": "wamid.A", "timestamp": "9" * 30, "type": "text",
                      "text": {"body": "halo"}}]}}]}]}
    (part,) = decode(orjson.dumps(body), SETTINGS).parts()
    assert part.wamid == "wamid.A" and part.sent_at is None


@FUZZ
@given(st.binary(max_size=500))
def test_arbitrary_bytes_decode_or_are_a_payload_error(body):
    _drain(body)


@FUZZ
@given(json_values)
def test_arbitrary_json_decodes_or_is_a_payload_error(doc):
    _drain(orjson.dumps(doc))


@FUZZ
@given(payloads())
def test_hostile_webhook_payloads_decode_or_are_a_payload_error(doc):
    _drain(orjson.dumps(doc))
