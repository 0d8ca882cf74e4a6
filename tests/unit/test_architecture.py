"""The house rules of ARCHITECTURE.md that import-linter cannot state: sizes, docstrings, cycles through
function-level imports, the dev-model builders kept out of the runtime, the pipeline as a package."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

GUARD = Path(__file__).resolve().parents[2] / "guard"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
RUNTIME = ("app", "api", "pipeline", "evaluation", "checks", "engine", "audit", "store", "models", "policy")


def path_of(name: str) -> Path:
    relative = Path(*name.split(".")[1:])
    package = GUARD / relative / "__init__.py"
    return package if package.is_file() else (GUARD / relative).with_suffix(".py")


def source_of(name: str) -> str:
    return path_of(name).read_text(encoding="utf-8")


@cache
def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(GUARD.rglob("*.py")):
        parts = ["guard", *path.relative_to(GUARD).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def imported(name: str, tree: ast.Module) -> set[str]:
    """The guard modules ``name`` imports anywhere in its body (a function-level import counts)."""
    known = modules()
    package = name if path_of(name).name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    resolved = set()
    for target in targets:
        module = target
        while module and module not in known:
            module = module.rpartition(".")[0]
        # A package re-exporting its own modules is not a cycle.
        if module.startswith("guard") and module != name and not module.startswith(name + "."):
            resolved.add(module)
    return resolved


def test_modules_and_classes_stay_small_and_documented() -> None:
    too_big, undocumented = [], []
    for name, tree in modules().items():
        lines = len(source_of(name).splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{name}: {lines} lines")
        if not ast.get_docstring(tree):
            undocumented.append(name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_big == []
    assert undocumented == []


def test_no_import_cycle_counting_function_level_imports() -> None:
    graph = {name: imported(name, tree) for name, tree in modules().items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert sorted(f"{a} <-> {b}" for a, deps in graph.items() for b in deps if a < b and reaches(b, a)) == []


def test_runtime_never_imports_the_dev_model_builders() -> None:
    assert "guard.devmodels" in modules()
    runtime = [n for n in modules() if n.split(".")[1:2] and n.split(".")[1] in RUNTIME]
    leaks = sorted(f"{n} -> {d}" for n in runtime for d in imported(n, modules()[n]) if d.startswith("guard.devmodels"))
    assert leaks == []


def test_pipeline_is_a_package_of_single_purpose_modules() -> None:
    assert (GUARD / "pipeline" / "__init__.py").is_file()
    assert not (GUARD / "pipeline.py").exists()
    assert {"stage", "records", "streaming", "health", "service", "errors"} <= {
        p.stem for p in (GUARD / "pipeline").glob("*.py")
    }


def test_every_guard_error_derives_from_the_one_root() -> None:
    import importlib

    from guard.errors import GuardError

    strays = []
    for name in modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not issubclass(value, GuardError)
            ):
                strays.append(f"{name}.{value.__name__}")
    assert strays == []
