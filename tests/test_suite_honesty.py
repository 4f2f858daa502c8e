"""An AST check over every ``tests/**/*.py``: no assertion that cannot fail, no test without an assertion.

Findings name ``file:line``. The rules:

* ``assert`` of something always true: a truthy constant, a non-empty string/f-string, or a non-empty
  tuple/list/set/dict literal (``assert (x == 1, "message")``);
* a tautology inside an asserted expression: ``(A and B) or A`` (absorption: it is just ``A``, so ``B``
  is never checked) and ``A or not A``;
* a comparison that cannot fail: ``len(...) >= 0``, ``x.rowCount() >= 0``, ``x.count() >= 0`` (any
  ``len``/``count``/``rowCount``/``columnCount`` call against 0 with ``>=``, or 0 ``<=`` it, or ``> -1``),
  and ``X == X`` / ``X >= X`` / ``X is X`` with the same expression on both sides;
* a test function (``def test_*`` / ``async def test_*``, module level or in a class) with no
  assertion anywhere in its body (nested functions included). An assertion is an ``assert`` statement,
  ``raise AssertionError``, ``pytest.raises`` /
  ``pytest.warns`` / ``pytest.fail``, pytest-qt's ``qtbot.waitUntil`` / ``waitSignal(s)`` /
  ``waitCallback`` / ``assertNotEmitted`` and ``qtmodeltester.check``, pytester's line matchers
  (``fnmatch_lines`` ...), any call named ``assert*`` / ``check_*`` / ``expect_*`` / ``validate_*``,
  or a call of a helper whose own body asserts — resolved by name, transitively, within the module and
  the ``tests`` modules it imports.

There is no allow-list of test names. A test that truly proves its point otherwise may carry a
``# honest: <why>`` comment on its ``def`` line (none does today).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
HONEST_MARK = "# honest:"

ASSERTING_PREFIXES = ("assert", "check_", "expect_", "validate_")
ASSERTING_METHODS = frozenset({
    "waitUntil", "waitSignal", "waitSignals", "waitCallback", "assertNotEmitted",  # pytest-qt
    "fnmatch_lines", "no_fnmatch_line", "re_match_lines", "no_re_match_line",  # pytester's LineMatcher
})
PYTEST_ASSERTING = frozenset({"raises", "warns", "fail", "deprecated_call"})
SIZE_CALLS = frozenset({"len", "count", "rowCount", "columnCount", "__len__"})


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Module:
    name: str  # dotted, e.g. tests.services.test_engine
    path: str  # shown in findings, relative to the repository
    tree: ast.Module
    lines: list[str]
    functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = field(default_factory=dict)
    imported: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, name)


# -- reading ------------------------------------------------------------------------------------


def parse_module(name: str, path: str, source: str) -> Module:
    tree = ast.parse(source, filename=path)
    module = Module(name, path, tree, source.splitlines())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            module.functions.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                module.imported[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module.imported[alias.asname or alias.name.split(".")[0]] = (alias.name, None)
    return module


def load_suite(root: Path = ROOT, tests: Path = TESTS) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for file in sorted(tests.rglob("*.py")):
        rel = file.relative_to(root)
        dotted = ".".join(rel.with_suffix("").parts)
        modules[dotted] = parse_module(dotted, str(rel), file.read_text(encoding="utf-8"))
    return modules


# -- what counts as an assertion ------------------------------------------------------------------


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _receiver(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return None


def _is_builtin_assertion(node: ast.AST, module: Module) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(exc, ast.Name) and exc.id == "AssertionError"
    if not isinstance(node, ast.Call):
        return False
    name = _call_name(node)
    if name is None:
        return False
    receiver = _receiver(node)
    if name in PYTEST_ASSERTING and (receiver == "pytest" or module.imported.get(name, ("", ""))[0] == "pytest"):
        return True
    if name == "check" and receiver == "qtmodeltester":
        return True
    return name in ASSERTING_METHODS or name.startswith(ASSERTING_PREFIXES)


class Resolver:
    """Which helpers assert: by name within a module and the ``tests`` modules it imports (transitively)."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self._memo: dict[tuple[str, int], bool] = {}

    def _candidates(self, module: Module, name: str) -> Iterator[tuple[Module, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for fn in module.functions.get(name, []):
            yield module, fn
        origin = module.imported.get(name)
        if origin is not None and origin[1] is not None and origin[0] in self.modules:
            other = self.modules[origin[0]]
            for fn in other.functions.get(origin[1], []):
                yield other, fn
        for source, _ in module.imported.values():  # helpers called as methods/attributes of imported tests code
            if source.startswith("tests") and source in self.modules and source != module.name:
                for fn in self.modules[source].functions.get(name, []):
                    yield self.modules[source], fn

    def asserts(self, module: Module, fn: ast.FunctionDef | ast.AsyncFunctionDef,
                visiting: frozenset[tuple[str, int]] = frozenset()) -> bool:
        key = (module.name, fn.lineno)
        if key in self._memo:
            return self._memo[key]
        if key in visiting:
            return False
        visiting = visiting | {key}
        found = False
        for node in ast.walk(fn):
            if _is_builtin_assertion(node, module):
                found = True
                break
            if isinstance(node, ast.Call) and (name := _call_name(node)) is not None and any(
                    other is not fn and self.asserts(mod, other, visiting)
                    for mod, other in self._candidates(module, name)):
                found = True
                break
        self._memo[key] = found
        return found


# -- the rules ------------------------------------------------------------------------------------


def _always_true(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.JoinedStr):
        return any(not isinstance(v, ast.Constant) or v.value for v in node.values)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts)
    if isinstance(node, ast.Dict):
        return bool(node.keys)
    return False


def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


def _tautology(node: ast.BoolOp) -> str | None:
    if not isinstance(node.op, ast.Or):
        return None
    for i, value in enumerate(node.values):
        others = [v for j, v in enumerate(node.values) if j != i]
        if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.And):
            for other in others:
                if any(_same(part, other) for part in value.values):
                    return f"`{ast.unparse(node)}` is just `{ast.unparse(other)}`: the rest is never checked"
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not):
            for other in others:
                if _same(value.operand, other):
                    return f"`{ast.unparse(node)}` is always true"
    return None


