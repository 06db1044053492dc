"""The VMs capability: one VM as the service sees it (:mod:`.live`), turning requests into
checked settings (:mod:`.config`), MAC addresses (:mod:`.macs`), processor and memory
control in cgroups (:mod:`.resource_control`) and the VM routes (:mod:`.routes`)."""
