"""Regenerate the official API subsets in this folder from a checkout of the vendors' documents.

Usage (from the repository root)::

    python tests/data/specs/refresh.py SOURCE [--check]

``SOURCE`` is a folder laid out like the project's shared reference folder: ``stripe/spec3.yaml``
(github.com/stripe/openapi, ``openapi/spec3.yaml``), ``zendesk/oas.yaml`` (Zendesk Support API
OpenAPI document) and/or ready-made ``<vendor>/syncdesk-subset.json`` files, and optionally
``tryton/README.md``.

For each vendor:

* when the full document is there and PyYAML is importable, the subset is **re-extracted**: the
  operations listed in ``OPERATIONS`` below (with their path-level ``parameters``), every
  component they reference (transitively), the top-level ``openapi``/``info``/``servers``/
  ``security`` of the document and the extra schemas in ``EXTRA_SCHEMAS``; ``info.title`` gets
  " (subset used by SyncDesk)" and ``info.x-conformance-kit-provenance`` names the source. On the
  documents at the commits named in README.md this reproduces the shipped subsets byte for byte;
* otherwise ``SOURCE/<vendor>/syncdesk-subset.json`` is re-copied as it is.

The result is written gzip-compressed (``mtime`` 0, no file name: the same input gives the same
bytes) to ``<vendor>/syncdesk-subset.json.gz`` beside this script. ``--check`` writes nothing and
exits 1 when a shipped file differs from what would be written.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (path, methods) per vendor, in the order the subset lists them
OPERATIONS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "stripe": [
        ("/v1/customers", ("get", "post")),
        ("/v1/customers/{customer}", ("get", "post")),
        ("/v1/prices", ("get",)),
        ("/v1/products", ("get",)),
        ("/v1/products/{id}", ("get",)),
        ("/v1/subscriptions", ("get", "post")),
        ("/v1/subscriptions/{subscription_exposed_id}", ("get", "post")),
        ("/v1/invoices", ("get",)),
        ("/v1/invoices/{invoice}", ("get",)),
        ("/v1/events", ("get",)),
        ("/v1/events/{id}", ("get",)),
        # the money the demo company bills with (issue G1): taxes, coupons, credit notes, refunds, charges
        ("/v1/tax_rates", ("get",)),
        ("/v1/tax_rates/{tax_rate}", ("get",)),
        ("/v1/coupons", ("get",)),
        ("/v1/coupons/{coupon}", ("get",)),
        ("/v1/credit_notes", ("get",)),
        ("/v1/credit_notes/{id}", ("get",)),
        ("/v1/credit_notes/{credit_note}/lines", ("get",)),
        ("/v1/refunds", ("get",)),
        ("/v1/refunds/{refund}", ("get",)),
        ("/v1/charges", ("get",)),
        ("/v1/charges/{charge}", ("get",)),
    ],
    "zendesk": [
        ("/api/v2/organizations", ("get", "post")),
        ("/api/v2/organizations/{organization_id}", ("get", "put")),
        ("/api/v2/organizations/search", ("get",)),
        ("/api/v2/organization_fields", ("get",)),
        ("/api/v2/users", ("get", "post")),
        ("/api/v2/users/{user_id}", ("get",)),
        ("/api/v2/users/me", ("get",)),
        ("/api/v2/tickets", ("get", "post")),
        ("/api/v2/tickets/{ticket_id}", ("get",)),
        ("/api/v2/search", ("get",)),
        ("/api/v2/incremental/tickets/cursor", ("get",)),
    ],
}
# schemas kept although no listed operation references them: Zendesk's cursor-pagination envelope
EXTRA_SCHEMAS: dict[str, tuple[str, ...]] = {"stripe": (), "zendesk": ("Pagination",)}
DOCUMENT = {"stripe": "spec3.yaml", "zendesk": "oas.yaml"}
PROVENANCE = {
    "stripe": "Subset of stripe/openapi openapi/spec3.yaml at commit f276814e8f9a9f620fdf4cf9d08ce173047389c7",
    "zendesk": "Subset of a public copy of Zendesk's published oas.yaml (Support API 2.0.0); see README.md",
}
TOP_LEVEL = ("openapi", "info", "servers", "security")


def load_yaml(path: Path) -> Any:
    """The document as plain JSON data (dates and YAML 1.1's ``=`` value tag stay strings)."""
    import yaml  # only needed to re-extract; not a project dependency

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    def as_text(loader: Any, node: Any) -> Any:
        return loader.construct_scalar(node)

    Loader.add_constructor("tag:yaml.org,2002:value", as_text)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # a SafeLoader subclass


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def extract(vendor: str, full: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``full`` for ``OPERATIONS[vendor]`` with every component it references."""
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS[vendor]:
        item = full["paths"][path]
        paths[path] = {k: v for k, v in item.items() if k == "parameters" or k in methods}
        missing = set(methods) - set(item)
        if missing:
            raise SystemExit(f"{vendor}: {path} has no {sorted(missing)} in the document")
    wanted: dict[str, set[str]] = {}
    todo: set[str] = set()
    _refs(paths, todo)
    todo |= {f"#/components/schemas/{n}" for n in EXTRA_SCHEMAS[vendor]}
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref.split("/")
        if len(parts) != 4 or parts[:2] != ["#", "components"]:
            raise SystemExit(f"{vendor}: unexpected reference {ref}")
        kind, name = parts[2], parts[3]
        wanted.setdefault(kind, set()).add(name)
        _refs(full["components"][kind][name], todo)
    components: dict[str, Any] = {kind: {n: full["components"][kind][n] for n in sorted(names)}
                                  for kind, names in wanted.items()}
    components["securitySchemes"] = full["components"]["securitySchemes"]
    info = dict(full["info"])
    info["title"] = f"{info['title']} (subset used by SyncDesk)"
    info["x-conformance-kit-provenance"] = PROVENANCE[vendor]
    out: dict[str, Any] = {k: (info if k == "info" else full[k]) for k in full if k in TOP_LEVEL}
    out["paths"] = paths
    out["components"] = {k: components[k] for k in sorted(components)}
    return out


def render(subset: dict[str, Any]) -> bytes:
    return (json.dumps(subset, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def gzipped(raw: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return buf.getvalue()


def subset_bytes(source: Path, vendor: str) -> tuple[bytes, str]:
    """The subset's JSON text and how it was obtained."""
    document = source / vendor / DOCUMENT[vendor]
    copy = source / vendor / "syncdesk-subset.json"
    if document.exists():
        try:
            full = load_yaml(document)
        except ImportError:
            if not copy.exists():
                raise SystemExit(f"{document}: PyYAML is needed to re-extract (pip install pyyaml)") from None
            print(f"{vendor}: PyYAML missing, re-copying {copy}", file=sys.stderr)
        else:
            raw = render(extract(vendor, full))
            if copy.exists() and json.loads(copy.read_bytes()) != json.loads(raw):
                print(f"{vendor}: note: the extraction differs from {copy}", file=sys.stderr)
            return raw, f"re-extracted from {document}"
    if not copy.exists():
        raise SystemExit(f"{source}: neither {DOCUMENT[vendor]} nor syncdesk-subset.json for {vendor}")
    return copy.read_bytes(), f"re-copied from {copy}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder holding stripe/, zendesk/ (and tryton/)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a shipped file differs")
    args = parser.parse_args(argv)
    outputs: dict[Path, bytes] = {}
    for vendor in OPERATIONS:
        raw, how = subset_bytes(args.source, vendor)
        json.loads(raw)  # must be JSON
        outputs[HERE / vendor / "syncdesk-subset.json.gz"] = gzipped(raw)
        print(f"{vendor}: {how} ({len(raw):,} bytes)")
    tryton = args.source / "tryton" / "README.md"
    if tryton.exists():
        outputs[HERE / "tryton" / "README.md"] = tryton.read_bytes()
    differs = [p for p, data in outputs.items() if not p.exists() or p.read_bytes() != data]
    if args.check:
        for p in differs:
            print(f"differs: {p.relative_to(HERE)}")
        return 1 if differs else 0
    for p, data in outputs.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    print(f"wrote {len(outputs)} files ({len(differs)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
