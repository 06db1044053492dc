"""viridian.host — facts and controls of the Linux host: resources and boot id,
admission control, cgroups and the CPU policy of running VMs."""
