"""Downloading WhatsApp media (API-NOTES §3): look the media id up, fetch the bytes with
the bearer token, verify the sha256 Meta sent. Storing the blob and recording it is the
intake's (`tix.ingest.whatsapp.fetch_media`).

The token goes only to the configured API host and Meta's media hosts (`TOKEN_HOSTS`),
never to a URL elsewhere that a lookup answer might name; it never appears in an error.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from tix.channels.whatsapp.config import Settings
from tix.errors import TixError

MEDIA_DAYS = 7  # media ids stay downloadable for 7 days (API-NOTES §3)
MEDIA_MAX = 100 * 1024 * 1024
TOKEN_HOSTS = ("fbsbx.com", "facebook.com", "whatsapp.net", "fbcdn.net")


@dataclass
class Media:
    data: bytes
    sha256: str  # hex
    type: str | None  # MIME type


def session():
    import requests

    return requests.Session()


def token_or_none(settings: Settings) -> str | None:
    try:
        return settings.secret("token")
    except TixError:
        return None


def download_media(settings: Settings, http, token: str, item: dict) -> Media:
    """Download one attachment (`item`: `media_id`, `phone_number_id`, `sha256`, `type`).

    Raises TixError (one line, no secret) when it cannot: the caller retries on a later run.
    """
    import requests

    url = f"{settings.base_url}/{settings.version}/{item['media_id']}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        resp = http.get(url, headers=auth, params={"phone_number_id": item.get("phone_number_id") or ""},
                        timeout=(5, 30))
        if resp.status_code != 200:
            raise TixError(f"media lookup answered HTTP {resp.status_code}{_graph_code(resp)}")
        meta = resp.json()
        media_url = meta["url"]
        headers = auth if _token_allowed(media_url, settings.base_url) else {}
        with http.get(media_url, headers=headers, timeout=(5, 60), stream=True) as got:
            if got.status_code != 200:
                raise TixError(f"media download answered HTTP {got.status_code}")
            data = _read_capped(got.iter_content(65536))
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise TixError(f"media download failed: {exc.__class__.__name__}") from None
    digest = hashlib.sha256(data).digest()
    expected = meta.get("sha256") or item.get("sha256")
    if expected and not _sha_matches(expected, digest):
        raise TixError(f"sha256 mismatch (got {digest.hex()[:16]}…)")
    return Media(data, digest.hex(), meta.get("mime_type") or item.get("type"))


def _read_capped(chunks) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > MEDIA_MAX:
            raise TixError(f"media larger than {MEDIA_MAX} bytes")
    return bytes(out)


def _graph_code(resp) -> str:
    try:
        return f", error {resp.json()['error']['code']}"
    except Exception:  # noqa: BLE001 - any non-Graph body
        return ""


def _token_allowed(url: str, base_url: str) -> bool:
    """The bearer token goes to Meta's media hosts and to the configured API host only."""
    host = (urlsplit(url).hostname or "").lower()
    base_host = (urlsplit(base_url).hostname or "").lower()
    return host == base_host or any(host == h or host.endswith("." + h) for h in TOKEN_HOSTS)


def _sha_matches(expected: str, digest: bytes) -> bool:
    if expected.lower() == digest.hex():
        return True
    try:
        return base64.b64decode(expected + "=" * (-len(expected) % 4)) == digest
    except (ValueError, TypeError):
        return False
