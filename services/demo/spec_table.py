"""The request-parameter tables the demo servers are held to (``services/demo/stripe/params.py``,
``services/demo/zendesk/params.py``): each is extracted from the official spec subset the tests
use (``tests/data/specs``), shipped as ``request_params.json`` beside its module, read through
``importlib.resources`` (an installed wheel has it too) and rewritten by
``python -m services.demo.<vendor>.params SUBSET.json.gz``."""

from __future__ import annotations

import functools
import gzip
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

TABLE_FILE = "request_params.json"


def render_table(table: Mapping[str, Any]) -> str:
    """The table as shipped: stable key order, one space of indent, UTF-8 text."""
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@functools.cache
def load_package_table(package: str) -> dict[str, Any]:
    """The table shipped in ``package`` (``"services.demo.stripe"``)."""
    text = resources.files(package).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def rewrite_table(argv: Sequence[str] | None, module: str, target: Path,
                  extract: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """``python -m MODULE SUBSET.json.gz``: extract the table from the gzipped spec subset and
    write it to ``target``; 2 with a usage line for anything else."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m {module} SUBSET.json.gz", file=sys.stderr)
        return 2
    spec = json.loads(gzip.decompress(Path(args[0]).read_bytes()))
    target.write_text(render_table(extract(spec)), encoding="utf-8")
    print(f"wrote {target}")
    return 0
