"""An OpenAI-compatible chat endpoint, called with a hard deadline and a suspicious eye.

Plain urllib (no SDK): the CLI must start fast and the endpoint may be any server that speaks
``POST {base}/chat/completions`` (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM). The whole call,
connect to last byte, runs in a worker thread joined with the timeout, because a socket
timeout bounds each read, not a server that trickles one byte per second. Any reply that is not
a chat completion with usable text raises LLMError, and the caller falls back to the extractive
answer.

The request carries the API key, so the endpoint must be HTTPS unless it is on loopback (or
AGENTS_PIPELINE_ALLOW_PLAIN_HTTP=1), and redirects are never followed: urllib would carry the
Authorization header to whatever host a 3xx names (``agents_pipeline.platform.outbound``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.platform import outbound

URL_ENV = "AGENTS_PIPELINE_HELP_LLM_URL"
KEY_ENV = "AGENTS_PIPELINE_HELP_LLM_API_KEY"
MODEL_ENV = "AGENTS_PIPELINE_HELP_LLM_MODEL"
TIMEOUT_ENV = "AGENTS_PIPELINE_HELP_LLM_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 20.0
MAX_REPLY_BYTES = 1024 * 1024
MAX_ANSWER_CHARS = 12000


class LLMError(Exception):
    """The endpoint was slow, down, or answered something that is not a usable reply."""


@dataclass(frozen=True)
class LLMSettings:
    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_tokens: int = 700
    allow_plain_http: bool = False  # AGENTS_PIPELINE_ALLOW_PLAIN_HTTP, for a non-loopback http:// URL

    def __repr__(self) -> str:  # never print the key
        return f"LLMSettings(url={self.url!r}, model={self.model!r}, timeout_s={self.timeout_s})"

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else f"{base}/chat/completions"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMSettings | None:
        """Settings from the environment; None when no URL is configured (extractive answers)."""
        env = os.environ if env is None else env
        return cls.build(env.get(URL_ENV), env.get(MODEL_ENV), env.get(KEY_ENV), env.get(TIMEOUT_ENV),
                         allow_plain_http=outbound.plain_http_allowed(env))

    @classmethod
    def build(cls, url: str | None, model: str | None, api_key: str | None,
              timeout: str | float | None, *, allow_plain_http: bool = False) -> LLMSettings | None:
        if not url:
            return None
        if not model:
            raise ConfigurationError(f"{URL_ENV} is set but {MODEL_ENV} (the model name) is not")
        try:
            seconds = DEFAULT_TIMEOUT_S if timeout in (None, "") else float(timeout)
        except ValueError:
            raise ConfigurationError(f"{TIMEOUT_ENV} must be a number of seconds, got {timeout!r}") from None
        if not 0 < seconds <= 300:
            raise ConfigurationError(f"{TIMEOUT_ENV} must be between 0 and 300 seconds, got {seconds}")
        outbound.require_secure_url(url, URL_ENV, allow_plain_http=allow_plain_http)
        return cls(url=url, model=model, api_key=api_key or None, timeout_s=seconds,
                   allow_plain_http=allow_plain_http)


@dataclass(frozen=True)
class LLMReply:
    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float


def _post(settings: LLMSettings, body: bytes) -> bytes:
    try:  # checked again here, before any connection, for settings not made by build()
        outbound.require_secure_url(settings.endpoint, URL_ENV, allow_plain_http=settings.allow_plain_http)
    except ConfigurationError as exc:
        raise LLMError(str(exc)) from None
    request = urllib.request.Request(settings.endpoint, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json",
        **({"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}),
    })
    try:
        # the caller's join enforces the deadline; the socket timeout only frees the thread
        with outbound.open_without_redirects(request, timeout=settings.timeout_s + 1) as response:
            data = response.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        if outbound.is_redirect(exc.code):
            raise LLMError(f"the LLM endpoint answered HTTP {exc.code} (a redirect), which is not followed so "
                           f"that the API key stays with the configured host; set {URL_ENV} to the final URL") from None
        raise LLMError(f"the LLM endpoint answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise LLMError(f"the LLM endpoint did not answer within {settings.timeout_s:g} s") from None
        raise LLMError(f"the LLM endpoint is unreachable: {reason}") from None
    if len(data) > MAX_REPLY_BYTES:
        raise LLMError("the LLM reply is larger than 1 MiB")
    return data


def _text(reply: object) -> tuple[str, str | None, int | None, int | None]:
    """The answer text out of a chat completion, or LLMError saying what was wrong with it."""
    if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list) or not reply["choices"]:
        raise LLMError("the LLM reply has no choices")
    choice = reply["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise LLMError("the LLM reply has no message text")
    text = content.strip()
    if len(text) < 2 or sum(ch.isalpha() for ch in text) < max(2, len(text) // 5):
        raise LLMError("the LLM reply is empty or not prose")
    if len(text) > MAX_ANSWER_CHARS:
        raise LLMError(f"the LLM reply is longer than {MAX_ANSWER_CHARS} characters")
    if "\x00" in text or "\ufffd" in text:
        raise LLMError("the LLM reply holds NUL or undecodable characters")
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    tokens = [usage.get(k) if isinstance(usage.get(k), int) else None for k in ("prompt_tokens", "completion_tokens")]
    model = reply.get("model") if isinstance(reply.get("model"), str) else None
    return text, model, tokens[0], tokens[1]


def chat(settings: LLMSettings, messages: Sequence[Mapping[str, str]]) -> LLMReply:
    """One chat completion within ``settings.timeout_s`` in total, or LLMError."""
    body = json.dumps({"model": settings.model, "messages": list(messages), "temperature": 0,
                       "max_tokens": settings.max_tokens, "stream": False}).encode("utf-8")
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["data"] = _post(settings, body)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=call, name="help-llm", daemon=True)
    worker.start()
    worker.join(settings.timeout_s)
    latency_ms = (time.monotonic() - started) * 1000
    if worker.is_alive():
        raise LLMError(f"the LLM endpoint did not answer within {settings.timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        raise error if isinstance(error, LLMError) else LLMError(f"the LLM call failed: {type(error).__name__}")
    try:
        reply = json.loads(outcome["data"])  # type: ignore[arg-type]
    except (ValueError, UnicodeDecodeError):
        raise LLMError("the LLM reply is not JSON") from None
    text, model, prompt_tokens, completion_tokens = _text(reply)
    return LLMReply(text, model or settings.model, prompt_tokens, completion_tokens, latency_ms)
