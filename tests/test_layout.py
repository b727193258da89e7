"""The package's layering rules, read from the source's imports (ast), so they stay true: no import cycle, no
module importing another module's underscore names, models independent of data, the report independent of the
tasks, config independent of the CLI, and every `from hyperbench... import name` naming something that exists."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hyperbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "conf" not in p.relative_to(PACKAGE).parts}


def imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every hyperbench import in the file, module level and
    inside functions alike. `from . import x` names the module x when x is a module."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("hyperbench")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("hyperbench"):
                out += [(target, a.name, node.lineno) for a in node.names]
    return out


ALL = modules()


def edges() -> dict[str, set[str]]:
    graph = {m: set() for m in ALL}
    for m, path in ALL.items():
        for target, name, _ in imports(m, path):
            sub = f"{target}.{name}" if name else None
            graph[m].add(sub if sub in ALL else target)
    return graph


def test_every_hyperbench_module_is_seen():
    assert {"hyperbench.cli", "hyperbench.config", "hyperbench.training.engine", "hyperbench.models.registry",
            "hyperbench.report.published", "hyperbench.data.geometry"} <= set(ALL)


def test_no_import_cycle():
    graph, cycles = edges(), []
    index, low, stack, on_stack, counter = {}, {}, [], set(), [0]

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package's __init__ importing its own submodules is not a cycle; submodule -> package is an edge
            # only to what the package re-exports, so cycles through an __init__ are real ones too
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert cycles == []


def test_no_module_imports_another_modules_underscore_names():
    bad = [f"{m}:{line} imports {name} from {target}" for m, path in ALL.items()
           for target, name, line in imports(m, path) if name and name.startswith("_") and target != m]
    assert bad == []


@pytest.mark.parametrize("layer, forbidden", [
    ("hyperbench.models", "hyperbench.data"),
    ("hyperbench.models", "hyperbench.tasks"),
    ("hyperbench.report", "hyperbench.tasks"),
    ("hyperbench.config", "hyperbench.cli"),
    ("hyperbench.data", "hyperbench.tasks"),
    ("hyperbench.training", "hyperbench.tasks"),
])
def test_layering(layer, forbidden):
    bad = [f"{m}:{line} imports {target}" for m, path in ALL.items() if m == layer or m.startswith(layer + ".")
           for target, _, line in imports(m, path) if target == forbidden or target.startswith(forbidden + ".")]
    assert bad == []


def test_every_imported_name_exists():
    missing = []
    for m, path in ALL.items():
        for target, name, line in imports(m, path):
            mod = importlib.import_module(target)
            if name and not hasattr(mod, name) and f"{target}.{name}" not in ALL:
                missing.append(f"{m}:{line} {target}.{name}")
    assert missing == []


def test_the_engine_has_no_test_only_branches():
    src = (PACKAGE / "training" / "engine.py").read_text() + (PACKAGE / "tasks" / "continual.py").read_text()
    assert "HYPERBENCH_TEST" not in src and "os.environ" not in src


def test_every_loaded_hyperbench_module_comes_from_this_package():
    """A stale name (hyperbench.<old module>) must fail, not load another checkout's copy through an editable
    install's finder."""
    import sys

    for m in ALL:
        importlib.import_module(m)
    foreign = [f"{name}: {mod.__file__}" for name, mod in sorted(sys.modules.items())
               if name.startswith("hyperbench") and getattr(mod, "__file__", None)
               and not Path(mod.__file__).resolve().is_relative_to(PACKAGE.resolve())
               and not Path(mod.__file__).resolve().is_relative_to((PACKAGE.parent / "conf").resolve())]
    assert foreign == []