def _is_size(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _call_name(node) in SIZE_CALLS


def _is_number(node: ast.expr, value: int) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_number(node.operand, -value)
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value == value


def _cannot_fail(node: ast.Compare) -> str | None:
    left = node.left
    text = f"`{ast.unparse(node)}` cannot fail"
    for op, right in zip(node.ops, node.comparators, strict=True):
        if _is_size(left) and ((isinstance(op, ast.GtE) and _is_number(right, 0))
                               or (isinstance(op, ast.Gt) and _is_number(right, -1))):
            return text
        if _is_size(right) and ((isinstance(op, ast.LtE) and _is_number(left, 0))
                                or (isinstance(op, ast.Lt) and _is_number(left, -1))):
            return text
        if isinstance(op, ast.Eq | ast.GtE | ast.LtE | ast.Is) and _same(left, right) and not any(
                isinstance(n, ast.Call | ast.Await | ast.Yield | ast.NamedExpr) for n in ast.walk(left)):
            return text  # the same side-effect-free expression twice (two calls may differ: determinism checks)
        left = right
    return None


def assertion_findings(module: Module) -> list[Finding]:
    out: list[Finding] = []
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Assert):
            continue
        if _always_true(node.test):
            out.append(Finding(module.path, node.lineno, f"`assert {ast.unparse(node.test)}` cannot fail"))
            continue
        for sub in ast.walk(node.test):
            message = None
            if isinstance(sub, ast.BoolOp):
                message = _tautology(sub)
            elif isinstance(sub, ast.Compare):
                message = _cannot_fail(sub)
            if message:
                out.append(Finding(module.path, getattr(sub, "lineno", node.lineno), message))
    return out


