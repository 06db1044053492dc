"""The devices capability: what may change while a VM runs and hot plug
(:mod:`.hotplug`), pure edits of the settings for the device commands (:mod:`.edits`),
the device operations (:mod:`.operations`) and their routes (:mod:`.routes`, the screen
and VNC in :mod:`.screen_routes`)."""
