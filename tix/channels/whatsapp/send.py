"""WhatsApp out: compose a Cloud API message for a ticket, and send one outbox item.

The outbox (tix.outbox) uses these:

- `compose(store, reader, ticket_row, text, template=None) -> dict`: the outbox item for a
  reply. Inside the 24-hour customer-service window (counted from the customer's last
  WhatsApp message on the ticket) free text is allowed; outside it, or after Meta said
  131047 for this ticket, only an approved template may be sent, and without `template`
  compose raises UsageError saying so instead of trying. A template is named by its key
  under `whatsapp.templates` in tix.yaml; its parameters are Jinja2 (sandboxed) over
  `ticket`, `contact`, `text`.
- `Sender(store)`: the outbox's sender for channel `whatsapp` (one HTTP session per flush),
  which calls
- `send_item(store, item) -> dict` (the item as composed, or the outbox's item holding it
  under `payload`): `POST {base_url}/{version}/{phone_number_id}/messages`
  with the bearer token from `token_env`, the item's id echoed in `biz_opaque_callback_data`
  (status webhooks carry it back, so a timed-out send can be reconciled). Returns
  `{"message": wamid, "channel": "whatsapp", ...}`; the status webhooks of that wamid then
  update the message (tix.channels.whatsapp).

A reply with a file (`tix reply --attach`, tix.outbox.attachments) is one media message per
file (`as_media`): the item names the blob (`media`), and sending it first uploads the bytes
(`POST {base_url}/{version}/{phone_number_id}/media`, multipart), then sends the message
with the media id Meta answered.

Errors are classified by Graph `error.code`, never by HTTP status or text (API-NOTES §2):
`SendTemporary` (retry with backoff; `.retry_after` seconds when the code says how long),
`TemplateRequired` (131047, a `SendPermanent`: do not resend free text), `SendPermanent`
(note it on the ticket), `ChannelStopped` (token and account errors: stop and alert).
Every exception carries `.code` (the Graph code or None) and never the token.

Item shape (JSON, stored by the outbox)::

    {"channel": "whatsapp", "ticket": 42, "phone_number_id": "1000…", "inbox": "1555…",
     "to": ["+15555550100"], "wa_to": "+15555550100" | null, "recipient": "US.1000…" | null, "text": "…",
     "template": "followup" | null, "context": "wamid…" | null, "request": {Graph JSON body}}
"""
from __future__ import annotations

from datetime import datetime, timedelta

from tix.errors import ChannelStopped, SendPermanent, SendTemporary, UsageError
from tix.store.log import utcnow

MAX_TEXT = 4096
CONTEXT_AFTER = timedelta(minutes=30)

RETRY_CODES = frozenset({4, 80007, 130429, 131056, 131000, 131016, 131057})
TEMPLATE_CODES = frozenset({131047})
STOP_CODES = frozenset({0, 3, 10, 190, 368, 131031, 130497, 131048, *range(200, 300)})


class TemplateRequired(SendPermanent):
    """Meta refused free text (131047): more than 24 hours since the customer last wrote."""

    template_required = True


# -- compose ---------------------------------------------------------------------------------
def compose(store, reader, ticket_row: dict, text: str, template: str | None = None,
            now: datetime | None = None) -> dict:
    """The outbox item for replying `text` (or the named template) on a WhatsApp ticket."""
    from tix.channels.whatsapp import load_settings

    settings = load_settings(store)
    number = ticket_row["number"]
    if settings is None:
        raise UsageError("tix.yaml has no whatsapp: section; cannot send WhatsApp messages")
    if ticket_row.get("channel") != "whatsapp":
        raise UsageError(f"ticket #{number} is not a WhatsApp ticket (channel {ticket_row.get('channel')})")
    conv = conversation(store, number)
    contact = reader.contact(ticket_row["contact"]) if ticket_row.get("contact") else None
    to, recipient = _recipient(conv, contact)
    if not to and not recipient:
        raise UsageError(f"ticket #{number}: no WhatsApp number or user id to send to")
    pnid = _phone_number_id(settings, conv, ticket_row)
    now = now or utcnow()
    base = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    base.update({"to": to} if to else {"recipient": recipient})
    item = {"channel": "whatsapp", "ticket": number, "phone_number_id": pnid,
            "inbox": ticket_row.get("inbox"), "to": [to or recipient], "wa_to": to,
            "recipient": None if to else recipient,
            "text": text, "template": template, "context": None}
    if template and template not in settings.templates and text and text.strip():
        template = None  # a text macro (already rendered into `text`), not a WhatsApp template
        item["template"] = None
    if template:
        _check_marketing(store, settings, template, ticket_row, contact)
        base.update(_template_body(settings, template, ticket_row, contact, text))
    else:
        _check_window(settings, conv, number, now)
        if not text or not text.strip():
            raise UsageError("a WhatsApp reply needs text")
        if len(text) > MAX_TEXT:
            raise UsageError(f"a WhatsApp text holds at most {MAX_TEXT} characters, this one has {len(text)}")
        base.update({"type": "text", "text": {"preview_url": False, "body": text}})
        ctx = _context(conv, now)
        if ctx:
            base["context"] = {"message_id": ctx}
            item["context"] = ctx
    item["request"] = base
    return item


