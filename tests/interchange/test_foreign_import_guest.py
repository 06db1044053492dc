"""Foreign VMs imported through the real service (issue 16 part 4): a VMware VMX with a
monolithicSparse VMDK made from the guest kit's boot disk imports (CLI) and boots; a
libvirt domain defined in the test imports with ``--from-libvirt`` and boots (refused
while it is not shut off); a Virtual
PC .vmc and a Hyper-V 2008 configuration with VHDs import with their disks, an OVF
descriptor named .xml imports as OVF; conflicts
(name, MAC, a disk another VM holds), a configuration naming a file outside its folder
and a VMDK naming one outside its own are refused and leave nothing behind."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Console, Service, act, running_service, wait_job
from viridian.cli.main import cli

pytestmark = [pytest.mark.guest]

SAMPLES = Path(__file__).parent / "foreign_samples"
ROOT = Path(__file__).resolve().parents[2]
MAC = "00:50:56:3F:00:01"
VMX = f"""config.version = "8"
virtualHW.version = "14"
displayName = "vmw"
guestOS = "other4xlinux-64"
memsize = "256"
numvcpus = "1"
ide0:0.present = "TRUE"
ide0:0.fileName = "{{disk}}"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "e1000"
ethernet0.addressType = "static"
ethernet0.address = "{MAC}"
sound.present = "TRUE"
"""


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(scope="module")
def boot_raw() -> Path:
    from viridian.guestkit import build

    return build().raw


def _cli(service: Service, *args: str, code: int = 0) -> str:
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result.output


def _import(api: httpx.Client, path: Path, **body: Any) -> dict[str, Any]:
    response = api.post("/imports", json={"path": str(path), **body})
    assert response.status_code == 202, response.text
    return wait_job(api, response.json(), 300)


def _boots(service: Service, api: httpx.Client, name: str) -> None:
    vm = api.get(f"/vms/{name}").json()
    act(api, name, "start")
    try:
        Console(service.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY", timeout=240)
    finally:
        act(api, name, "stop")


def _ide0(vm: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in vm["settings"]["ide"] if (d["controller"], d["location"]) == (0, 0))


def _vm_folders(service: Service) -> list[str]:
    return sorted(p.name for p in (service.data_dir / "vms").iterdir())


def test_vmware_vmx_vmdk_imports_and_boots(service: Service, api: httpx.Client,
                                           boot_raw: Path, tmp_path: Path) -> None:
    folder = tmp_path / "vmware"
    folder.mkdir()
    vmdk = folder / "vmw.vmdk"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=monolithicSparse", str(boot_raw), str(vmdk)], check=True)
    vmx = folder / "vmw.vmx"
    vmx.write_text(VMX.format(disk="vmw.vmdk"))
    output = _cli(service, "vm", "import", str(vmx))
    assert "imported vmw (vmware): Off" in output
    vm = api.get("/vms/vmw").json()
    disk = _ide0(vm)
    assert disk["format"] == "vpc" and disk["path"].startswith(vm["folder"])
    same = subprocess.run(["qemu-img", "compare", "-U", str(vmdk), disk["path"]],
                          capture_output=True)
    assert same.returncode == 0, same.stdout
    adapter = vm["settings"]["network_adapters"][0]
    assert (adapter["mac_mode"], adapter["mac"]) == ("static", MAC)
    assert vmdk.is_file() and vmx.is_file()  # the source is left as it was
    _boots(service, api, "vmw")

    held_disk = folder / "held.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(held_disk), "16M"], check=True)
    holder = api.post("/vms", json={"name": "holder", "memory_mb": 128, "vhd": str(held_disk)})
    assert holder.status_code == 201, holder.text
    before = _vm_folders(service)
    again = _import(api, vmx)
    assert again["state"] == "failed"
    assert "the name is used by the registered VM 'vmw'" in again["error"]["message"]
    same_mac = _import(api, vmx, name="vmw-2")
    assert same_mac["state"] == "failed" and MAC in same_mac["error"]["message"], same_mac
    held = folder / "held.vmx"
    held.write_text(VMX.format(disk="held.vhd").replace(MAC, "00:50:56:3F:00:02"))
    in_use = _import(api, held, name="vmw-3")
    assert in_use["state"] == "failed"
    assert "attached to the registered VM 'holder'" in in_use["error"]["message"]
    outside = folder / "outside.vmx"
    outside.write_text(VMX.format(disk=disk["path"]).replace(MAC, "00:50:56:3F:00:03"))
    escaped = _import(api, outside, name="vmw-4")
    assert escaped["state"] == "failed"
    assert "outside the configuration's folder" in escaped["error"]["message"]
    assert _vm_folders(service) == before


def test_vmdk_escaping_its_folder_is_refused(service: Service, api: httpx.Client,
                                            tmp_path: Path) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"S" * 4096)
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "evil.vmdk").write_text('# Disk DescriptorFile\nversion=1\n'
                                      'createType="monolithicFlat"\n'
                                      'RW 8 FLAT "../secret.raw" 0\n')
    (folder / "evil.vmx").write_text(VMX.format(disk="evil.vmdk").replace(MAC, "00:50:56:3F:00:09")
                                     .replace('"vmw"', '"evil"'))
    before = _vm_folders(service)
    job = _import(api, folder / "evil.vmx")
    assert job["state"] == "failed"
    assert "outside the disk's folder" in job["error"]["message"]
    (folder / "evil.vmdk").unlink()  # a qcow2 under a VMDK's name, backed by the secret
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", str(secret), "-F",
                    "raw", str(folder / "evil.vmdk"), "4096"], check=True)
    job = _import(api, folder / "evil.vmx")
    assert job["state"] == "failed"
    assert "outside the disk's folder" in job["error"]["message"]
    assert api.get("/vms/evil").status_code == 404 and _vm_folders(service) == before


def test_vmc_and_hyperv_2008_import_their_vhds(service: Service, api: httpx.Client,
                                               tmp_path: Path, samples: Path) -> None:
    vpc = tmp_path / "vpc"
    vpc.mkdir()
    shutil.copy(SAMPLES / "XP.vmc", vpc / "XP.vmc")
    for name, size in (("XP.vhd", "32M"), ("data.vhd", "16M")):
        subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(vpc / name), size],
                       check=True)
    job = _import(api, vpc / "XP.vmc")
    assert job["state"] == "completed", job
    vm = job["result"]
    assert (vm["name"], vm["mode"], vm["memory_mb"]) == ("XP", "virtual-server", 384)
    assert _ide0(vm)["path"].startswith(vm["folder"])
    scsi = vm["settings"]["scsi"][0]["disks"][0]
    assert scsi["format"] == "vpc" and scsi["path"].startswith(vm["folder"])
    assert any("undo disks" in line for line in vm["unmapped"])

    hyperv = tmp_path / "hyperv"
    (hyperv / "Virtual Hard Disks").mkdir(parents=True)
    shutil.copy(SAMPLES / "sql01.xml", hyperv / "sql01.xml")
    for name in ("sql01.vhd", "sql01-data.vhd"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "vpc",
                        str(hyperv / "Virtual Hard Disks" / name), "16M"], check=True)
    job = _import(api, hyperv / "sql01.xml", name="sql01-copy")
    assert job["state"] == "completed", job
    vm = job["result"]
    assert (vm["name"], vm["mode"], vm["memory_mb"], vm["processors"]) == \
        ("sql01-copy", "hyper-v-2008", 2048, 2)
    assert [n for n in vm["notices"] if "w2k8.iso" in n and "ejected" in n]
    assert any("PHYSICAL" in line for line in vm["unmapped"])
    assert len(vm["settings"]["scsi"][0]["disks"]) == 1

    removed = api.delete("/vms/sql01-copy", params={"delete_files": "true"})
    assert removed.status_code == 200, removed.text  # frees its static MAC for the next one
    export = tmp_path / "export"  # Hyper-V 2008's export layout
    (export / "Virtual Machines").mkdir(parents=True)
    (hyperv / "Virtual Hard Disks").rename(export / "Virtual Hard Disks")
    shutil.copy(SAMPLES / "sql01.xml", export / "Virtual Machines" / "sql01.xml")
    job = _import(api, export / "Virtual Machines" / "sql01.xml", name="sql01-export")
    assert job["state"] == "completed", job
    assert _ide0(job["result"])["path"].startswith(job["result"]["folder"])

    renamed = tmp_path / "minimal.xml"  # an OVF descriptor is known by content too
    shutil.copy(samples / "minimal.ovf", renamed)
    job = _import(api, renamed, name="minimal-ovf")
    assert job["state"] == "completed" and job["result"]["mode"] == "ovf", job


def _libvirt_ready() -> str | None:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "libvirt-setup.sh")],
                          capture_output=True, text=True, timeout=900, check=False)
    return None if done.returncode == 0 else done.stderr.strip()[-400:]


def test_libvirt_domain_imports_and_boots(service: Service, api: httpx.Client,
                                          boot_raw: Path, tmp_path: Path) -> None:
    reason = _libvirt_ready()
    if reason:
        pytest.skip(f"libvirtd cannot run here: {reason}")
    disk = tmp_path / "v2v.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(boot_raw),
                    str(disk)], check=True)
    domain = f"viridian-test-v2v-{uuid.uuid4().hex[:8]}"
    xml = tmp_path / "domain.xml"
    xml.write_text(f"""<domain type='qemu'>
  <name>{domain}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <interface type='user'>
      <mac address='52:54:00:3f:00:07'/>
      <model type='e1000'/>
    </interface>
  </devices>
