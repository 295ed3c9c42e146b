"""House rules of the package layout: no import cycle, every module imports.

The flow spec -> data -> model -> train -> calibrate / compress -> export
-> serve reads one way only if no module imports, directly or through
others, a module that imports it back. `import_graph` parses every
`grok_tf/**/*.py` with `ast` and collects its imports of grok_tf modules,
module-level and inside functions alike (a lazy import is a dependency
too; only `if TYPE_CHECKING:` blocks, which never run, are left out).
`find_cycles` returns the strongly connected components of more than one
module (Tarjan's algorithm, iterative).

Edges: `import grok_tf.a.b` and `from grok_tf.a import b` point at the
module `grok_tf.a.b` (when `b` is a module; else at `grok_tf.a`). Python
also runs the `__init__` of every package on the way (`grok_tf.a`), so
the importer depends on those packages too, except on its own ancestors:
a child's import of its parent package's `__init__` is how Python loads
the child, not a cycle, while the parent's `__init__` importing the child
is a normal edge.

From the command line, `python -m tests.test_house` prints the modules and
lines per folder, the longest modules and the cycles (exit status 1 if
there is one).
"""

import ast
import os
import subprocess
import sys
from collections import Counter
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "grok_tf"


def module_files(root=ROOT, package=PACKAGE):
    """`dotted module name -> .py path` of every module of the package."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree):
    """`(node, lazy)` of every Import / ImportFrom, lazy inside a function;
    `if TYPE_CHECKING:` bodies are skipped."""
    functions = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    stack = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
        lazy = lazy or isinstance(node, functions)
        children = ast.iter_child_nodes(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = node.orelse
        stack.extend((child, lazy) for child in children)


def _existing(name, modules):
    """`name`, or its longest prefix that is a module (None outside)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _ancestors(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name, path, modules):
    """`{imported module: [(line, lazy), ...]}` of one module.

    `lazy` is True for an import inside a function. See the module
    docstring for which modules an import statement depends on.
    """
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = defaultdict(list)
    for node, lazy in _import_nodes(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: from the importer's package upwards
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.append(child if child in modules else base)
        for target in targets:
            target = _existing(target, modules)
            if target is None or target == name:
                continue
            for implied in [*_ancestors(target), target]:
                mine = implied == name or name.startswith(implied + ".")
                if implied in modules and not mine:
                    found[implied].append((node.lineno, lazy))
    return dict(found)


def import_graph(root=ROOT, package=PACKAGE):
    """`(graph, lines)`: `module -> sorted imported modules`, and the
    `(importer, imported) -> [(line, lazy), ...]` of each edge."""
    modules = module_files(root, package)
    graph, lines = {}, {}
    for name, path in modules.items():
        edges = imports_of(name, path, modules)
        graph[name] = sorted(edges)
        for target, at in edges.items():
            lines[(name, target)] = sorted(set(at))
    return graph, lines


def strongly_connected_components(graph):
    """Tarjan's algorithm without recursion; components in reverse
    topological order, each a sorted list."""
    index, low, on_stack = {}, {}, set()
    stack, components, counter = [], [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def find_cycles(graph):
    """The strongly connected components of more than one module."""
    return [c for c in strongly_connected_components(graph) if len(c) > 1]


def cycle_path(component, graph):
    """One cycle through the component's first module (shortest, BFS)."""
    members = set(component)
    start = component[0]
    previous = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in graph[node]:
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def _where(importer, at):
    return f"{importer} line " + ", ".join(
        f"{line}{' lazy' if lazy else ''}" for line, lazy in at
    )


def describe_cycle(component, graph, lines, edges=False):
    """`N modules [...]: cycle a -> b (a line 3) -> a (b line 9 lazy)`.

    With `edges`, one more line per import inside the component: the
    edges to cut (a lazy one is often the back-reference).
    """
    path = cycle_path(component, graph)
    steps = [path[0]]
    for importer, imported in zip(path, path[1:], strict=False):
        where = _where(importer, lines[importer, imported])
        steps.append(f"{imported} ({where})")
    head = f"{len(component)} modules {component}: cycle "
    text = [head + " -> ".join(steps)]
    if edges:
        members = set(component)
        text += [
            f"    {a} -> {b} ({_where(a, lines[a, b])})"
            for a in component
            for b in graph[a]
            if b in members
        ]
    return "\n".join(text)


def test_no_import_cycle_among_grok_tf_modules():
    graph, lines = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100
    cycles = find_cycles(graph)
    report = "\n".join(describe_cycle(c, graph, lines, True) for c in cycles)
    assert not cycles, f"import cycles among grok_tf modules:\n{report}"


def write_package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_finder_sees_lazy_relative_and_package_imports(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import leaf\n",
            "pkg/sub/__init__.py": "from . import leaf\n",
            "pkg/sub/leaf.py": "import os\n",
            "pkg/a.py": "def f():\n    from pkg.b import g\n",
            "pkg/b.py": "from .c import x\n",
            "pkg/c.py": "import pkg.a as a\n",
            "pkg/typed.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import a\n"
            ),
            "pkg/d.py": "from pkg.sub.leaf import thing\n",
            "pkg/e.py": "from pkg.sub import leaf\n",
        },
    )
    graph, lines = import_graph(tmp_path, "pkg")
    # Package -> child is an edge; the child's implicit parent is not.
    assert graph["pkg"] == ["pkg.sub", "pkg.sub.leaf"]
    assert graph["pkg.sub"] == ["pkg.sub.leaf"]
    assert graph["pkg.sub.leaf"] == []
    # Lazy and relative imports count; TYPE_CHECKING ones do not.
    assert graph["pkg.a"] == ["pkg.b"]
    assert lines[("pkg.a", "pkg.b")] == [(2, True)]
    assert lines[("pkg.b", "pkg.c")] == [(1, False)]
    assert graph["pkg.b"] == ["pkg.c"] and graph["pkg.c"] == ["pkg.a"]
    assert graph["pkg.typed"] == []
    # Importing pkg.sub.leaf also runs pkg.sub's __init__.
    assert graph["pkg.d"] == graph["pkg.e"] == ["pkg.sub", "pkg.sub.leaf"]
    (cycle,) = find_cycles(graph)
    assert cycle == ["pkg.a", "pkg.b", "pkg.c"]
    assert describe_cycle(cycle, graph, lines) == (
        "3 modules ['pkg.a', 'pkg.b', 'pkg.c']: cycle pkg.a -> pkg.b "
        "(pkg.a line 2 lazy) -> pkg.c (pkg.b line 1) -> pkg.a (pkg.c line 1)"
    )