def conversation(store, number: int) -> dict:
    """What sending needs from a ticket's events: the last inbound message, window facts."""
    last_in = None
    last_out_ts = None
    template_only_since = None
    for ev in store.events_for(ticket=number):
        data = ev.get("data") or {}
        kind = ev["type"]
        if kind == "message.received" and data.get("channel") == "whatsapp":
            last_in = {**data, "ts": ev["ts"]}
            template_only_since = None  # a new customer message opens the window again
        elif kind == "message.sent":
            last_out_ts = ev["ts"]
        elif (kind == "message.status" and data.get("template_only")) or _says_131047(kind, data):
            template_only_since = ev["ts"]
    return {"last_in": last_in, "last_out_ts": last_out_ts, "template_only": template_only_since}


def _says_131047(kind: str, data: dict) -> bool:
    if not kind.startswith("outbox."):
        return False
    return data.get("code") == 131047 or "131047" in str(data.get("error") or "")


def _recipient(conv: dict, contact: dict | None) -> tuple[str | None, str | None]:
    last = conv["last_in"] or {}
    if last.get("from"):
        return "+" + last["from"], last.get("from_user_id")
    if last.get("from_user_id"):
        return None, last["from_user_id"]
    if contact:
        import orjson

        phones = contact.get("phones") or []
        uid = orjson.loads(contact.get("fields") or "{}").get("wa_user_id")
        return ("+" + phones[0] if phones else None), uid
    return None, None


def _phone_number_id(settings, conv: dict, row: dict) -> str:
    last = conv["last_in"] or {}
    if last.get("phone_number_id"):
        return str(last["phone_number_id"])
    num = settings.by_inbox(row.get("inbox"))
    if num:
        return num.phone_number_id
    if len(settings.numbers) == 1:
        return next(iter(settings.numbers))
    raise UsageError(f"ticket #{row['number']}: which business number? add inbox {row.get('inbox')!r} "
                     f"to whatsapp.numbers in tix.yaml")


def window_open(settings, conv: dict, now: datetime) -> bool:
    last = conv["last_in"]
    if not last or conv["template_only"]:
        return False
    since = _when(last.get("sent_at") or last["ts"])
    return now - since < timedelta(hours=settings.window_hours)


def _check_window(settings, conv: dict, number: int, now: datetime) -> None:
    if window_open(settings, conv, now):
        return
    names = ", ".join(sorted(settings.templates)) or "none configured in whatsapp.templates"
    if conv["template_only"]:
        why = "WhatsApp refused free text for this ticket (131047, re-engagement)"
    elif conv["last_in"]:
        ago = now - _when(conv["last_in"].get("sent_at") or conv["last_in"]["ts"])
        why = f"the customer last wrote on WhatsApp {_ago(ago)} ago"
    else:
        why = "the customer has not written on WhatsApp on this ticket"
    raise UsageError(f"ticket #{number}: {why}; outside the {settings.window_hours:g}-hour customer-service "
                     f"window only an approved template may be sent (whatsapp.templates: {names})")


def _context(conv: dict, now: datetime) -> str | None:
    """Quote the customer's message when the reply would otherwise be ambiguous."""
    last = conv["last_in"]
    if not last or not last.get("message") or last.get("wa_type") in ("reaction", "system"):
        return None
    answered_since = conv["last_out_ts"] and conv["last_out_ts"] > last["ts"]
    if answered_since or now - _when(last.get("sent_at") or last["ts"]) > CONTEXT_AFTER:
        return last["message"]
    return None


