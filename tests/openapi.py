"""Check HTTP responses against docs/openapi.json."""

import json
from pathlib import Path

import jsonschema

SPEC = json.loads((Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text())


def conforms(response, path: str, method: str = "get") -> dict:
    """Assert the response's status is documented for the route and its body
    matches the documented schema; returns the body."""
    documented = SPEC["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, f"{response.status_code} undocumented for {method} {path}"
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]}).validate(body)
    return body
