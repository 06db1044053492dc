"""Which foreign configuration a file holds, by its content (pure but for reading the
file): a libvirt domain XML, a Virtual PC/Server ``.vmc``, a Hyper-V 2008 configuration
XML or a VMware ``.vmx`` — the suffix does not decide. An OVF descriptor is none of them
(it has its own import)."""

from __future__ import annotations

from pathlib import Path

from viridian.errors import BadRequest
from viridian.interchange.foreign_plan import ForeignVM
from viridian.interchange.hyperv_xml import parse_hyperv
from viridian.interchange.libvirt_xml import parse_domain
from viridian.interchange.vmc import parse_vmc
from viridian.interchange.vmx import parse_vmx
from viridian.interchange.xmltext import local, parse_xml

MAX_CONFIG = 4 << 20
ALLOWED = ("a VMware .vmx, a Virtual PC/Virtual Server .vmc, a Hyper-V 2008 configuration "
           "XML, a libvirt domain XML, an OVF descriptor or an exported VM's folder")
XML_ROOTS = {"domain": "libvirt", "preferences": "virtual-server",
             "configuration": "hyper-v-2008"}


def foreign_kind(data: bytes) -> str | None:
    """The kind of foreign configuration in ``data`` (see :data:`foreign_plan.KINDS`),
    or None when it is none of them (an OVF envelope, a disk, anything else)."""
    if _looks_xml(data):
        try:
            root = parse_xml(data, "the file")
        except BadRequest:
            return None
        return XML_ROOTS.get(local(root.tag))
    head = data[:MAX_CONFIG].decode("utf-8", "replace").lower()
    if ("config.version" in head or "virtualhw.version" in head) and " = \"" in head:
        return "vmware"
    return None


def is_ovf_envelope(data: bytes) -> bool:
    """``data`` is an OVF descriptor (an XML ``Envelope``), whatever its file's name."""
    if not _looks_xml(data):
        return False
    try:
        return local(parse_xml(data, "the file").tag) == "Envelope"
    except BadRequest:
        return False


def read_foreign(path: Path) -> ForeignVM:
    """The foreign VM configured in the file ``path``.

    :raises BadRequest: the file is larger than 4 MiB or none of :data:`ALLOWED`.
    """
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG + 1)
    kind = foreign_kind(data) if len(data) <= MAX_CONFIG else None
    where = str(path)
    if kind == "libvirt":
        return parse_domain(data, where)
    if kind == "virtual-server":
        return parse_vmc(data, path.stem, where)
    if kind == "hyper-v-2008":
        return parse_hyperv(data, where)
    if kind == "vmware":
        return parse_vmx(data.decode("utf-8", "replace"), where)
    raise BadRequest(f"{path} is not a VM configuration viridian imports; allowed: "
                     f"{ALLOWED}; nothing was changed", path=where)


def _looks_xml(data: bytes) -> bool:
    return data.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")) or \
        data.lstrip().startswith(b"<")
