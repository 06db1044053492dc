"""The integration services capability (Hyper-V's integration components through
qemu-guest-agent): heartbeat, time sync, KVP, backup freeze, guest services
(:mod:`.services`) and their routes (:mod:`.routes`)."""
