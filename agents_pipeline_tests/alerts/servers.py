"""Real receivers for delivery tests: an HTTP webhook endpoint and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebhookReceiver:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0           # answer 500 to this many requests first
    redirect: tuple[int, str] | None = None   # answer (status, Location) to every POST
    attempts: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)   # (method, path) of every request
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.attempts += 1
                state.requests.append(("POST", self.path))
                failing = state.fail_next > 0
                if failing:
                    state.fail_next -= 1
                elif state.redirect is None:
                    state.received.append(json.loads(body))
                    state.headers.append(dict(self.headers))
            if state.redirect is not None and not failing:
                self.send_response(state.redirect[0])
                self.send_header("Location", state.redirect[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(500 if failing else 200)
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self) -> None:  # noqa: N802 - where urllib sends a POST it followed a 301-303 with
            with state.lock:
                state.requests.append(("GET", self.path))
                state.headers.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=s3cret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class MailSink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []      # every AUTH attempt's user name, successful or not

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl CLI), to serve STARTTLS and to trust as the CA."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextmanager
def smtp_server(*, user: str | None = None, password: str | None = None,
                tls: tuple[Path, Path] | None = None,
                implicit_tls: tuple[Path, Path] | None = None) -> Iterator[tuple[int, MailSink]]:
    """aiosmtpd on a free port; with ``tls`` it requires STARTTLS (and AUTH only over TLS); with
    ``implicit_tls`` it speaks TLS from the first byte, as SMTPS on port 465 does."""
    sink = MailSink()
    kwargs: dict[str, Any] = {}
    if user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            sink.logins.append(auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?")
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # unhandled: the server answers 535
        # aiosmtpd counts only STARTTLS as TLS; under implicit TLS the whole session is encrypted.
        kwargs = {"authenticator": authenticator, "auth_require_tls": tls is not None}
    if tls is not None:
        kwargs.update(tls_context=_server_context(tls), require_starttls=True)
    if implicit_tls is not None:
        kwargs.update(ssl_context=_server_context(implicit_tls))
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


def _server_context(pair: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pair[0]), str(pair[1]))
    return context
