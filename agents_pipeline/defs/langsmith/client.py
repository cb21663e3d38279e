"""The pinned ``langsmith`` client, set up for a sync job rather than for tracing.

What the defaults of langsmith 0.15.1 would get wrong here, and what this module does instead:

* Retries: the client mounts a urllib3 ``Retry`` (3 tries, honouring Retry-After) on every
  request and logs nothing about them. We pass our own subclass that counts each retry by
  cause (429, 5xx, connection) and logs it, and caps Retry-After, so an operator sees "rate
  limited 4 times" in the asset metadata. After the last try the client raises and the sync
  fails with its cursor unchanged.
* Ingest failures: ``multipart_ingest``/``batch_ingest_runs`` swallow errors (a warning and an
  optional callback). We install ``tracing_error_callback`` and turn what it receives into
  a failure of the push; ``auto_batch_tracing=False`` keeps every write synchronous, so the
  callback has fired before ``multipart_ingest`` returns.
* Secrets: the client puts a masked key (first 5, last 2 characters) into connection errors
  and logs some errors as they are. Every message we keep or log goes through ``Redactor``,
  and a logging filter scrubs the ``langsmith`` loggers.
* Redirects: requests follows them and strips ``Authorization`` on a change of host, but not
  ``x-api-key``, the header LangSmith's key travels in; a 307 would carry the key and the
  request body to any host. The session follows none (``max_redirects = 0``) and a response
  hook turns a 3xx into ``RedirectRefused`` before requests looks at the Location.
* Transport: the endpoint must be HTTPS unless it is on loopback (``outbound``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from langsmith import Client
from langsmith import utils as ls_utils
from urllib3.exceptions import MaxRetryError

from agents_pipeline.defs.langsmith.settings import API_KEY, ENDPOINT
from agents_pipeline.platform import outbound

log = logging.getLogger(__name__)

_MASKED_KEY_LINE = re.compile(r"API Key: \S*")
_KEY_HEADER = re.compile(r"(x-api-key['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+", re.IGNORECASE)


class LangSmithSyncError(Exception):
    """A sync or push step failed; the message is safe to log and show (no key in it)."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class RedirectRefused(Exception):
    """LangSmith (or something in front of it) answered 3xx; the request was not repeated elsewhere."""

    def __init__(self, status: int, method: str, path: str) -> None:
        super().__init__(f"LangSmith answered HTTP {status} (a redirect) to {method} {path}; redirects are "
                         f"not followed, so the API key is never sent to another host: set {ENDPOINT} "
                         f"to the final URL")
        self.status = status


def _refuse_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    if response.is_redirect or outbound.is_redirect(response.status_code):
        path = requests.utils.urlparse(response.request.url or "").path  # no query: it may hold ids
        response.close()
        raise RedirectRefused(response.status_code, response.request.method or "?", path)
    return response


class Redactor:
    """Removes the API key, the client's masked form of it and x-api-key headers from text."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret or ""

    def __call__(self, text: object) -> str:
        out = str(text)
        if self.secret:
            out = out.replace(self.secret, "[redacted]")
            if len(self.secret) >= 12:  # also partial echoes (prefix/suffix) of a long key
                out = out.replace(self.secret[:12], "[redacted]").replace(self.secret[-12:], "[redacted]")
        out = _MASKED_KEY_LINE.sub("API Key: [redacted]", out)
        return _KEY_HEADER.sub(r"\1[redacted]", out)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        clean = self.redact(message)
        if clean != message or record.exc_info:
            record.msg, record.args = clean, None
            record.exc_info = record.exc_text = None  # tracebacks may quote headers
        return True


_LANGSMITH_LOGGERS = ("langsmith", "langsmith.client", "langsmith.utils", "urllib3.connectionpool")


@contextmanager
def redacted_logs(redact: Redactor) -> Iterator[None]:
    """Scrubs the langsmith and urllib3 loggers for the duration of a sync."""
    flt = _RedactingFilter(redact)
    loggers = [logging.getLogger(name) for name in _LANGSMITH_LOGGERS]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)


class RetryStats:
    """Counts of retried requests by cause, shared by every Retry object of one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def record(self, cause: str) -> None:
        with self._lock:
            self.counts[cause] += 1