def _check_marketing(store, settings, key: str, row: dict, contact: dict | None) -> None:
    """Refuse a marketing template to a customer who stopped marketing messages. A template is
    marketing by `whatsapp.templates.KEY.category`, else by the category Meta last reported
    for it (a `template_category_update`)."""
    spec = settings.templates.get(key)
    if spec is None or not contact or not _opted_out(contact):
        return
    category = spec.get("category") or _meta_category(store, str(spec.get("name")))
    if str(category or "").lower() == "marketing":
        raise UsageError(f"ticket #{row['number']}: the customer stopped marketing messages on WhatsApp; "
                         f"{key!r} is a marketing template, not sent")


def _meta_category(store, name: str) -> str | None:
    con = store.read().connect()
    try:
        row = con.execute("SELECT coalesce(data->'value'->>'new_category', data->'value'->>'correct_category') "
                          "FROM events WHERE type = 'whatsapp.account' AND data->>'template' = ? "
                          "AND data->>'field' IN ('template_category_update', 'template_correct_category_detection') "
                          "ORDER BY seq DESC LIMIT 1", [name]).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def _opted_out(contact: dict) -> bool:
    """Whether the customer's last WhatsApp preference stopped marketing messages."""
    from tix.tickets.contacts import contact_fields

    fields = contact.get("fields")
    fields = fields if isinstance(fields, dict) else contact_fields(contact)
    return str(fields.get("wa_marketing") or "").lower() == "stop"


def _template_body(settings, key: str, row: dict, contact: dict | None, text: str) -> dict:
    spec = settings.templates.get(key)
    if spec is None:
        names = ", ".join(sorted(settings.templates)) or "none"
        raise UsageError(f"unknown WhatsApp template {key!r}; configured in whatsapp.templates: {names}")
    from jinja2 import TemplateError

    from tix.templates import environment, with_fields

    env = environment()
    values = {"ticket": with_fields(row), "contact": with_fields(contact), "text": text or ""}
    params = []
    try:
        for i, p in enumerate(spec.get("params") or [], 1):
            if isinstance(p, dict):  # named parameter: {name: template}
                (pname, tmpl), = p.items()
                param = {"type": "text", "parameter_name": str(pname),
                         "text": env.from_string(str(tmpl)).render(values)}
            else:
                tmpl, param = p, {"type": "text", "text": env.from_string(str(p)).render(values)}
            if not param["text"].strip():  # Meta refuses an empty parameter: say so before queueing
                hint = " (give the text with -m TEXT)" if "text" in str(tmpl) and not (text or "").strip() else ""
                raise UsageError(f"whatsapp.templates.{key}: parameter {i} ({tmpl}) is empty{hint}; "
                                 "WhatsApp refuses a template with an empty parameter")
            params.append(param)
    except (TemplateError, ValueError) as exc:
        raise UsageError(f"whatsapp.templates.{key}: {exc}") from None
    tpl: dict = {"name": str(spec["name"]), "language": {"code": str(spec.get("language") or "id")}}
    if params:
        tpl["components"] = [{"type": "body", "parameters": params}]
    return {"type": "template", "template": tpl}


def as_media(item: dict, infos: list[dict]) -> dict:
    """Make a composed text item a media message carrying the one file `infos` names (a blob
    reference: name, type, size, sha256). The file is uploaded when the item is sent."""
    from tix.outbox.attachments import whatsapp_kind

    (info,) = infos
    kind = whatsapp_kind(info["type"])
    request = {k: v for k, v in item["request"].items() if k not in ("text", "type")}
    request["type"] = kind
    request[kind] = {"filename": info["name"]} if kind == "document" else {}
    item.update(request=request, media=info, text="")
    return item


def upload_media(store, settings, token: str, item: dict, session=None) -> str:
    """POST the item's blob to `/{phone-number-id}/media` (multipart); the media id Meta gives."""
    import requests

    from tix.store.files import read_regular

    info = item["media"]
    data = read_regular(store.path("blobs", "sha256", info["sha256"][:2], info["sha256"]))
    url = f"{settings.base_url}/{settings.version}/{item['phone_number_id']}/media"
    try:
        resp = (session or requests).post(url, headers={"Authorization": f"Bearer {token}"}, timeout=(5, 120),
                                          data={"messaging_product": "whatsapp", "type": info["type"]},
                                          files={"file": (info["name"], data, info["type"])})
    except requests.RequestException as exc:
        err = SendTemporary(f"WhatsApp media upload failed: {exc.__class__.__name__}")
        err.code, err.retry_after = None, None
        raise err from None
    if resp.status_code == 200:
        try:
            return str(resp.json()["id"])
        except (ValueError, KeyError, TypeError):
            pass
        err = SendTemporary("WhatsApp media upload answered 200 without a media id")
        err.code, err.retry_after = None, None
        raise err
    raise classify(resp.status_code, _error(resp), attempts=0)