def test_a_package_importing_back_from_its_child_is_a_cycle(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from pkg.sub.leaf import x\n",
            "pkg/sub/leaf.py": "x = 1\n",
            "pkg/other.py": "import pkg.sub.leaf\n",
            "pkg/back.py": "import pkg.other\n",
        },
    )
    graph, _ = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == []
    # The package's __init__ importing a module that imports the package.
    (tmp_path / "pkg/sub/__init__.py").write_text("import pkg.back\n")
    graph, _ = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.back", "pkg.other", "pkg.sub"]]


def test_tarjan_on_a_long_chain_and_self_loops():
    chain = {f"m{i:05d}": [f"m{i + 1:05d}"] for i in range(5000)}
    chain["m05000"] = []
    assert find_cycles(chain) == []  # no recursion limit
    chain["m05000"] = ["m02500"]
    (cycle,) = find_cycles(chain)
    assert cycle == [f"m{i:05d}" for i in range(2500, 5001)]
    assert find_cycles({"a": ["a"], "b": []}) == []  # a self-import


IMPORT_ALL = """
import importlib
import sys
import traceback

failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(f"{name}:\\n{traceback.format_exc(limit=-3)}")
print(f"imported {len(sys.argv) - 1 - len(failed)} of {len(sys.argv) - 1}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_in_a_fresh_interpreter():
    names = [n for n in module_files() if not n.endswith("__main__")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"imported {len(names)} of {len(names)}" in result.stdout


def report(root=ROOT, package=PACKAGE, longest=5):
    """The layout in numbers and the cycles, as printable lines."""
    modules = module_files(root, package)
    sizes = {n: len(p.read_text().splitlines()) for n, p in modules.items()}
    folders, folder_lines = Counter(), Counter()
    for name, path in modules.items():
        folder = str(path.parent.relative_to(root))
        folders[folder] += 1
        folder_lines[folder] += sizes[name]
    out = [f"{len(modules)} modules, {sum(sizes.values())} lines"]
    out += [
        f"  {folder:<40} {folders[folder]:>3} modules "
        f"{folder_lines[folder]:>6} lines"
        for folder in sorted(folders)
    ]
    out.append("longest modules:")
    ranked = sorted(sizes, key=lambda n: (-sizes[n], n))[:longest]
    out += [f"  {sizes[n]:>5}  {modules[n].relative_to(root)}" for n in ranked]
    graph, lines = import_graph(root, package)
    cycles = find_cycles(graph)
    out.append(
        f"{sum(map(len, graph.values()))} import edges, {len(cycles)} cycles"
    )
    out += [f"  {describe_cycle(c, graph, lines, True)}" for c in cycles]
    return out, cycles


if __name__ == "__main__":
    lines_out, found = report()
    print("\n".join(lines_out))
    sys.exit(1 if found else 0)
