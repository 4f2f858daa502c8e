"""Validate response bodies against the official OpenAPI subsets shipped in ``tests/data/specs/``.

The subsets (gzip-compressed JSON, provenance and refresh steps in ``tests/data/specs/README.md``)
live in the repository: nothing is read from outside it, and a missing file is an error.

Validation is openapi-schema-validator's ``OAS30ReadValidator`` — its ``OAS30Validator`` for
response bodies: ``required`` holds for ``readOnly`` properties too, and a ``writeOnly`` property
in an answer is an error — with the OpenAPI 3.0 format checker. One extension: ``nullable: true``
admits ``null`` whatever else the schema object says. That is the OpenAPI 3.0.0 meaning, the
version Stripe's document declares, and the way it uses ``nullable`` beside ``anyOf`` (an
expandable id or object) and ``enum``; the plain validator follows 3.0.3's later reading, where
``nullable`` only widens ``type``, and would reject the ``null`` Stripe really sends (e.g. a
customer's ``address``).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any

from jsonschema.validators import extend
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

SPECS = Path(__file__).resolve().parent / "data" / "specs"


def subset_path(vendor: str) -> Path:
    return SPECS / vendor / "syncdesk-subset.json.gz"


@functools.cache
def load_subset(vendor: str) -> dict[str, Any]:
    """The vendor's subset; ``FileNotFoundError`` when the shipped file is missing."""
    path = subset_path(vendor)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the repository (see tests/data/specs/README.md)")
    spec: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return spec


def _nullable(keyword: Any) -> Any:
    """``keyword``, except that ``null`` passes where the schema object says ``nullable: true``."""

    def check(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if instance is None and schema.get("nullable") is True:
            return iter(())
        return keyword(validator, value, instance, schema)

    return check


ResponseValidator = extend(
    OAS30ReadValidator, {name: _nullable(keyword) for name, keyword in OAS30ReadValidator.VALIDATORS.items()}
)


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
    schema: dict[str, Any] = resp["content"]["application/json"]["schema"]
    return schema


def validator(vendor: str, schema: dict[str, Any]) -> Any:
    """A ``ResponseValidator`` for ``schema`` whose ``#/components/...`` references resolve in the subset."""
    rooted = {**schema, "components": load_subset(vendor)["components"]}
    return ResponseValidator(rooted, format_checker=oas30_format_checker)


def validate_response(vendor: str, method: str, path: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``body`` does not match the spec."""
    validator(vendor, response_schema(vendor, method, path, status)).validate(body)


def validate_component(vendor: str, component: str, body: Any) -> None:
    validator(vendor, {"$ref": f"#/components/schemas/{component}"}).validate(body)
