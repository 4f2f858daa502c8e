"""Request parameters as the official Stripe OpenAPI document (API version 2023-08-16) defines
them for every operation the demo billing server serves, and their validation.

``request_params.json`` beside this module holds, per operation (``"GET /v1/customers"``), the
schema of each query parameter (GET) or form-body property (POST) and the required ones: the
spec's own text reduced to what validation reads (``type``, ``enum``, ``properties``, ``items``,
``anyOf``, ``required``, ``maxLength``, ``additionalProperties``, ``format``). It is extracted by
:func:`extract` from the official subset the tests hold the server to
(``tests/data/specs/stripe/syncdesk-subset.json.gz``; ``tests/demo/test_stripe_spec_params.py``
checks that the two agree), and rewritten with::

    python -m services.demo.stripe.params tests/data/specs/stripe/syncdesk-subset.json.gz

:func:`validate` checks a request's parsed parameters (``services.demo.stripe.forms``) against
that table the way Stripe does: a parameter the operation does not define, at any depth, is
``parameter_unknown``; a missing required one ``parameter_missing``; a wrong type, an option
outside an enum or an over-long string an ``invalid_request_error`` naming the parameter. What
passes is answered typed (integers, booleans, decimals, lists, objects; ``""`` where the spec
allows it to unset reads as ``None``), for the handlers that store and echo parameters back.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.demo.spec_table import TABLE_FILE, load_package_table, rewrite_table
from services.demo.stripe.errors import StripeError, _invalid, _missing_param, _unknown_param

#: the schema keys validation reads (everything else in the spec is documentation)
KEPT_KEYS = ("type", "enum", "properties", "items", "anyOf", "required", "maxLength", "additionalProperties",
             "format")
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")

Schema = dict[str, Any]


# -- the table -------------------------------------------------------------------------------------


def _reduce(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        raise ValueError(f"a request schema refers to {schema['$ref']}: the table holds inline schemas only")
    out: dict[str, Any] = {}
    for key in KEPT_KEYS:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            value = {name: _reduce(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties"):
            value = _reduce(value)
        elif key == "anyOf":
            value = [_reduce(s) for s in value]
        out[key] = value
    return out


def extract(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"METHOD /path": {"params": {name: schema}, "required": [...]}}`` for every operation of
    an OpenAPI document (query parameters and form-body properties; path parameters are not
    request parameters)."""
    table: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            params: dict[str, Any] = {}
            required: list[str] = []
            for p in op.get("parameters", []):
                if p.get("in") == "query":
                    params[p["name"]] = _reduce(p.get("schema", {}))
                    if p.get("required"):
                        required.append(p["name"])
            body = (op.get("requestBody", {}).get("content", {})
                    .get("application/x-www-form-urlencoded", {}).get("schema", {}))
            for name, schema in body.get("properties", {}).items():
                params[name] = _reduce(schema)
            required += [n for n in body.get("required", []) if n not in required]
            table[f"{method.upper()} {path}"] = {"params": params, "required": required}
    return table


def load_table() -> dict[str, Any]:
    """The shipped table (``request_params.json``)."""
    return load_package_table("services.demo.stripe")


def operation(key: str) -> dict[str, Any]:
    """The parameters of one served operation (``KeyError`` for one the table lacks)."""
    op: dict[str, Any] = load_table()[key]
    return op


# -- validation ------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else "(object)" if isinstance(value, dict) else "(array)"


def _enum_text(options: list[Any]) -> str:
    shown = [str(o) for o in options if o != ""]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f", or {shown[-1]}"


def _typed(schema: Schema, value: Any, param: str) -> Any:
    """``value`` (form text, lists, dicts) checked against ``schema`` and typed."""
    if "anyOf" in schema:
        return _any_of(schema["anyOf"], value, param)
    kind = schema.get("type")
    enum = schema.get("enum")
    if kind == "object" or "properties" in schema:
        return _object(schema, value, param)
    if kind == "array":
        if isinstance(value, str) and value == "":
            return []
        if not isinstance(value, list):
            raise _invalid(f"Invalid array: {param} must be an array", param)
        item = schema.get("items", {})
        return [_typed(item, v, f"{param}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict | list):
        raise _invalid(f"Invalid {param}: expected a {kind or 'string'}, got {_shown(value)}", param)
    if kind == "integer":
        if not _INTEGER.fullmatch(value.strip()):
            raise _invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer")
        return int(value)
    if kind == "number":
        if not _DECIMAL.fullmatch(value.strip()):
            raise _invalid(f"Invalid decimal: {value}", param)
        return float(value)
    if kind == "boolean":
        if value not in ("true", "false", "True", "False", "1", "0"):
            raise _invalid(f"Invalid boolean: {value}", param)
        return value in ("true", "True", "1")
    if enum is not None and value not in enum:
        raise _invalid(f"Invalid {param}: must be one of {_enum_text(enum)}", param)
    limit = schema.get("maxLength")
    if isinstance(limit, int) and len(value) > limit:
        raise _invalid(f"Invalid string: {value[:20]}...; must be at most {limit} characters", param)
    return value


def _object(schema: Schema, value: Any, param: str) -> Any:
    if not isinstance(value, dict):
        raise _invalid(f"Invalid object: {param} must be an object", param)
    props: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = f"{param}[{key}]"
        if key in props:
            out[key] = _typed(props[key], item, sub)
        elif isinstance(extra, dict):
            out[key] = _typed(extra, item, sub)
        else:
            raise _unknown_param(sub)
    for name in schema.get("required", []):
        if name not in value:
            raise _missing_param(f"{param}[{name}]")
    return out


def _is_unset(schema: Schema) -> bool:
    return schema.get("enum") == [""]


def _any_of(branches: list[Schema], value: Any, param: str) -> Any:
    if value == "" and any(_is_unset(b) for b in branches):
        return None
    shape = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "scalar"

    def fits(b: Schema) -> bool:
        kind = "object" if b.get("type") == "object" or "properties" in b else b.get("type")
        return kind == shape or (shape == "scalar" and kind not in ("object", "array"))

    candidates = [b for b in branches if not _is_unset(b) and fits(b)] or [b for b in branches if not _is_unset(b)]
    first: StripeError | None = None
    for branch in candidates:
        try:
            return _typed(branch, value, param)
        except StripeError as exc:
            first = first or exc
    assert first is not None
    raise first


def validate(key: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a request to operation ``key``, checked and typed (see the module
    docstring); raises Stripe's error for the first parameter that does not fit."""
    op = operation(key)
    schemas: dict[str, Schema] = op["params"]
    typed: dict[str, Any] = {}
    for name, value in params.items():
        schema = schemas.get(name)
        if schema is None:
            raise _unknown_param(name)
        typed[name] = _typed(schema, value, name)
    for name in op["required"]:
        if name not in params:
            raise _missing_param(name)
    return typed


def main(argv: list[str] | None = None) -> int:
    return rewrite_table(argv, "services.demo.stripe.params", Path(__file__).with_name(TABLE_FILE), extract)


if __name__ == "__main__":
    sys.exit(main())
