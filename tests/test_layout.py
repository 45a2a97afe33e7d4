"""The package's shape (docs/design.md): few foundation modules at the top, concept packages below,
library code that logs instead of printing, and a test file named for each module with code."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "mirl"
PRINTING = {"cli.py", "commands"}  # only the command line talks to the terminal


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_vendor" not in p.parts)


def _has_code(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def test_at_most_eight_modules_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, f"{len(top)} modules directly in mirl/: {top}; move the newer ones into a concept package"


def test_library_code_does_not_print() -> None:
    found = []
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in PRINTING:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"print in library code (use logging): {found}"


def test_most_modules_have_a_test_file_named_for_them() -> None:
    """``mirl/<package>/<module>.py`` is tested in ``tests/<package>/test_<module>.py`` (a package's
    ``__init__`` in ``tests/<package>/test_<package>.py``); at least 80% of the modules with code."""
    with_code = [p for p in _modules() if _has_code(p)]
    missing = []
    for path in with_code:
        rel = path.relative_to(PACKAGE)
        stem = rel.parent.name if path.name == "__init__.py" else path.stem
        if not (REPO / "tests" / rel.parent / f"test_{stem}.py").is_file():
            missing.append(str(rel))
    share = 1 - len(missing) / len(with_code)
    assert share >= 0.8, f"{share:.0%} of {len(with_code)} modules have a test file; missing: {missing}"


def test_no_module_defines_a_function_twice() -> None:
    """A second ``def`` of the same name hides the first: a shadowed test never runs."""
    import collections

    twice = []
    for path in sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "tests").rglob("*.py")):
        if "_vendor" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = collections.Counter(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
        twice += [f"{path.relative_to(REPO)}: {name}" for name, count in names.items() if count > 1]
    assert not twice, f"defined twice (the later one hides the earlier): {twice}"
