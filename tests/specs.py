"""Validate response bodies against the official OpenAPI subsets in ../shared/specs/.

``SPECS`` is found next to the repository (``../shared/specs``) or through the environment
variable ``SYNCDESK_SPECS``. Tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent


def specs_dir() -> Path | None:
    env = os.environ.get("SYNCDESK_SPECS")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "specs", ROOT / "shared" / "specs"]
    for c in candidates:
        if (c / "stripe" / "syncdesk-subset.json").exists():
            return c
    return None


def require_specs() -> Path:
    d = specs_dir()
    if d is None:
        pytest.skip("shared/specs not found beside the repository (set SYNCDESK_SPECS)")
    return d


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema 2020-12 (``nullable`` becomes a ``null`` alternative)."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "x-expandableFields")}
    if node.get("nullable") is True:
        if "type" in out and "anyOf" not in out and "oneOf" not in out:
            t = out["type"]
            out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def load_subset(vendor: str) -> dict[str, Any]:
    d = require_specs()
    spec = json.loads((d / vendor / "syncdesk-subset.json").read_text())
    spec["components"]["schemas"] = _to_json_schema(spec["components"]["schemas"])
    return spec


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template)) + "$")


def response_schema(vendor: str, method: str, path: str, status: int) -> dict[str, Any]:
    """The response schema the spec gives for ``method path`` (a concrete path) and status."""
    spec = load_subset(vendor)
    # prefer literal matches (e.g. /organizations/search over /organizations/{id})
    matches = [t for t in spec["paths"] if _path_regex(t).match(path)]
    if not matches:
        raise AssertionError(f"{vendor}: no path in the spec matches {path}")
    matches.sort(key=lambda t: t.count("{"))
    op = spec["paths"][matches[0]].get(method.lower())
    if op is None:
        raise AssertionError(f"{vendor}: {method} {matches[0]} is not in the spec")
    responses = op["responses"]
    resp = responses.get(str(status)) or responses.get("default")
    if resp is None:
        raise AssertionError(f"{vendor}: {method} {matches[0]} has no {status} response in the spec")
    if "$ref" in resp:
        name = resp["$ref"].rsplit("/", 1)[-1]
        resp = spec["components"]["responses"][name]
    return resp["content"]["application/json"]["schema"]


def validate_response(vendor: str, method: str, path: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``body`` does not match the spec."""
    spec = load_subset(vendor)
    schema = dict(_to_json_schema(response_schema(vendor, method, path, status)))
    schema["components"] = spec["components"]
    Draft202012Validator(schema).validate(body)


def validate_component(vendor: str, component: str, body: Any) -> None:
    spec = load_subset(vendor)
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    Draft202012Validator(schema).validate(body)
