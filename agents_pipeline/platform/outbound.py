"""Rules for every outbound HTTP call the pipeline makes: the alert webhook, the help's LLM, LangSmith.

Each of these sends a secret (a token in the webhook URL, a bearer token, an API key), so:

* HTTPS only, except to loopback (127.0.0.0/8, ::1, localhost), where a local LLM server or
  a test receiver listens. Plain HTTP to any other host needs AGENTS_PIPELINE_ALLOW_PLAIN_HTTP=1,
  set on purpose by whoever runs the process (an environment variable, never run config).
* No redirects. urllib follows them, turns a POST into a GET and carries every header, the
  Authorization header included, to whatever host the Location names; a 3xx is therefore an
  error here, and the operator sets the final URL instead.

Errors name the variable and the host, never the whole URL: it may hold credentials or a token.
The module sits in the platform layer, below the domains that call out (alerts, help, langsmith),
so none of them imports another; it needs nothing beyond the standard library.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.request
from collections.abc import Mapping
from http.client import HTTPResponse
from urllib.parse import urlsplit

from agents_pipeline.core.errors import ConfigurationError

ALLOW_PLAIN_HTTP = "AGENTS_PIPELINE_ALLOW_PLAIN_HTTP"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class InsecureEndpointError(ConfigurationError):
    """An endpoint that would carry a secret in clear text, or is not an http(s) URL at all."""


def flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in TRUE_WORDS


def plain_http_allowed(env: Mapping[str, str] | None = None) -> bool:
    return flag((os.environ if env is None else env).get(ALLOW_PLAIN_HTTP))


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; a DNS name other than localhost never is."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def require_secure_url(url: str, variable: str, *, allow_plain_http: bool | None = None) -> str:
    """Returns the URL's host, or raises InsecureEndpointError before any connection is made.

    ``allow_plain_http`` None reads AGENTS_PIPELINE_ALLOW_PLAIN_HTTP from the environment now."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InsecureEndpointError(f"{variable} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InsecureEndpointError(f"{variable} must be an http(s) URL with a host (scheme {scheme or 'none'!r})")
    if scheme == "http" and not is_loopback(host):
        allowed = plain_http_allowed() if allow_plain_http is None else allow_plain_http
        if not allowed:
            raise InsecureEndpointError(
                f"{variable} uses plain http:// to {host!r}, which is not loopback: the secret it carries "
                f"would cross the network unencrypted. Use https://, or set {ALLOW_PLAIN_HTTP}=1 to allow it")
    return host


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an HTTPError with that code (urllib's default handler raises it when
    ``redirect_request`` gives no new request), so the request never leaves the configured host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl) -> None:  # type: ignore[override]
        return None


_OPENER = urllib.request.build_opener(RefuseRedirects)


def open_without_redirects(request: urllib.request.Request, timeout: float) -> HTTPResponse:
    """urllib's urlopen without redirects: a 3xx raises urllib.error.HTTPError like a 4xx."""
    return _OPENER.open(request, timeout=timeout)


def is_redirect(status: int) -> bool:
    return 300 <= status < 400
