"""Test certificates and a PostgreSQL server that accepts TCP only over TLS.

Certificates come from the `openssl` command line (the `cryptography` package is not a
dependency of the project): a throwaway CA, a server certificate for localhost and 127.0.0.1
signed by it, and a second, unrelated CA to show that verification really happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agents_pipeline.core.localdb import LocalCluster, scratch_home
from agents_pipeline_tests import pg

HBA = """\
# Unix socket: the test's own administration. TCP: TLS and a password, nothing else.
local     all all                trust
hostssl   all all 127.0.0.1/32   scram-sha-256
hostnossl all all 0.0.0.0/0      reject
"""


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    return folder / f"{name}.crt", folder / f"{name}.key"


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca_crt, _ = _ca(folder, "test-ca")
    other_crt, _ = _ca(folder, "other-ca")
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "test-ca.crt", "-CAkey", "test-ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=folder)
    key = folder / "server.key"
    os.chmod(key, 0o600)  # PostgreSQL refuses a key that others can read
    if os.geteuid() == 0:
        for path in folder.iterdir():
            shutil.chown(path, "postgres", "postgres")
        shutil.chown(folder, "postgres", "postgres")
    return Certificates(ca_crt, folder / "server.crt", key, other_crt)


def start_tls_cluster() -> tuple[LocalCluster, Certificates]:
    """A cluster with ssl=on whose pg_hba.conf refuses TCP without TLS."""
    home = scratch_home("ap-test-tls-")
    certs = make_certificates(home / "tls")
    cluster = LocalCluster(home, extra_settings=(
        f"timezone='{pg.SERVER_TIMEZONE}'", "fsync=off", "ssl=on",
        f"ssl_cert_file={certs.server_cert}", f"ssl_key_file={certs.server_key}",
        "ssl_min_protocol_version=TLSv1.2"))
    cluster.init()
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text(HBA)
    if os.geteuid() == 0:
        shutil.chown(hba, "postgres", "postgres")
    cluster.up()
    return cluster, certs


def superuser_password(cluster: LocalCluster) -> str:
    return (cluster.home / "superuser.password").read_text().strip()
