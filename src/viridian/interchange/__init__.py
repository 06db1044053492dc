"""Moving VMs in and out of viridian (docs/architecture.md, "Export and import"): the
native export package (Hyper-V's export folder), OVF/OVA (DMTF DSP0243) and foreign VM
definitions (VMware ``.vmx``, libvirt domain XML). Pure: parsing, mapping and planning;
files are copied and VMs registered by ``viridian.service.vms`` (export, importing)."""
