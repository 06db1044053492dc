"""A real OpenLDAP server (Debian's slapd) for the access tests, on a private folder and
free ports: ``slapd.conf`` written in a temporary folder (the host's /etc/ldap is only read
for its schema files), users and groups loaded with ``slapadd``, a self-signed certificate
for ldaps:// and StartTLS, and the process ended on every path."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BASE_DN = "dc=viridian,dc=test"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "directory-admin-pw"
USERS = {"alice": "alice-ldap-pw", "bob": "bob-ldap-pw"}
GROUPS = {"vmadmins": ["alice"], "staff": ["alice", "bob"]}


@dataclass(frozen=True)
class Directory:
    url: str
    ldaps_url: str
    ca_file: Path
    base_dn: str = BASE_DN
    admin_dn: str = ADMIN_DN
    admin_password: str = ADMIN_PASSWORD


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path) -> str:
    schema = "/etc/ldap/schema"
    return "\n".join([
        *(f"include {schema}/{name}.schema" for name in ("core", "cosine", "nis",
                                                         "inetorgperson")),
        "modulepath /usr/lib/ldap", "moduleload back_mdb",
        f"pidfile {folder}/slapd.pid", f"argsfile {folder}/slapd.args",
        f"TLSCertificateFile {folder}/cert.pem", f"TLSCertificateKeyFile {folder}/key.pem",
        "database mdb", f"suffix \"{BASE_DN}\"", f"rootdn \"{ADMIN_DN}\"",
        f"rootpw {ADMIN_PASSWORD}", f"directory {folder}/data", "maxsize 16777216",
        "access to attrs=userPassword by anonymous auth by * none",
        "access to * by * read", ""])


def _entries() -> str:
    blocks = [f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\n"
              "o: viridian test\ndc: viridian",
              f"dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people",
              f"dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups"]
    for uid, password in USERS.items():
        blocks.append(f"dn: uid={uid},ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\n"
                      f"uid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}")
    for name, members in GROUPS.items():
        lines = [f"dn: cn={name},ou=groups,{BASE_DN}", "objectClass: groupOfNames",
                 f"cn: {name}"]
        lines += [f"member: uid={m},ou=people,{BASE_DN}" for m in members]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _certificate(folder: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen: {log.read_text()[-3000:]}")


@contextmanager
def running_slapd() -> Iterator[Directory]:
    """slapd with :data:`USERS` and :data:`GROUPS` on ldap:// and ldaps:// (free ports)."""
    folder = Path(tempfile.mkdtemp(prefix="vir-slapd-", dir="/tmp"))
    process: subprocess.Popen[bytes] | None = None
    try:
        (folder / "data").mkdir()
        _certificate(folder)
        (folder / "slapd.conf").write_text(_config(folder))
        subprocess.run(["slapadd", "-f", str(folder / "slapd.conf")], input=_entries().encode(),
                       check=True, capture_output=True)
        plain, secure = _free_port(), _free_port()
        log = folder / "slapd.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                ["slapd", "-d", "0", "-f", str(folder / "slapd.conf"), "-h",
                 f"ldap://127.0.0.1:{plain}/ ldaps://127.0.0.1:{secure}/"],
                stdout=out, stderr=out, start_new_session=True)
        _wait_listening(plain, process, log)
        _wait_listening(secure, process, log)
        yield Directory(f"ldap://127.0.0.1:{plain}", f"ldaps://127.0.0.1:{secure}",
                        folder / "cert.pem")
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
