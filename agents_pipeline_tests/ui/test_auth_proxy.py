"""deploy/nginx/agents-pipeline.conf run by Debian's nginx in front of the tests' `dagster dev`.

The webserver has no authentication of its own, so the shipped proxy configuration is the
one door: it must refuse /graphql without the right password, pass the UI, GraphQL queries
and the websocket subscriptions through with it, and send plain HTTP to HTTPS. The file is
used as shipped; only its addresses and paths are pointed at temporary ones.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster
import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agents_pipeline.core import settings
from agents_pipeline.core.localdb import free_port

CONFIG = settings.PROJECT_DIR / "deploy" / "nginx" / "agents-pipeline.conf"
INSTALLER = settings.PROJECT_DIR / "scripts" / "install_system_deps.sh"
USER, PASSWORD = "operator", "correct horse battery staple"
MAIN_CONFIG = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/agents-pipeline.conf;
}}
"""


@dataclass
class Proxy:
    https: str
    http: str
    ca: str
    tmp: Path

    def log_tail(self) -> str:
        return (self.tmp / "error.log").read_text(errors="replace")[-2000:]


def _find_nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def _nginx() -> str:
    """Debian's nginx; installed by scripts/install_system_deps.sh when missing (as root)."""
    found = _find_nginx()
    if found is None:
        proc = subprocess.run([str(INSTALLER)], capture_output=True, text=True, timeout=600)
        found = _find_nginx()
        if found is None:
            pytest.skip("nginx is not installed and scripts/install_system_deps.sh could not install it "
                        f"(it needs root and apt-get): {(proc.stdout + proc.stderr).strip()[-500:]}")
    return found


def _point_at(config: str, replacements: dict[str, str]) -> str:
    """The shipped file with its addresses and paths swapped; each must occur exactly once, so a
    change to the file that this test would no longer exercise fails here, not silently."""
    for old, new in replacements.items():
        assert config.count(old) == 1, f"{CONFIG.name} should contain {old!r} once"
        config = config.replace(old, new)
    return config


def _wait_listening(port: int, proc: subprocess.Popen, proxy: Proxy, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}:\n{proxy.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nginx did not listen on {port} within {timeout:.0f} s:\n{proxy.log_tail()}")


@pytest.fixture(scope="module")
def proxy(dagster_dev, tmp_path_factory) -> Iterator[Proxy]:
    nginx = _nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp / "proxy.key"), "-out", str(tmp / "proxy.crt")], check=True, capture_output=True)
    # The password file exactly as docs/DEPLOY.md makes it: `openssl passwd -6` (SHA-512 crypt).
    digest = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD, capture_output=True,
                            text=True, check=True).stdout.strip()
    (tmp / "htpasswd").write_text(f"{USER}:{digest}\n")
    https_port, http_port = free_port(), free_port()
    webserver_port = dagster_dev.url.rsplit(":", 1)[1]
    (tmp / "agents-pipeline.conf").write_text(_point_at(CONFIG.read_text(), {
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl http2;\n": f"    listen 127.0.0.1:{https_port} ssl http2;\n",
        "    listen [::]:443 ssl http2;\n": "",
        "server 127.0.0.1:3000;": f"server 127.0.0.1:{webserver_port};",
        "/etc/ssl/certs/agents-pipeline.crt": str(tmp / "proxy.crt"),
        "/etc/ssl/private/agents-pipeline.key": str(tmp / "proxy.key"),
        "/etc/nginx/agents-pipeline.htpasswd": str(tmp / "htpasswd"),
    }))
    # As root, nginx's workers would otherwise run as nobody, who cannot read the temporary files.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(MAIN_CONFIG.format(tmp=tmp, user=user))
    command = [nginx, "-p", f"{tmp}/", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    result = Proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", str(tmp / "proxy.crt"), tmp)
    try:
        _wait_listening(https_port, proc, result)
        yield result
    finally:
        proc.send_signal(signal.SIGQUIT)   # graceful stop of the master and its worker
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _graphql(proxy: Proxy, auth: tuple[str, str] | None) -> requests.Response:
    return requests.post(f"{proxy.https}/graphql", json={"query": "{ version }"}, auth=auth, verify=proxy.ca,
                         timeout=30)


def test_graphql_without_the_right_credentials_is_refused(proxy):
    anonymous = requests.get(f"{proxy.https}/graphql", verify=proxy.ca, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="agents-pipeline"'
    for auth in ((USER, "wrong password"), ("intruder", PASSWORD), (USER, "")):
        assert _graphql(proxy, auth).status_code == 401, auth
    assert requests.get(f"{proxy.https}/", verify=proxy.ca, timeout=30).status_code == 401


def test_graphql_and_the_ui_answer_with_the_right_credentials(proxy):
    answer = _graphql(proxy, (USER, PASSWORD))
    assert answer.status_code == 200, proxy.log_tail()
    assert answer.json() == {"data": {"version": dagster.__version__}}
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    page = requests.get(f"{proxy.https}/", auth=(USER, PASSWORD), verify=proxy.ca, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'id="root"' in page.text and "/_next/static/" in page.text   # the UI's single page
    script = page.text.split('src="', 1)[1].split('"', 1)[0]
    assert requests.get(f"{proxy.https}{script}", auth=(USER, PASSWORD), verify=proxy.ca, timeout=30).ok


def test_subscriptions_pass_the_websocket_upgrade_through(proxy):
    """The UI follows a run's logs over a websocket on /graphql: without the upgrade headers the
    proxy would answer the handshake itself and run pages would stay empty."""
    tls = ssl.create_default_context(cafile=proxy.ca)
    url = proxy.https.replace("https://", "wss://") + "/graphql"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with connect(url, ssl=tls, subprotocols=["graphql-ws"], additional_headers={"Authorization": f"Basic {token}"},
                 open_timeout=30) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=30)) == {"type": "connection_ack"}
    with pytest.raises(InvalidStatus) as refused:
        connect(url, ssl=tls, subprotocols=["graphql-ws"], open_timeout=30)
    assert refused.value.response.status_code == 401


def test_plain_http_only_redirects_and_large_bodies_are_refused(proxy):
    redirect = requests.get(f"{proxy.http}/graphql?x=1", allow_redirects=False, timeout=30)
    assert redirect.status_code == 301 and redirect.headers["Location"] == "https://127.0.0.1/graphql?x=1"
    too_big = requests.post(f"{proxy.https}/graphql", data=b"x" * (5 * 1024 * 1024), auth=(USER, PASSWORD),
                            headers={"Content-Type": "application/json"}, verify=proxy.ca, timeout=30)
    assert too_big.status_code == 413