</domain>""")
    virsh = ["virsh", "-c", "qemu:///system"]
    subprocess.run([*virsh, "define", str(xml)], check=True, capture_output=True)
    try:
        missing = _cli(service, "vm", "import", "--from-libvirt", f"{domain}-none", code=3)
        assert "does not exist" in missing
        subprocess.run([*virsh, "start", "--paused", domain], check=True, capture_output=True)
        try:  # a domain that is not shut off is refused (paused: its CPUs never run)
            running = _cli(service, "vm", "import", "--from-libvirt", domain, code=4)
            assert f"libvirt domain '{domain}' is paused: shut it down first" in running
        finally:
            subprocess.run([*virsh, "destroy", domain], check=False, capture_output=True)
        output = _cli(service, "vm", "import", "--from-libvirt", domain, "--name", "v2v")
        assert "imported v2v (libvirt): Off" in output
    finally:
        subprocess.run([*virsh, "undefine", domain], check=False, capture_output=True)
    vm = api.get("/vms/v2v").json()
    copy = _ide0(vm)
    assert copy["format"] == "qcow2" and copy["path"].startswith(vm["folder"])
    assert copy["path"] != str(disk)
    adapter = vm["settings"]["network_adapters"][0]
    assert (adapter["mac_mode"], adapter["mac"]) == ("static", "52:54:00:3F:00:07")
    _boots(service, api, "v2v")