def _test_functions(module: Module) -> Iterable[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    yield item


def _exempt(module: Module, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``# honest: <why>`` on the def line (or the closing line of a multi-line signature)."""
    first = fn.lineno
    last = fn.body[0].lineno - 1 if fn.body else first
    for line in module.lines[first - 1:max(first, last)]:
        mark = line.find(HONEST_MARK)
        if mark >= 0 and line[mark + len(HONEST_MARK):].strip():
            return True
    return False


def no_assertion_findings(module: Module, resolver: Resolver) -> list[Finding]:
    if not Path(module.path).name.startswith("test_"):
        return []
    return [Finding(module.path, fn.lineno, f"{fn.name} asserts nothing")
            for fn in _test_functions(module) if not _exempt(module, fn) and not resolver.asserts(module, fn)]


def lint(modules: dict[str, Module]) -> list[Finding]:
    resolver = Resolver(modules)
    findings: list[Finding] = []
    for module in modules.values():
        findings += assertion_findings(module)
        findings += no_assertion_findings(module, resolver)
    return sorted(set(findings))


# -- the suite itself -----------------------------------------------------------------------------


def test_the_suite_has_no_assertion_that_cannot_fail_and_no_test_without_one() -> None:
    modules = load_suite()
    assert len(modules) > 40 and "tests.services.test_engine" in modules  # the walk found the suite
    findings = lint(modules)
    assert findings == [], "\n" + "\n".join(map(str, findings))


# -- the lint itself (on small made-up modules) -----------------------------------------------------


def lint_source(source: str, **helpers: str) -> list[str]:
    modules = {"tests.test_sample": parse_module("tests.test_sample", "tests/test_sample.py",
                                                 textwrap.dedent(source))}
    for name, text in helpers.items():
        modules[f"tests.{name}"] = parse_module(f"tests.{name}", f"tests/{name}.py", textwrap.dedent(text))
    return [f"{f.line}: {f.message}" for f in lint(modules)]


@pytest.mark.parametrize("expression", ["True", "1", "'always'", "f'{x} is fine'", "(x == 1, 'message')",
                                        "[x]", "{'a': x}"])
def test_an_assert_of_something_always_true_is_found(expression: str) -> None:
    found = lint_source(f"def test_x(x=1):\n    assert {expression}\n")
    assert found == [f"2: `assert {ast.unparse(ast.parse(expression, mode='eval').body)}` cannot fail"]


@pytest.mark.parametrize(("expression", "just"), [("(visible and not modal) or visible", "visible"),
                                                  ("a.b or (c and a.b)", "a.b"),
                                                  ("x or not x", None)])
def test_a_tautology_is_found(expression: str, just: str | None) -> None:
    [found] = lint_source(f"def test_x(visible, modal, a, c, x):\n    assert {expression}\n")
    assert found.startswith("2: `") and (f"is just `{just}`" in found if just else "is always true" in found)


@pytest.mark.parametrize("expression", ["len(rows) >= 0", "model.rowCount() >= 0", "items.count() >= 0",
                                        "0 <= len(rows)", "len(rows) > -1", "x.total == x.total",
                                        "a < b and len(c) >= 0"])
def test_a_comparison_that_cannot_fail_is_found(expression: str) -> None:
    [found] = lint_source(f"def test_x(rows, model, items, x, a, b, c):\n    assert {expression}\n")
    assert found.startswith("2: `") and found.endswith("cannot fail")


@pytest.mark.parametrize("expression", ["len(rows) >= 1", "model.rowCount() == 0", "(a and b) or c",
                                        "x.total == y.total", "not rows", "a or b", "f() == f()"])
def test_an_assertion_that_can_fail_is_not_flagged(expression: str) -> None:
    assert lint_source(f"def test_x(rows, model, a, b, c, x, y):\n    assert {expression}\n") == []


def test_a_test_without_an_assertion_is_found() -> None:
    found = lint_source("""
        import pytest

        def helper(x):
            return x + 1

        def test_nothing():
            helper(1)

        async def test_nothing_async():
            await helper(1)

        class TestGroup:
            def test_in_a_class(self):
                print("hi")

        def test_raises():
            with pytest.raises(ValueError):
                int("x")

        def test_fails():
            pytest.fail("unreachable")

        def test_asserts():
            assert helper(1) == 2

        def test_raise_assertion_error():
            raise AssertionError("never")
    """)
    assert found == ["7: test_nothing asserts nothing", "10: test_nothing_async asserts nothing",
                     "14: test_in_a_class asserts nothing"]


def test_assertions_are_resolved_through_helpers_transitively() -> None:
    found = lint_source("""
        from tests.rig import deep_check, harmless

        def local_helper(v):
            assert v

        def calls_local(v):
            local_helper(v)

        def test_local_two_levels():
            calls_local(1)

        def test_imported_two_levels():
            deep_check(1)

        def test_imported_harmless():
            harmless(1)

        def test_named_like_an_assertion(page):
            page.assert_visible()
            page.check_title("x")

        def test_qt(qtbot, qtmodeltester, model):
            qtmodeltester.check(model)

        def test_wait(qtbot, w):
            qtbot.waitUntil(w.isVisible)

        def test_recursive_helper_without_assert():
            ping(3)

        def ping(n):
            return ping(n - 1) if n else 0
    """, rig="""
        def _inner(v):
            assert v == 1

        def deep_check(v):
            _inner(v)

        def harmless(v):
            return v
    """)
    assert found == ["16: test_imported_harmless asserts nothing",
                     "29: test_recursive_helper_without_assert asserts nothing"]


def test_the_honest_mark_exempts_a_test_and_needs_a_reason() -> None:
    found = lint_source("""
        def test_exempt():  # honest: the fixture's own assertions are the point
            print("x")

        def test_empty_reason():  # honest:
            print("x")
    """)
    assert found == ["5: test_empty_reason asserts nothing"]
