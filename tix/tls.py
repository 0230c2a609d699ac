"""TLS for every connection tix opens to a mail server (IMAP and SMTP).

Certificates are always verified, host name included: there is no switch to turn that
off. A server whose certificate comes from a private CA (or is self-signed) is trusted
by naming that CA's PEM file in the section, e.g.::

    channels:
      - name: support
        type: imap
        security: ssl          # ssl (implicit TLS, port 993) | starttls (143) | plain
        ca_file: /etc/ssl/private-ca.pem

    outbound:
      security: starttls       # starttls (587) | ssl (465) | plain (25)
      ca_file: /etc/ssl/private-ca.pem

Without `ca_file` the system's trust store is used. A certificate that fails to verify
is one line naming the server and the reason (`describe`), never a traceback.
"""
from __future__ import annotations

import ipaddress
import os
import ssl

from tix.errors import UsageError


def client_context(spec: dict, label: str) -> ssl.SSLContext:
    """A verifying client context; with `ca_file` it trusts that PEM bundle (only)."""
    ca = spec.get("ca_file")
    if not ca:
        return ssl.create_default_context()
    path = os.path.expanduser(str(ca))
    try:
        return ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UsageError(f"{label}: ca_file {path} does not exist") from None
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"{label}: ca_file {path} is not a PEM certificate file ({exc.__class__.__name__})") from None


def describe(exc: BaseException, host: str, port: int) -> str | None:
    """One line for a TLS failure, or None when `exc` is not one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return (f"TLS certificate of {host}:{port} not trusted: {reason} "
                "(for a private CA, set ca_file: to its PEM file)")
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {host}:{port} failed: {exc.reason or exc}"
    return None


def plaintext_refused(spec: dict, label: str) -> str | None:
    """Why `security: plain` is refused for this server, or None when it is allowed.

    Plain sends the password in clear, so it is only for a relay on this machine (a
    loopback host) unless the section says `allow_plaintext: true` (a private network the
    admin vouches for). Used by `tix config check` and again before connecting.
    """
    if str(spec.get("security") or "").lower() != "plain" or spec.get("allow_plaintext") is True:
        return None
    host = str(spec.get("host") or "").strip("[]")
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"{label}: security: plain would send the password in clear to {host or 'the server'}; "
            "use ssl or starttls (plain is for a loopback relay; allow_plaintext: true overrides)")


def check_plaintext(spec: dict, label: str) -> None:
    """Raise UsageError (exit 2, nothing sent) when `plaintext_refused` says so."""
    reason = plaintext_refused(spec, label)
    if reason:
        raise UsageError(reason)
