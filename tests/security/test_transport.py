"""HTTPS by default off loopback, and the CLI's certificate trust (docs/api.md, "Transport").

A real service listens on 10.77.0.1 (in a network namespace of its own);
the CLI runs beside it as a remote client would: its own empty data folder and config
folder, the admin token given with --token. "Nothing was sent" is checked in the service's
own access log.
"""

from __future__ import annotations

import json
import os
import select
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.netns_service import ADDRESS, PORT, NetnsService, network_namespace, service_in
from tests.service.harness import temp_folder
from viridian.service.tls import Transport, choose_transport, is_loopback


def fingerprint(cert: Path) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint",
                          "-sha256"], check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1]


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    with network_namespace() as name:
        yield name


@pytest.fixture(scope="module")
def service(namespace: str) -> Iterator[NetnsService]:
    with service_in(namespace) as running:
        yield running


@pytest.fixture
def client_home() -> Iterator[Path]:
    """A remote client's own data folder and config folder (no local service record);
    removed after the test (kept with ``VIRIDIAN_TEST_KEEP`` set)."""
    with temp_folder("vir-tls-client-") as home:  # every CLI run in it has ended by
        yield home  # then: run() and on_terminal() wait for them


def cli(service: NetnsService, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return service.run([sys.executable, "-m", "viridian.cli.main", "--url", service.url,
                        "--data-dir", str(home / "data"), "--token", service.token, *args],
                       env={"XDG_CONFIG_HOME": str(home / "config")})


def test_non_loopback_serves_https_with_a_fresh_self_signed_certificate(
        service: NetnsService) -> None:
    cert, key = service.data_dir / "tls" / "cert.pem", service.data_dir / "tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (service.data_dir / "tls").stat().st_mode & 0o777 == 0o700
    start_line = next(line for line in service.log.read_text().splitlines()
                      if "serving on" in line)
    assert f"serving on {service.url}, self-signed certificate SHA-256 " \
           f"{fingerprint(cert)}" in start_line


def test_the_services_own_files_are_private(service: NetnsService) -> None:
    assert service.data_dir.stat().st_mode & 0o777 == 0o700
    for name in ("token", "service.json", "catalog.sqlite", "probe.json", "tls/key.pem"):
        assert (service.data_dir / name).stat().st_mode & 0o777 == 0o600, name


def test_cli_refuses_an_unknown_certificate_when_not_interactive(
        service: NetnsService, client_home: Path) -> None:
    before = service.requests_seen("/api/v1/host")
    result = cli(service, client_home, "host", "show")
    assert result.returncode == 5, result
    assert "never seen before" in result.stderr
    assert f"--trust-fingerprint {fingerprint(service.data_dir / 'tls' / 'cert.pem')}" \
        in result.stderr
    assert service.requests_seen("/api/v1/host") == before  # the token never left


def test_trust_on_first_use_pins_the_fingerprint(
        service: NetnsService, client_home: Path) -> None:
    expected = fingerprint(service.data_dir / "tls" / "cert.pem")
    wrong = ("00" if not expected.startswith("00") else "11") + expected[2:]
    refused = cli(service, client_home, "--trust-fingerprint", wrong, "host", "show")
    assert refused.returncode == 5 and f"presents a certificate with SHA-256 {expected}" \
        in refused.stderr, refused
    first = cli(service, client_home, "--trust-fingerprint", expected.replace(":", "").lower(),
                "host", "show")
    assert first.returncode == 0, first
    assert f"Transport:                  https, self-signed certificate SHA-256 {expected}" \
        in first.stdout
    known = client_home / "config" / "viridian" / "known_services.json"
    assert known.stat().st_mode & 0o777 == 0o600 and expected in known.read_text()
    again = cli(service, client_home, "host", "show", "--json")  # pinned: no flag needed
    assert again.returncode == 0, again
    assert f'"fingerprint_sha256": "{expected}"' in again.stdout


def on_terminal(service: NetnsService, home: Path, answer: str | None,
                *args: str) -> tuple[int, str]:
    """The CLI run as a person would, on a pseudo-terminal (stdin, stdout and stderr):
    ``answer`` is typed once the trust question is shown. (exit code, what the
    terminal showed)."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        ["ip", "netns", "exec", service.namespace, sys.executable, "-m", "viridian.cli.main",
         "--url", service.url, "--data-dir", str(home / "data"), "--token", service.token,
         *args], stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(home / "config")})
    os.close(slave)
    shown, typed = b"", answer is None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the CLI ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if not typed and b"Trust it" in shown and b"?" in shown.split(b"Trust it")[-1]:
                    os.write(master, f"{answer}\n".encode())
                    typed = True
            elif process.poll() is not None:
                break
        return process.wait(timeout=60), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_the_trust_question_on_a_terminal(service: NetnsService, client_home: Path) -> None:
    """Never seen before, on a terminal: the fingerprint is shown and asked about; "n"
    sends nothing and pins nothing (exit 5), "y" pins it and the request goes through."""
    expected = fingerprint(service.data_dir / "tls" / "cert.pem")
    known = client_home / "config" / "viridian" / "known_services.json"
    before = service.requests_seen("/api/v1/host")
    code, shown = on_terminal(service, client_home, "n", "host", "show")
    assert code == 5, shown
    assert f"SHA-256 fingerprint: {expected}" in shown and "Trust it" in shown
    assert "not trusted; nothing was sent" in shown
    assert not known.exists() and service.requests_seen("/api/v1/host") == before
    code, shown = on_terminal(service, client_home, "y", "host", "show")
    assert code == 0, shown
    assert f"https, self-signed certificate SHA-256 {expected}" in shown
    assert service.requests_seen("/api/v1/host") == before + 1
    pinned = json.loads(known.read_text())[f"https://{ADDRESS}:{service.port}"]
    assert pinned["fingerprint_sha256"] == expected
    code, shown = on_terminal(service, client_home, None, "host", "show")  # asked no more
    assert code == 0 and "Trust it" not in shown, shown


def test_a_changed_certificate_is_refused_on_a_terminal_too(
        service: NetnsService, client_home: Path) -> None:
    """Pinned to another certificate than the one presented now: refused (exit 5) with
    both fingerprints, no question asked, nothing sent."""
    other = client_home / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={ADDRESS}",
                    "-keyout", str(other / "key.pem"), "-out", str(other / "cert.pem"),
                    "-days", "2"], check=True, capture_output=True)
    old, now = fingerprint(other / "cert.pem"), fingerprint(service.data_dir / "tls" / "cert.pem")
    known = client_home / "config" / "viridian" / "known_services.json"
    known.parent.mkdir(parents=True)
    known.write_text(json.dumps({f"https://{ADDRESS}:{service.port}": {
        "fingerprint_sha256": old, "certificate": (other / "cert.pem").read_text()}}))
    before = service.requests_seen("/api/v1/host")
    code, shown = on_terminal(service, client_home, "y", "host", "show")
    assert code == 5, shown
    assert f"HAS CHANGED: pinned SHA-256 {old}, now {now}" in shown.replace("\r\n", " ")
    assert "Trust it" not in shown and "nothing was sent" in shown
    assert service.requests_seen("/api/v1/host") == before


def test_ca_file_verifies_the_certificate_and_its_address(
        service: NetnsService, client_home: Path) -> None:
    cert = service.data_dir / "tls" / "cert.pem"
    good = cli(service, client_home, "--ca-file", str(cert), "host", "show")
    assert good.returncode == 0, good
    other = cli(service, client_home, "--ca-file", "/etc/ssl/certs/ca-certificates.crt",
                "host", "show")
    assert other.returncode == 5, other
    assert "is not valid for the CA file" in other.stderr and "nothing was sent" in other.stderr


def test_console_cookie_is_secure_over_https(service: NetnsService) -> None:
    login = ("import http.client,ssl,sys\n"
             "c=http.client.HTTPSConnection(sys.argv[1],context=ssl._create_unverified_context())\n"
             "c.request('POST','/login','token='+sys.argv[2],"
             "{'Content-Type':'application/x-www-form-urlencoded'})\n"
             "print(c.getresponse().getheader('set-cookie'))")
    cookie = service.run([sys.executable, "-c", login, f"{ADDRESS}:{service.port}", service.token])
    assert cookie.returncode == 0, cookie
    assert "HttpOnly" in cookie.stdout and "Secure" in cookie.stdout


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A service's data folder kept over restarts; removed after the test, once
    ``service_in`` stopped the service (kept with ``VIRIDIAN_TEST_KEEP`` set, for its log)."""
    with temp_folder("vir-tls-") as folder:
        yield folder


def test_changed_certificate_is_refused_loudly(namespace: str, client_home: Path,
                                               data_dir: Path) -> None:
    """Pinned first, then the service comes back with a new certificate (same address)."""
    with service_in(namespace, port=PORT + 1, data_dir=data_dir) as first:
        old = fingerprint(data_dir / "tls" / "cert.pem")
        assert cli(first, client_home, "--trust-fingerprint", old, "host", "show").returncode == 0
    for name in ("cert.pem", "key.pem"):
        (data_dir / "tls" / name).unlink()
    with service_in(namespace, port=PORT + 1, data_dir=data_dir) as second:
        new = fingerprint(data_dir / "tls" / "cert.pem")
        assert new != old
        before = second.requests_seen("/api/v1/host")
        result = cli(second, client_home, "host", "show")
        assert result.returncode == 5, result
        assert f"HAS CHANGED: pinned SHA-256 {old}, now {new}" in result.stderr
        assert "nothing was sent" in result.stderr
        assert second.requests_seen("/api/v1/host") == before


def test_insecure_http_is_plain_and_warned(namespace: str, client_home: Path) -> None:
    with service_in(namespace, "--insecure-http", port=PORT + 2) as plain:
        result = plain.run([sys.executable, "-m", "viridian.cli.main", "--url",
                            f"http://{ADDRESS}:{PORT + 2}", "--data-dir", str(client_home),
                            "--token", plain.token, "host", "show", "--json"])
        assert result.returncode == 0, result
        assert '"scheme": "http"' in result.stdout
        assert "WARNING" in plain.log.read_text() and "unencrypted" in plain.log.read_text()
        assert not (plain.data_dir / "tls").exists()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.77.0.1", False),
    ("example.org", False)])
def test_loopback_is_127_8_and_ipv6_one(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_transport_rule(tmp_path: Path) -> None:
    assert choose_transport(tmp_path, "127.0.0.1", {}) == Transport("http")
    assert choose_transport(tmp_path, "127.0.0.1", {"transport": "https"}).scheme == "https"
    warned = choose_transport(tmp_path, "0.0.0.0", {}, insecure_http=True)
    assert warned.scheme == "http" and warned.warning and "not loopback" in warned.warning
    made = choose_transport(tmp_path, "0.0.0.0", {})
    assert (made.scheme, made.self_signed) == ("https", True)
    assert made.cert_file is not None
    ssl.create_default_context(cafile=str(made.cert_file))  # a loadable certificate
    given = choose_transport(tmp_path, "0.0.0.0", {"tls_certificate": str(made.cert_file),
                                                   "tls_key": str(made.key_file)})
    assert (given.self_signed, given.fingerprint) == (False, made.fingerprint)
