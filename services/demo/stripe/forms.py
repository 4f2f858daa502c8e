"""Form and query parameters: Stripe's bracket nesting (``a[b][c]=v``, ``a[]=v``,
``a[0][b]=v``) parsed into nested values, and the coercion of those values into strings,
integers, booleans and arrays with Stripe's error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from services.demo.stripe.errors import _invalid, _unknown_param

# --------------------------------------------------------------------------------------
# Form / query parsing: Stripe's bracket nesting (a[b][c]=v, a[]=v, a[0][b]=v)
# --------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEG_RE = re.compile(r"\[([^\[\]]*)\]")
#: dicts under these keys keep digit keys as dict keys (metadata keys are free text)
_FREE_KEYS = frozenset({"metadata"})


def _split_key(key: str) -> list[str]:
    m = _KEY_RE.match(key)
    if m is None:
        raise _invalid(f"Invalid parameter name: {key}", key)
    return [m.group(1), *_SEG_RE.findall(m.group(2))]


def _assign(root: dict[str, Any], segments: list[str], value: str, key: str) -> None:
    node: Any = root
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        nxt = None if last else segments[i + 1]
        if seg == "":
            if not isinstance(node, list):
                raise _invalid(f"Invalid array parameter: {key}", key)
            if last:
                node.append(value)
                return
            tail = node[-1] if node else None
            if isinstance(tail, dict) and nxt != "" and nxt not in tail:
                node = tail
            else:
                child: Any = [] if nxt == "" else {}
                node.append(child)
                node = child
            continue
        if not isinstance(node, dict):
            raise _invalid(f"Invalid parameter nesting: {key}", key)
        if last:
            if isinstance(node.get(seg), dict | list):
                raise _invalid(f"Invalid parameter: {key} conflicts with a nested value", key)
            node[seg] = value
            return
        existing = node.get(seg)
        if existing is None:
            existing = [] if nxt == "" else {}
            node[seg] = existing
        elif not isinstance(existing, dict | list):
            raise _invalid(f"Invalid parameter: {key} conflicts with a scalar value", key)
        node = existing


def _finalize(node: Any, free: bool = False) -> Any:
    """Turn dicts whose keys are all indexes into lists ordered by index."""
    if isinstance(node, list):
        return [_finalize(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _finalize(v, k in _FREE_KEYS) for k, v in node.items()}
    if not free and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested parameters from form/query pairs: ``metadata[k]=v`` -> ``{"metadata": {"k": "v"}}``,
    ``items[0][price]=p`` -> ``{"items": [{"price": "p"}]}``, ``expand[]=a`` -> ``{"expand": ["a"]}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value, key)
    result = _finalize(root)
    assert isinstance(result, dict)
    return result


def parse_form(text: str) -> dict[str, Any]:
    return parse_params(parse_qsl(text, keep_blank_values=True))


# --------------------------------------------------------------------------------------
# Parameter coercion helpers
# --------------------------------------------------------------------------------------


def _check_keys(params: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    allowed_set = set(allowed)
    for k in params:
        if k not in allowed_set:
            raise _unknown_param(f"{prefix}[{k}]" if prefix else k)


def _as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {param} must be a string", param)
    return value


def _as_int(value: Any, param: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _invalid(f"Invalid integer: {value if isinstance(value, str) else '(object)'}", param)


def _as_bool(value: Any, param: str) -> bool:
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise _invalid(f"Invalid boolean: {value if isinstance(value, str) else '(object)'}", param)


def _as_list(value: Any, param: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value == "":
        return []
    raise _invalid(f"Invalid array: {param}", param)


def _opt_str(value: str) -> str | None:
    """Stripe unsets a field sent as an empty string."""
    return value or None
