"""Database URLs: parse them for psycopg2 without SQLAlchemy, and mask them for messages.

The product's URLs are SQLAlchemy-style (``postgresql+psycopg2://user:pw@host:port/db?...``)
so that the same string serves the Dagster resource and the agent library; the agent side
turns it into libpq keywords itself to avoid importing SQLAlchemy (0.3 s here).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.settings import ssl_params

_SCHEMES = {"postgresql", "postgresql+psycopg2", "postgres"}
_ALLOWED_QUERY = {
    "host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl",
    "connect_timeout", "application_name", "options", "target_session_attrs",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "sslpassword", "passfile", "gssencmode",
}


# user:password@ in a URL. The password runs to the LAST @ before the host's slash, so an
# unencoded @ inside it is masked too (urlsplit splits there as well).
_URL_PASSWORD = re.compile(r"(//[^:/@\s]*:)[^\s/]*@")
# password=... as a URL parameter or a libpq keyword (also PGPASSWORD=, sslpassword=), quoted or not.
_KEYWORD_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s,;)]*)")
# 'password': '...' in a dict or JSON repr (connection kwargs printed in an error).
_MAPPING_PASSWORD = re.compile(r"(?i)([\"']\w*password[\"']\s*:\s*)([\"'])(?:(?!\2).)*\2")


def mask_url(url: str) -> str:
    """The text with every password in it replaced by ***, for logs and errors.

    Takes a URL or any message that may hold one (an exception's text), so callers can pass
    whatever they are about to print.
    """
    masked = _URL_PASSWORD.sub(r"\1***@", url)
    masked = _KEYWORD_PASSWORD.sub(r"\1***", masked)
    return _MAPPING_PASSWORD.sub(r"\1\2***\2", masked)


def connect_kwargs(url: str) -> dict[str, str | int]:
    """libpq keyword arguments for psycopg2.connect from a product URL.

    Raises ConfigurationError naming what is wrong, never echoing the password.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"malformed database URL {mask_url(url)!r}: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"database URL {mask_url(url)!r} must start with postgresql+psycopg2:// "
            f"(got scheme {parts.scheme or 'none'!r})"
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigurationError(f"database URL {mask_url(url)!r} names no database")
    kwargs: dict[str, str | int] = {"dbname": dbname}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port:
        kwargs["port"] = port
    hosts: list[str] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _ALLOWED_QUERY:
            raise ConfigurationError(f"database URL {mask_url(url)!r} has unknown parameter {key!r}")
        if key == "host":
            hosts.append(value)
            continue
        kwargs[key] = value
    if len(hosts) == 1:
        kwargs["host"] = hosts[0]
    elif hosts:
        kwargs.update(_host_lists(url, hosts, str(kwargs.get("port", ""))))
    for key, value in ssl_params().items():
        kwargs.setdefault(key, value)
    return kwargs


def _host_lists(url: str, hosts: list[str], port: str) -> dict[str, str]:
    """Several servers for failover: SQLAlchemy's form (``?host=a:5432&host=b:5433``) as libpq's
    (``host=a,b port=5432,5433``), which the URL may also give directly (``?host=a,b&port=...``);
    libpq tries them in order and keeps the first that meets ``target_session_attrs``."""
    if port:
        raise ConfigurationError(f"database URL {mask_url(url)!r}: give each repeated host its own port "
                                 f"(host=a:5432&host=b:5432) or list them (host=a,b&port=5432,5432)")
    names, ports = [], []
    for host in hosts:
        name, _, number = host.rpartition(":") if not host.startswith("/") and ":" in host else (host, "", "")
        names.append(name)
        ports.append(number)
    result = {"host": ",".join(names)}
    if any(ports):
        result["port"] = ",".join(ports)
    return result


def make_url(
    dbname: str, *, user: str, host: str, port: int | str, password: str | None = None, **query: str
) -> str:
    """A postgresql+psycopg2 URL; a host that is a directory (a Unix socket) or a list of hosts
    (failover: ``a,b`` with ports ``5432,5432``) goes in the query, as libpq keywords."""
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    params = dict(query)
    if host.startswith("/") or "," in host:
        params = {"host": host, "port": str(port), **params}
        netloc = f"{auth}@"
    else:
        netloc = f"{auth}@{host}:{port}"
    qs = "&".join(f"{k}={quote(str(v), safe='/,')}" for k, v in params.items())
    return f"postgresql+psycopg2://{netloc}/{quote(dbname, safe='')}" + (f"?{qs}" if qs else "")
