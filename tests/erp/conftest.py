"""A real trytond 8.2 server (SQLite) seeded with the demo company's ERP side.

The template database is built once per (customers, seed, anchor, module versions) under
``$SYNCDESK_TRYTON_CACHE`` (default ``~/.cache/syncdesk-tryton``) and copied per test module,
so state never leaks between modules. trytond comes with the ``erp-test`` extra, which the
README's test command installs: without it these tests fail (they never skip)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.demo.dataset import DemoDataset, generate
from services.demo.tryton_sandbox import (
    DEFAULT_ANCHOR,
    TrytonSandbox,
    build_template,
    copy_database,
    default_cache_dir,
    template_meta,
    trytond_available,
)

CUSTOMERS = 60
SEED = 1
ANCHOR = DEFAULT_ANCHOR  # 2024-05-01T12:00:00Z
MISSING = ("trytond 8.2 is not installed: the README's test command installs it "
           "(pip install -e '.[test,erp-test]'); tests/erp needs a real trytond")


@dataclass
class Timings:
    """How the session's first use of the template went (read by ``test_template_is_reused``)."""

    template_seconds: float = 0.0
    template_cached: bool = False
    messages: list[str] = field(default_factory=list)


TIMINGS = Timings()


@pytest.fixture(scope="session")
def tryton_template() -> Path:
    if not trytond_available():
        pytest.fail(MISSING, pytrace=False)
    started = time.perf_counter()
    messages: list[str] = []
    path = build_template(default_cache_dir(), CUSTOMERS, SEED, ANCHOR, progress=messages.append)
    TIMINGS.template_seconds = time.perf_counter() - started
    TIMINGS.messages = messages
    TIMINGS.template_cached = messages == [cache_hit_message(path)]
    return path


def cache_hit_message(template: Path) -> str:
    """What ``build_template`` says, and all it says, when it finds the template cached."""
    return f"template {template.parent.name} cached"


@pytest.fixture(scope="session")
def erp_dataset() -> DemoDataset:
    """The dataset the template was seeded from (the real ERP holds its ``ds.erp``)."""
    return generate(CUSTOMERS, SEED, anchor=ANCHOR)


@pytest.fixture(scope="module")
def real_tryton(tryton_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonSandbox]:
    """A private copy of the template, served by trytond for one test module."""
    folder = tmp_path_factory.mktemp("tryton")
    sandbox = TrytonSandbox(copy_database(tryton_template, folder))
    with sandbox:
        yield sandbox


def template_info(path: Path) -> dict[str, object]:
    return template_meta(path)
