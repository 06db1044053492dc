"""The storage capability: disks the admin hands in that QEMU must not get as they are
(pass-through block devices, differencing VHDs) and why a VM's memory cannot be saved
(:mod:`.checks`)."""