# -- send ------------------------------------------------------------------------------------
def send_item(store, item: dict, session=None) -> dict:
    """POST one composed item to the Cloud API; classify failures (see the module docstring)."""
    import requests

    from tix.channels.whatsapp import load_settings

    settings = load_settings(store)
    if settings is None:
        raise ChannelStopped("tix.yaml has no whatsapp: section")
    token = _token(settings)
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else item  # an outbox item wraps it
    body = dict(payload["request"])
    if payload.get("media"):  # upload the file first, then send the message naming its media id
        kind = body["type"]
        body[kind] = {**body[kind], "id": upload_media(store, settings, token, payload, session)}
    ref = item.get("id") or item.get("outbox_id")
    if ref and "biz_opaque_callback_data" not in body:
        body["biz_opaque_callback_data"] = str(ref)
    url = f"{settings.base_url}/{settings.version}/{payload['phone_number_id']}/messages"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        resp = (session or requests).post(url, json=body, headers=headers, timeout=(5, 30))
    except requests.Timeout:
        err = SendTemporary("WhatsApp API timed out (the message may have been accepted; the status webhook will tell)")
        err.code, err.retry_after, err.maybe_sent = None, None, True
        raise err from None
    except requests.RequestException as exc:
        err = SendTemporary(f"WhatsApp API unreachable: {exc.__class__.__name__}")
        err.code, err.retry_after = None, None
        raise err from None
    if resp.status_code == 200:
        return _accepted(resp, payload)
    raise classify(resp.status_code, _error(resp), attempts=int(item.get("attempts") or 0))


class Sender:
    """The outbox's sender for WhatsApp (`tix.outbox.sending`): one HTTP session per flush."""

    def __init__(self, store):
        self.store = store
        self.session = None

    def render(self, item: dict) -> dict:
        """The Graph request was made when the item was queued (`compose`)."""
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else item
        return payload["request"]

    def send(self, item: dict, _request: dict) -> dict:
        if self.session is None:
            import requests

            self.session = requests.Session()
        return send_item(self.store, item, session=self.session)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def _token(settings) -> str:
    from tix.errors import TixError

    try:
        token = settings.secret("token")
    except TixError as exc:
        raise ChannelStopped(f"whatsapp: {exc}") from None
    if not token:
        raise ChannelStopped("whatsapp: no token configured (token_env in tix.yaml)")
    return token


def _accepted(resp, item: dict) -> dict:
    try:
        data = resp.json()
        wamid = data["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        err = SendTemporary("WhatsApp API answered 200 without a message id")
        err.code, err.retry_after, err.maybe_sent = None, None, True
        raise err from None
    who = (data.get("contacts") or [{}])[0]
    return {"message": wamid, "channel": "whatsapp", "to": item.get("wa_to"), "recipient": item.get("recipient"),
            "wa_id": who.get("wa_id"), "user_id": who.get("user_id"), "inbox": item.get("inbox"),
            "phone_number_id": item.get("phone_number_id"), "template": item.get("template"),
            "context": item.get("context"), "message_status": data["messages"][0].get("message_status")}


def _error(resp) -> dict:
    try:
        err = resp.json().get("error")
        return err if isinstance(err, dict) else {}
    except (ValueError, AttributeError):
        return {}


def classify(status: int, error: dict, attempts: int = 0) -> Exception:
    """The exception for a failed send, from the Graph `error.code` (HTTP status only as fallback)."""
    code = error.get("code")
    code = int(code) if isinstance(code, (int, str)) and str(code).isdigit() else None
    details = (error.get("error_data") or {}).get("details") or ""
    text = f"WhatsApp API error {code if code is not None else 'HTTP ' + str(status)}: {error.get('message') or ''}"
    text = text.rstrip(": ") + (f" ({details})" if details else "")
    if code in TEMPLATE_CODES:
        exc: Exception = TemplateRequired(text + "; only an approved template can be sent now")
    elif code in STOP_CODES or (code is None and status in (401, 403)):
        exc = ChannelStopped(text + "; WhatsApp sending stopped until the token/account is fixed")
    elif code in RETRY_CODES or status >= 500 or (code is None and status == 429):
        exc = SendTemporary(text)
        exc.retry_after = 4 ** min(attempts, 5) if code == 131056 else (60 if code == 131057 else None)
    else:
        exc = SendPermanent(text)
    exc.code = code
    exc.http_status = status
    return exc


# -- helpers ---------------------------------------------------------------------------------
def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"