class ObservedRetry(ls_utils.LangSmithRetry):
    """urllib3 Retry that reports each retry to ``RetryStats`` and the log.

    urllib3 builds a new Retry per attempt through ``new()``, so the observer is carried there.
    """

    def __init__(self, *args: Any, observer: RetryStats | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer = observer

    def new(self, **kw: Any) -> ObservedRetry:
        new = super().new(**kw)
        new.observer = self.observer
        return new

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 429:
            cause = "rate_limited"
        elif response is not None and response.status >= 500:
            cause = "server_error"
        elif error is not None:
            cause = "connection_error"
        else:
            cause = "other"
        path = (url or "").split("?")[0]
        status = getattr(response, "status", "-")
        try:
            new = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            log.warning("LangSmith %s %s: %s (HTTP %s), giving up after %d attempts", method, path,
                        cause.replace("_", " "), status, len(self.history) + 1)
            raise
        if self.observer is not None:
            self.observer.record(cause)
        wait = self.get_retry_after(response) if response is not None else None
        log.warning("LangSmith %s %s: %s (HTTP %s), retry %d%s", method, path, cause.replace("_", " "),
                    status, len(new.history), f" after Retry-After {wait:g}s" if wait else "")
        return new


def make_client(*, api_key: str, endpoint: str, max_retries: int = 5, backoff_factor: float = 0.5,
                retry_after_max: int = 120, timeout_s: float = 60.0,
                on_ingest_error: Any = None) -> tuple[Client, RetryStats]:
    """A synchronous client with observed retries and no redirects; the caller closes ``client.session``.

    Raises InsecureEndpointError for a plain-http endpoint off loopback, before any connection."""
    outbound.require_secure_url(endpoint, ENDPOINT)
    stats = RetryStats()
    retry = ObservedRetry(
        total=max_retries, status_forcelist=[408, 425, 429, 500, 502, 503, 504],
        backoff_factor=backoff_factor, backoff_max=60, raise_on_redirect=False, raise_on_status=False,
        respect_retry_after_header=True, retry_after_max=retry_after_max, allowed_methods=None,
        observer=stats,
    )
    client = Client(
        api_url=endpoint, api_key=api_key, retry_config=retry,
        timeout_ms=(10_000, int(timeout_s * 1000)),
        auto_batch_tracing=False,          # writes happen now, in this thread, or fail now
        omit_traced_runtime_info=True,     # the Dagster worker is not the agent's runtime
        tracing_sampling_rate=1.0,         # never let LANGSMITH_TRACING_SAMPLING_RATE drop a push
        tracing_error_callback=on_ingest_error,
    )
    client.session.max_redirects = 0                       # the guarantee: requests raises first
    client.session.hooks["response"].append(_refuse_redirect)  # the clear message
    return client, stats


def close_client(client: Client) -> None:
    try:
        client.session.close()
    except Exception:  # closing is best effort: nothing to report to the operator
        log.debug("closing the LangSmith session failed", exc_info=True)


def describe_error(exc: BaseException, redact: Redactor, what: str) -> LangSmithSyncError:
    """Turns whatever the client raised into one safe line that names the cause."""
    redirect = _redirect_cause(exc)
    if redirect is not None:
        return LangSmithSyncError(f"{what}: {redirect}", status=redirect.status)
    status = _status_of(exc)
    if isinstance(exc, ls_utils.LangSmithAuthError) or status in (401, 403):
        message = f"{what}: LangSmith refused the API key (HTTP {status or 401}); check {API_KEY}"
        return LangSmithSyncError(message, status=status)
    if isinstance(exc, ls_utils.LangSmithRateLimitError):
        return LangSmithSyncError(f"{what}: still rate limited (HTTP 429) after all retries", retryable=True, status=429)
    if isinstance(exc, ls_utils.LangSmithConnectionError):
        errno = re.search(r"\[Errno -?\d+\] [^\"')]+", str(exc))
        reason = errno.group(0) if errno else ("timed out" if "timed out" in str(exc).lower() else "connection failed")
        return LangSmithSyncError(f"{what}: cannot reach LangSmith ({redact(reason)})", retryable=True)
    if isinstance(exc, ls_utils.LangSmithAPIError) or (status is not None and status >= 500):
        return LangSmithSyncError(f"{what}: LangSmith server error (HTTP {status or 500}) after all retries",
                                  retryable=True, status=status or 500)
    if isinstance(exc, ls_utils.LangSmithNotFoundError):
        return LangSmithSyncError(f"{what}: not found in LangSmith ({_first_line(redact(exc))})", status=404)
    if status is not None and 400 <= status < 500:
        detail = re.search(r"Error\('[^']*', '(.*)'\)", str(exc))
        said = f": {redact(detail.group(1))[:200]}" if detail else ""
        return LangSmithSyncError(f"{what}: LangSmith refused the request (HTTP {status}){said}", status=status)
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):  # JSON decoding, pydantic validation
        return LangSmithSyncError(f"{what}: malformed reply from LangSmith ({type(exc).__name__}: "
                                  f"{_first_line(redact(exc))[:300]})")
    return LangSmithSyncError(f"{what}: {type(exc).__name__}: {_first_line(redact(exc))[:300]}", status=status)


def _redirect_cause(exc: BaseException) -> RedirectRefused | None:
    """``exc`` or the exception it was raised from (the client wraps what the session raised)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, RedirectRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status the client quoted in its message (it raises no status attribute)."""
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None):
        return int(response.status_code)
    text = str(exc)
    match = re.search(r"\b([45]\d\d) (?:Client|Server) Error", text) or re.search(r"Server error \((\d{3})\)", text)
    return int(match.group(1)) if match else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
