"""The package's modules depend on each other without circles: each import, at the top of a
module or inside a function, is an edge, and the graph of fastrnn's modules has no cycle."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "fastrnn"


def _module(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name, modules):
    """The fastrnn modules that module `name` (file `path`) imports, of `modules` (`from . import
    x` imports module x where there is one, else a name of the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("fastrnn")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").startswith("fastrnn"):
                base = node.module
            else:
                continue
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names}
    return out


def graph():
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in _imports(p, name, files) if m in files and m != name}
            for name, p in files.items()}


def _cycle(edges):
    """One cycle of the graph as a list of modules, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_module_imports_itself_through_others():
    edges = graph()
    assert len(edges) > 30  # the walk found the package
    cycle = _cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
