"""Libraries through the real service: the default library, a registered folder indexed
with kind, format, size and checksum; an upload cut midway and resumed from the offset the
service names, downloaded back by range; a checksum mismatch refused with nothing kept."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service

CHUNK = 256 * 1024


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def make_iso(folder: Path) -> bytes:
    (folder / "src").mkdir()
    (folder / "src" / "hello.txt").write_bytes(os.urandom(600 * 1024))
    iso = folder / "media.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-volid", "MEDIA", "-output",
                    str(iso), str(folder / "src")], check=True, capture_output=True, timeout=60)
    return iso.read_bytes()


def test_registered_folder_is_indexed(api: httpx.Client, tmp_path: Path) -> None:
    assert [lib["name"] for lib in api.get("/library").json()["libraries"]] == ["default"]
    data = make_iso(tmp_path)
    (tmp_path / "seed.yaml").write_text("#cloud-config\n")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "d.qcow2"), "1M"],
                   check=True)
    assert api.post("/library", json={"name": "media", "path": str(tmp_path)}
                    ).status_code == 201
    items = {i["name"]: i for i in api.get("/library/media").json()["items"]}
    assert items["media.iso"]["kind"] == "iso" and items["media.iso"]["format"] == "iso"
    assert items["media.iso"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert items["media.iso"]["size"] == len(data)
    assert (items["d.qcow2"]["kind"], items["d.qcow2"]["format"]) == ("disk", "qcow2")
    assert items["seed.yaml"]["kind"] == "snippet"
    again = api.post("/library", json={"name": "other", "path": str(tmp_path)})
    assert again.status_code == 409 and "already has that name or path" in again.text
    bad = api.post("/library", json={"name": "x/y", "path": str(tmp_path)})
    assert bad.status_code == 400 and "allowed: 1..128 characters" in bad.text
    assert api.delete("/library/media").status_code == 200
    assert (tmp_path / "media.iso").exists()  # unregistering keeps the files


def test_upload_interrupted_resumed_and_downloaded(api: httpx.Client, service: Service,
                                                   tmp_path: Path) -> None:
    data = make_iso(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    upload = api.post("/library/default/uploads",
                      json={"name": "up.iso", "size": len(data), "sha256": sha}).json()
    url = f"/library/uploads/{upload['id']}"
    assert api.patch(url, content=data[:CHUNK], headers={"Upload-Offset": "0"}
                     ).json()["offset"] == CHUNK
    # the client "lost" its place and resends the first chunk: refused, offset named
    lost = api.patch(url, content=data[:CHUNK], headers={"Upload-Offset": "0"})
    assert lost.status_code == 409 and f"resume at Upload-Offset {CHUNK}" in lost.text
    service.kill()  # the service dies between chunks; the upload survives it
    service.start()
    with service.client() as again:
        shown = again.get(url)
        offset = int(shown.headers["Upload-Offset"])
        assert offset == CHUNK
        while offset < len(data):
            answer = again.patch(url, content=data[offset:offset + CHUNK],
                                 headers={"Upload-Offset": str(offset)}).json()
            offset = answer["offset"]
        assert answer["complete"] and answer["item"]["sha256"] == sha
        assert answer["item"]["kind"] == "iso"
        whole = again.get("/library/default/content/up.iso")
        assert whole.content == data
        part = again.get("/library/default/content/up.iso", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert again.get(url).status_code == 404  # the finished upload is gone


def test_checksum_mismatch_is_refused_and_nothing_kept(api: httpx.Client,
                                                      service: Service) -> None:
    data = os.urandom(1000)
    upload = api.post("/library/default/uploads",
                      json={"name": "bad.iso", "size": 1000, "sha256": "0" * 64}).json()
    answer = api.patch(f"/library/uploads/{upload['id']}", content=data,
                       headers={"Upload-Offset": "0"})
    assert answer.status_code == 400
    assert "checksum mismatch for 'bad.iso'" in answer.text and "nothing was kept" in answer.text
    library = service.data_dir / "library"
    assert not (library / "bad.iso").exists()
    assert list((library / ".uploads").iterdir()) == []
    names = [i["name"] for i in api.get("/library/default").json()["items"]]
    assert "bad.iso" not in names


def test_cli_lists_shows_and_downloads(service: Service, tmp_path: Path) -> None:
    (service.data_dir / "library" / "note.yaml").write_text("#cloud-config\nhostname: a\n")
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "viridian.cli.main", "library", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    listed = cli("list")
    assert listed.returncode == 0 and "default" in listed.stdout, listed.stderr
    shown = cli("show", "default")
    assert "note.yaml" in shown.stdout and "snippet" in shown.stdout
    target = tmp_path / "copy.yaml"
    assert cli("download", "default", "note.yaml", str(target)).returncode == 0
    assert target.read_text() == "#cloud-config\nhostname: a\n"
    missing = cli("show", "nope")
    assert missing.returncode == 3 and "no library named 'nope'" in missing.stderr
