"""The skip guard of tests/conftest.py: under SYNCDESK_NO_SKIPS=1 a skip fails the run, a "platform:" skip does not.

Each case runs a small inner pytest session (pytester) with the project's conftest loaded as a plugin
and the project's own pytest settings from pyproject.toml (``--strict-config``, ``--strict-markers``,
``filterwarnings = error`` ...), so the guard is proven under the settings the suite runs with.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

pytest_plugins = ["pytester"]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_settings() -> dict[str, object]:
    """The project's ``[tool.pytest.ini_options]`` for the inner run (its own files, the guard loaded)."""
    options = dict(tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"])
    assert "--strict-config" in options["addopts"] and options["filterwarnings"] == ["error"]
    options.pop("testpaths")
    options["addopts"] = f"{options['addopts']} -p tests.conftest -p no:cacheprovider"
    return options

PASSING = """
def test_runs():
    assert 1 + 1 == 2
"""
SKIPPING = """
import pytest

def test_skips():
    pytest.skip("needs a file that is not there")

@pytest.mark.skipif(True, reason="a missing package")
def test_skipif():
    assert False
"""
PLATFORM_SKIP = """
import pytest

def test_platform():
    pytest.skip("platform: no display server on this OS")
"""
MODULE_SKIP = """
import pytest

pytest.skip("whole module: optional dependency absent", allow_module_level=True)

def test_never():
    assert False
"""
XFAIL = """
import pytest

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: bool,
        **modules: str) -> pytest.RunResult:
    pytester.makefile(".toml", pyproject=tomli_w.dumps({"tool": {"pytest": {"ini_options": project_settings()}}}))
    pytester.makepyfile(**modules)
    if required:
        monkeypatch.setenv("SYNCDESK_NO_SKIPS", "1")
    else:
        monkeypatch.delenv("SYNCDESK_NO_SKIPS", raising=False)
    return pytester.runpytest()


def test_a_skip_fails_the_run_under_no_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, True, test_ok=PASSING, test_skip=SKIPPING)
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "SKIPPED: 2 (allowed platform skips: 0)",
        "*skip not allowed: test_skip.py::test_skips: needs a file that is not there",
        "*skip not allowed: test_skip.py::test_skipif: a missing package",
        "SYNCDESK_NO_SKIPS=1: the run fails because of 2 skip(s)*",
    ])


def test_a_platform_skip_is_allowed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, True, test_ok=PASSING, test_platform=PLATFORM_SKIP)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["SKIPPED: 1 (allowed platform skips: 1)"])
    result.stdout.no_fnmatch_line("*skip not allowed*")


def test_a_module_level_skip_fails_the_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, True, test_ok=PASSING, test_module=MODULE_SKIP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "SKIPPED: 1 (allowed platform skips: 0)",
        "*skip not allowed: test_module.py: whole module: optional dependency absent",
    ])


def test_without_the_variable_skips_are_counted_but_allowed(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, False, test_ok=PASSING, test_skip=SKIPPING, test_platform=PLATFORM_SKIP)
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["SKIPPED: 3 (allowed platform skips: 1)",
                                 "*skip not allowed: test_skip.py::test_skips*"])
    result.stdout.no_fnmatch_line("SYNCDESK_NO_SKIPS=1*")


def test_the_count_line_is_printed_when_nothing_skips(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, True, test_ok=PASSING, test_xfail=XFAIL)
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK  # an expected failure is not a skip
    result.stdout.fnmatch_lines(["SKIPPED: 0 (allowed platform skips: 0)"])


def test_a_failing_run_keeps_its_failure_status(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, True, test_bad="def test_bad():\n    assert 1 == 2\n", test_skip=SKIPPING)
    result.assert_outcomes(failed=1, skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED: 2 (allowed platform skips: 0)"])
