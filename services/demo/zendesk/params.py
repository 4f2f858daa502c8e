"""Request parameters as the official Zendesk Support OpenAPI document defines them for every
operation the demo support server serves: query parameters and the properties of the JSON body.

``request_params.json`` beside this module holds, per operation (``"GET /api/v2/users"``), the
schema of each query parameter, the required ones, and the request body's root key
(``"organization"``, ``"user"``, ``"ticket"``) with the schema of each of its properties (the
``anyOf`` branches of a body merged into one property list; ``$ref`` and ``allOf`` resolved). It
is the spec's text reduced to what the server and its tests read (``type``, ``enum``, ``items``,
``properties``, ``required``, ``format``, ``nullable``, ``additionalProperties``, ``readOnly``,
``writeOnly``), extracted by :func:`extract` from the official subset the tests hold the server
to (``tests/data/specs/zendesk/syncdesk-subset.json.gz``; ``tests/demo/test_zendesk_spec_params.py``
checks that the two agree) and rewritten with::

    python -m services.demo.zendesk.params tests/data/specs/zendesk/syncdesk-subset.json.gz

Zendesk is lenient where Stripe is strict: a query parameter or a body property it does not
know is ignored, not refused. What the server checks is the type of the documented body
properties it takes (:func:`check_body_types`): a value of the wrong type is ``422
RecordInvalid`` naming the property, as Zendesk answers it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.demo.spec_table import TABLE_FILE, load_package_table, rewrite_table
from services.demo.zendesk.errors import invalid_value

KEPT_KEYS = ("type", "enum", "items", "properties", "required", "format", "nullable", "additionalProperties",
             "readOnly", "writeOnly")
#: the paths the demo serves, as the spec writes them
API_PREFIX = "/api/v2"

Schema = dict[str, Any]


def _resolve(spec: Mapping[str, Any], schema: Any, depth: int = 0) -> Any:
    """``schema`` with ``$ref`` and ``allOf`` resolved and reduced to :data:`KEPT_KEYS`."""
    if not isinstance(schema, dict):
        return schema
    if depth > 12:
        raise ValueError("a request schema nests deeper than 12 levels")
    if "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return _resolve(spec, node, depth + 1)
    if "allOf" in schema:
        merged: Schema = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            sub = _resolve(spec, part, depth + 1)
            merged["properties"].update(sub.get("properties", {}))
        return merged
    out: Schema = {}
    for key in KEPT_KEYS:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            value = {name: _resolve(spec, s, depth + 1) for name, s in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            value = _resolve(spec, value, depth + 1)
        out[key] = value
    branches: list[Any] = schema.get("oneOf") or schema.get("anyOf") or []
    if branches:
        out["oneOf"] = [_resolve(spec, s, depth + 1) for s in branches]
    return out


def _merged_properties(spec: Mapping[str, Any], schema: Any) -> dict[str, Schema]:
    """The properties of a body object: the ``anyOf``/``oneOf`` branches' merged, first wins."""
    if isinstance(schema, dict) and "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return _merged_properties(spec, node)
    branches = schema.get("anyOf") or schema.get("oneOf") if isinstance(schema, dict) else None
    if branches:
        out: dict[str, Schema] = {}
        for branch in branches:
            for name, sub in _merged_properties(spec, branch).items():
                out.setdefault(name, sub)
        return out
    resolved = _resolve(spec, schema)
    props: dict[str, Schema] = resolved.get("properties", {})
    return props


def extract(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"METHOD /path": {"query": {...}, "required": [...], "body": {"root": ..., "properties": {...}}
    or None}}`` for every operation of the document."""
    table: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        shared = [_param(spec, p) for p in item.get("parameters", [])]
        for method, op in item.items():
            if method == "parameters":
                continue
            query: dict[str, Schema] = {}
            required: list[str] = []
            for p in [*shared, *(_param(spec, p) for p in op.get("parameters", []))]:
                if p.get("in") == "query":
                    query[p["name"]] = _resolve(spec, p.get("schema", {}))
                    if p.get("required") and p["name"] not in required:
                        required.append(p["name"])
            body: dict[str, Any] | None = None
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is not None:
                ((root, inner),) = _raw_properties(spec, content["schema"]).items()
                body = {"root": root, "properties": _merged_properties(spec, inner)}
            table[f"{method.upper()} {path}"] = {"query": query, "required": required, "body": body}
    return table


def _param(spec: Mapping[str, Any], p: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in p:
        node: Any = spec
        for part in str(p["$ref"]).removeprefix("#/").split("/"):
            node = node[part]
        return dict(node)
    return dict(p)


def _raw_properties(spec: Mapping[str, Any], schema: Any) -> dict[str, Any]:
    """The envelope's properties, unresolved (its one root key and that key's schema)."""
    node: Any = schema
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    props: dict[str, Any] = node.get("properties", {})
    return props


def load_table() -> dict[str, Any]:
    """The shipped table (``request_params.json``)."""
    return load_package_table("services.demo.zendesk")


def operation(key: str) -> dict[str, Any]:
    """The parameters of one served operation (``KeyError`` for one the table lacks)."""
    op: dict[str, Any] = load_table()[key]
    return op


# -- the body's types ------------------------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
    "object": (dict,),
}


def _fits(schema: Schema, value: Any) -> bool:
    if value is None:
        return True  # null clears a property (Zendesk takes it for every writable one)
    if "oneOf" in schema:
        return any(_fits(s, value) for s in schema["oneOf"])
    kind = schema.get("type")
    if kind is None:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if not isinstance(value, _JSON_TYPES.get(kind, (object,))):
        # Zendesk reads numeric strings for integer ids
        return kind == "integer" and isinstance(value, str) and value.strip().isdigit()
    if kind == "array" and isinstance(schema.get("items"), dict) and isinstance(value, list):
        return all(_fits(schema["items"], v) for v in value)
    if kind == "string" and "enum" in schema:
        return value in schema["enum"]
    return True


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def check_body_types(key: str, body: Mapping[str, Any], properties: Mapping[str, Schema] | None = None) -> None:
    """422 ``RecordInvalid`` for the first documented property of ``body`` whose value is not of
    the type (or among the options) the spec gives it; undocumented properties are ignored."""
    if properties is None:
        spec_body = operation(key)["body"]
        properties = spec_body["properties"] if spec_body else {}
    for name, value in body.items():
        schema = properties.get(name)
        if schema is None or schema.get("readOnly"):
            continue
        if not _fits(schema, value):
            raise invalid_value(name, _title(name), "is invalid")


def main(argv: list[str] | None = None) -> int:
    return rewrite_table(argv, "services.demo.zendesk.params", Path(__file__).with_name(TABLE_FILE), extract)


if __name__ == "__main__":
    sys.exit(main())
