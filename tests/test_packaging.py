"""The installed build generates the same demo company as the checkout.

The wheel is built from a copy of the checkout in a temp folder (``pip wheel --no-build-isolation
--no-index``: offline, with the venv's setuptools, which the ``test`` extra pins to one that
builds wheels by itself), unpacked, and imported by a ``python -c`` whose ``sys.path`` holds the
unpacked wheel and the venv's site-packages but not the checkout (its cwd is elsewhere). The same
script, run against the checkout, must print the same digest of the whole generated company:
every record of the billing, ERP and support stores and the manifest. Before ``resources/`` was
packaged, the installed build fell back to a drifted copy of the seed parameters (4 countries
against 10) and generated a different company.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = "resources/demo_seed.toml"
#: not part of a source tree: virtualenvs, VCS data, caches and earlier build output
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
                                    ".*_cache", ".hypothesis", ".syncdesk-home", "screenshots-tmp")

#: prints, as JSON, where the modules came from, the sha256 of the whole generated company
#: (every store record and the manifest, in insertion order) and the size of every table
DIGEST_SCRIPT = """
import dataclasses, hashlib, importlib.resources, json, sys
import resources, services.demo.dataset as dataset, services.demo.generator.seed as seed
from services.demo.dataset import generate

def canon(x):
    if dataclasses.is_dataclass(x):
        return {f.name: canon(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {repr(k): canon(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [canon(v) for v in x]
    if isinstance(x, set):
        return sorted(repr(v) for v in x)
    return repr(x)

ds = generate(120, 3, anchor=1714564800)
b, e, s = ds.billing, ds.erp, ds.support
company = {
    "billing": {k: canon(getattr(b, k)) for k in ("products", "prices", "customers", "subscriptions",
                                                   "invoices", "events")},
    "erp": {"tables": canon(e.tables), "next_ids": e.next_ids},
    "support": {k: canon(getattr(s, k)) for k in ("organizations", "users", "tickets", "next_ids")},
    "manifest": [m.as_dict() for m in ds.manifest],
}
counts = {f"billing.{k}": len(getattr(b, k)) for k in ("products", "prices", "customers", "subscriptions",
                                                        "invoices", "events")}
counts.update({f"erp.{m}": len(t) for m, t in e.tables.items()})
counts.update({f"support.{k}": len(getattr(s, k)) for k in ("organizations", "users", "tickets")})
counts["manifest"] = len(ds.manifest)
ours = ("app", "views", "services", "resources", "main")
print(json.dumps({
    "digest": hashlib.sha256(repr(company).encode()).hexdigest(),
    "manifest_sha256": hashlib.sha256(json.dumps(company["manifest"], sort_keys=True).encode()).hexdigest(),
    "counts": counts,
    "countries": len(seed.load_seed_params().countries),
    "seed_file": str(importlib.resources.files("resources").joinpath("demo_seed.toml")),
    "module_files": sorted({m.__file__ for n, m in list(sys.modules.items())
                            if n.split(".")[0] in ours and getattr(m, "__file__", None)}),
    "sys_path": sys.path,
}))
"""


def run_digest(pythonpath: Path, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env.pop("PYTHONSAFEPATH", None)
    res = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout (built in ``tmp``: the shared checkout gets no
    ``build/`` or ``*.egg-info``)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    out = tmp / "dist"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "-w", str(out)], cwd=src, capture_output=True, text=True,
                         timeout=600, check=False)
    assert res.returncode == 0, ("pip wheel failed; the venv's setuptools must build wheels by itself "
                                 "(setuptools>=70.1, from the test extra):\n" + res.stdout + res.stderr)
    [wheel] = out.glob("syncdesk-*.whl")
    return wheel


@pytest.mark.slow  # builds a wheel with pip and runs two interpreters: 2–6 s
def test_installed_wheel_generates_the_same_demo_company_as_the_checkout(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        packaged_seed = zf.read(SEED_FILE)
        zf.extractall(tmp_path / "site")
    site = (tmp_path / "site").resolve()

    # the seed file ships, byte for byte; tests, the README's screenshots and build litter do not
    assert packaged_seed == (ROOT / SEED_FILE).read_bytes()
    assert "resources/__init__.py" in names
    assert [n for n in names if n.split("/")[0] == "tests" or "conftest" in n] == []
    assert [n for n in names if "screenshots" in n or "__pycache__" in n] == []

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed = run_digest(site, elsewhere)
    checkout = run_digest(ROOT, ROOT)

    # the installed run imported our code and read the seed from the unpacked wheel only
    assert installed["module_files"], "the digest script imported none of our modules"
    assert [f for f in installed["module_files"] if not Path(f).resolve().is_relative_to(site)] == []
    assert Path(installed["seed_file"]).resolve().is_relative_to(site)
    assert str(ROOT) not in [str(Path(p).resolve()) for p in installed["sys_path"] if p]
    assert [f for f in checkout["module_files"] if not Path(f).resolve().is_relative_to(ROOT)] == []

    # (the drifted copy in code had 4 countries where the file has 10)
    countries = len(tomllib.loads((ROOT / SEED_FILE).read_text(encoding="utf-8"))["countries"])
    assert installed["countries"] == checkout["countries"] == countries
    assert installed["counts"] == checkout["counts"]
    assert installed["manifest_sha256"] == checkout["manifest_sha256"]
    assert installed["digest"] == checkout["digest"]
