"""Test-wide setup: headless Qt, a private SYNCDESK_HOME for every test, and the skip guard.

Skip guard: every run ends with ``SKIPPED: N (allowed platform skips: M)`` and the list of the
other skips. With ``SYNCDESK_NO_SKIPS=1`` (``.ci/run`` sets it) a run with any skip whose reason
does not start with ``platform:`` fails (exit status 1): a test that cannot run on a fresh clone
with the README's test command is a failure, not a silent hole. A test that truly cannot run on
some platform skips with ``pytest.skip("platform: <the condition>")``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")  # qasync binds to PySide6 whatever the import order

NO_SKIPS_ENV = "SYNCDESK_NO_SKIPS"
PLATFORM_PREFIX = "platform:"


@pytest.fixture(autouse=True)
def syncdesk_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("syncdesk-home")
    monkeypatch.setenv("SYNCDESK_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def audit_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The audit log's signing keys and witnesses in a private folder too, never the user's keyring
    or config folder; on a MonkeyPatch of its own, so that a test's ``monkeypatch.undo()`` keeps it."""
    keys = tmp_path_factory.mktemp("audit-keys")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNCDESK_AUDIT_KEY_DIR", str(keys))
        patch.delenv("SYNCDESK_AUDIT_WITNESS", raising=False)
        yield keys


# -- skip guard --------------------------------------------------------------------------------


@dataclass
class SkipRecord:
    nodeid: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.reason.startswith(PLATFORM_PREFIX)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ").strip()


@dataclass(eq=False)  # hashable: pluggy keeps plugins in sets
class SkipGuard:
    """Records every skip of the session; fails it under ``SYNCDESK_NO_SKIPS=1`` (see the module doc)."""

    required: bool
    skips: list[SkipRecord] = field(default_factory=list)

    @property
    def offending(self) -> list[SkipRecord]:
        return [s for s in self.skips if not s.allowed]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail is not a skip
            self.skips.append(SkipRecord(report.nodeid, _skip_reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a module-level pytest.skip()/importorskip skips a whole file
            self.skips.append(SkipRecord(report.nodeid, _skip_reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.required and self.offending and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        tr = terminalreporter
        tr.write_line(f"SKIPPED: {len(self.skips)} (allowed platform skips: {len(self.skips) - len(self.offending)})")
        for s in self.offending:
            tr.write_line(f"  skip not allowed: {s.nodeid}: {s.reason or '(no reason)'}")
        if self.required and self.offending:
            tr.write_line(f"{NO_SKIPS_ENV}=1: the run fails because of {len(self.offending)} skip(s) "
                          f"whose reason does not start with {PLATFORM_PREFIX!r}", red=True, bold=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(required=os.environ.get(NO_SKIPS_ENV) == "1"), "syncdesk-skip-guard")
