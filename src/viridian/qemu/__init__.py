"""viridian.qemu — everything that talks to QEMU: the pure argv renderer (:mod:`.render`),
the QMP monitor of domain verbs, the guest agent, the detached process runner
(:mod:`.worker`), hot plug, block jobs, images and the accelerator probe."""
