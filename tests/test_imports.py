"""fastgram's module graph: no import cycles, and light entry points.

The graph is read from the sources, not from one run: an edge A -> B for
every import of B in A, at module level or inside a function, and for every
module A names by string (a dotted literal like ``"fastgram.transfer"``, or an
f-string like ``f"fastgram.backends.{name}"``, which may name any module
directly below its literal prefix). ``from P import x`` is an import of
``P.x`` when that is a module, else of ``P``. Importing a submodule also runs
its parent packages, but that alone is not a cycle: only imports a module
asks for count.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder -> package name (kernels/ is installed as fastgram.kernels)
SOURCES = {ROOT / "fastgram": "fastgram", ROOT / "kernels": "fastgram.kernels"}


def module_files() -> dict:
    modules = {}
    for folder, package in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package] + parts)] = path
    return modules


def _children(prefix: str, modules) -> set:
    """Modules directly below ``prefix`` (which ends with a dot)."""
    return {m for m in modules if m.startswith(prefix) and "." not in m[len(prefix):]}


def _string_prefix(node: ast.JoinedStr, module: str) -> str:
    """The literal start of an f-string, with ``{__name__}`` resolved."""
    prefix = ""
    for part in node.values:
        if isinstance(part, ast.Constant):
            prefix += str(part.value)
        elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and (
            part.value.id == "__name__"
        ):
            prefix += module
        else:
            break
    return prefix


def imports_of(module: str, path: Path, modules) -> set:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
            node.value.startswith("fastgram.") and node.value in modules
        ):
            found.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            prefix = _string_prefix(node, module)
            if prefix.startswith("fastgram.") and prefix.endswith("."):
                found.update(_children(prefix, modules))
    return {m for m in found if m in modules and m != module}


def find_cycle(graph: dict):
    """One cycle as a list of modules, or None (iterative depth-first search)."""
    state = {}  # module -> "open" while on the stack, "done" after
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = "done"
            elif state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = "open"
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph[nxt]))))
    return None


def test_no_import_cycles():
    modules = module_files()
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    assert len(graph) > 40  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_strings_and_function_level_imports_are_edges(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import importlib\n"
        "def f(op):\n"
        "    from fastgram import dispatch\n"
        "    importlib.import_module(f'fastgram.backends.{op}')\n"
        "LAZY = {'x': 'fastgram.transfer'}\n"
    )
    modules = module_files()
    found = imports_of("fastgram.m", source, modules)
    assert {"fastgram.dispatch", "fastgram.transfer", "fastgram.backends.reference"} <= found


def _loaded_after(statement: str) -> set:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    return set(result.stdout.split())


def test_importing_the_ops_stays_light():
    loaded = _loaded_after("import fastgram.ops")
    heavy = {"PIL", "triton", "fastgram.models", "fastgram.train", "fastgram.train.trainer",
             "fastgram.transfer", "fastgram.kernels", "fastgram.backends.ext.build"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_package_attributes_load_on_first_use():
    loaded = _loaded_after("import fastgram")
    assert "fastgram.transfer" not in loaded and "PIL" not in loaded
    loaded = _loaded_after("import fastgram; fastgram.StyleTransferGAN")
    assert "fastgram.transfer" in loaded
