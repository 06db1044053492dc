"""An event destination on loopback for Redfish subscriptions: keeps every Event POSTed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.service.harness import free_port


class Listener:
    """Serves ``url`` until :meth:`close`; ``events`` holds each POSTed body."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                events.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def power_states(self, system_uri: str) -> list[str]:
        return [record["MessageArgs"][0] for ev in list(self.events) for record in ev["Events"]
                if record["OriginOfCondition"]["@odata.id"] == system_uri]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
