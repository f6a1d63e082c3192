"""Check socket frames against docs/frames.schema.json, as tests/openapi.py
checks HTTP bodies against docs/openapi.json: the socket tests read every
frame through FrameCheckingCommunicator, so a frame the server sends that
the schema does not describe fails the test that received it."""

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from channels.testing import WebsocketCommunicator

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "frames.schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(SCHEMA)


@cache
def _validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})


def definitions(union: str, key: str) -> dict[str, str]:
    """The union's oneOf branches by the constant of their key (`type` or
    `action`): {"pong": "server.pong", ...}."""
    names = [branch["$ref"].removeprefix("#/$defs/") for branch in SCHEMA["$defs"][union]["oneOf"]]
    return {SCHEMA["$defs"][name]["properties"][key]["const"]: name for name in names}


def _check(union: str, key: str, frame: Any) -> None:
    """Validate against the whole oneOf; explain a failure by the branch the
    frame's key names, since the oneOf alone says only that none matched."""
    if _validator(union).is_valid(frame):
        return
    value = frame.get(key) if isinstance(frame, dict) else None
    name = definitions(union, key).get(value)
    if name is None:
        detail = f"no {union} has {key} {value!r}"
    else:
        error = jsonschema.exceptions.best_match(_validator(name).iter_errors(frame))
        detail = f"{error.message} at {error.json_path}" if error else "it matches more than one definition"
    raise AssertionError(f"{union} does not match docs/frames.schema.json: {detail}: {frame}")


def conforms_frame(frame: Any) -> Any:
    """Assert frame (decoded JSON) is a server frame as the schema describes
    it; returns it."""
    _check("ServerFrame", "type", frame)
    return frame


def conforms_client_frame(frame: Any) -> Any:
    """Assert frame is a client frame the schema accepts; returns it."""
    _check("ClientFrame", "action", frame)
    return frame


class FrameCheckingCommunicator(WebsocketCommunicator):
    """A test client whose every received text frame must conform. Hooked
    into receive_from, under receive_json_from, next_frame and quiet, so
    frames read raw (to look at the bytes) are checked too."""

    async def receive_from(self, timeout: float = 1) -> Any:
        received = await super().receive_from(timeout)
        assert isinstance(received, str), f"the server sends JSON text frames only, got {received!r}"
        conforms_frame(json.loads(received))
        return received
