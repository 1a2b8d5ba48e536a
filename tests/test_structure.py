"""The package's structure: no import cycles (lazy imports inside functions included)."""

import ast
import pathlib

import passage

ROOT = pathlib.Path(passage.__file__).parent


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path, name: str, modules: set[str]) -> set[str]:
    """The passage modules ``path`` imports anywhere in it (top level or inside functions);
    ``from passage.x import y`` counts as importing passage.x.y when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    edges = {name: imports(path, name, modules) for name, path in files.items()}
    # importing a.b runs a/__init__ first: that is not an edge a.b -> a of the module's own
    return {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        path.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_in_passage():
    edges = graph()
    assert "passage.models" in edges and "passage.io" in edges
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_io_rebuilds_models_through_the_registry():
    edges = graph()
    assert not edges["passage.io"] & {"passage.models", "passage.lm", "passage.tagging"}
    from passage.registry import MODELS

    assert {"RNN", "LanguageModel"} <= set(MODELS)


def test_release_free_memory_returns_freed_pages_on_glibc():
    import platform

    from passage._memory import release_free_memory

    done = release_free_memory()
    assert done == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
