"""Messages of DMTF's Base registry (DSP8011, Base 1.22.1, shipped in ``registries/``) and
the Redfish error body built from them (DSP0266 §9.9 "Error responses").

:class:`RedfishError` is the one error of the Redfish boundary: an HTTP status, a Base
message id with its arguments and, optionally, viridian's own explanation (which becomes
the error's ``message``; the registry's text stays in ``@Message.ExtendedInfo``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

REGISTRY_FILE = "Base.1.22.1.json"
REGISTRY_PREFIX = "Base.1.22"


@cache
def _registry() -> dict[str, Any]:
    text = resources.files("viridian.redfish").joinpath("registries", REGISTRY_FILE).read_text()
    messages: dict[str, Any] = json.loads(text)["Messages"]
    return messages


def message(message_id: str, *args: object, resolution: str | None = None) -> dict[str, Any]:
    """A ``Message`` object for Base's ``message_id`` with ``args`` filled in.

    :raises KeyError: ``message_id`` is not in the Base registry.
    """
    entry = _registry()[message_id]
    text = entry["Message"]
    for index, arg in reversed(list(enumerate(args, 1))):
        text = text.replace(f"%{index}", str(arg))
    return {"@odata.type": "#Message.v1_3_0.Message",
            "MessageId": f"{REGISTRY_PREFIX}.{message_id}", "Message": text,
            "MessageArgs": [str(a) for a in args],
            "MessageSeverity": entry["MessageSeverity"],
            "Resolution": resolution or entry["Resolution"]}


class RedfishError(Exception):
    """A refused Redfish request: ``status``, Base ``message_id`` and ``args``; ``detail``
    is viridian's explanation (what was wrong, allowed values, nothing changed)."""

    def __init__(self, status: int, message_id: str, *args: object,
                 detail: str | None = None) -> None:
        self.status, self.message_id, self.args_, self.detail = status, message_id, args, detail
        super().__init__(detail or message_id)

    def body(self) -> dict[str, Any]:
        """The error response body (``{"error": {code, message, @Message.ExtendedInfo}}``)."""
        info = message(self.message_id, *self.args_)
        return {"error": {"code": info["MessageId"],
                          "message": self.detail or info["Message"],
                          "@Message.ExtendedInfo": [info]}}


def not_found(kind: str, name: str) -> RedfishError:
    return RedfishError(404, "ResourceNotFound", kind, name)


def not_in_list(value: object, prop: str, allowed: list[str]) -> RedfishError:
    return RedfishError(400, "PropertyValueNotInList", value, prop,
                        detail=f"'{value}' is not allowed for {prop}; allowed: "
                               f"{', '.join(allowed)}; nothing was changed")


def action_value_not_in_list(value: object, param: str, action: str,
                             allowed: list[str]) -> RedfishError:
    return RedfishError(400, "ActionParameterValueNotInList", value, param, action,
                        detail=f"'{value}' is not allowed for {param} of {action}; allowed: "
                               f"{', '.join(allowed)}; nothing was changed")
