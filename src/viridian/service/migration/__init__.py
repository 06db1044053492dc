"""Moving a running VM to another viridian host (docs/architecture.md, "Migration").

``outgoing`` is the source's side (the ``move`` job), ``incoming`` the target's
(``/migrations/incoming`` routes), ``peer`` the HTTP client one service uses to reach the
other, ``ownership`` the hand-over of a VM between hosts (a Protocol: the no-cluster one
here; the failover cluster's etcd transaction plugs in).
"""
