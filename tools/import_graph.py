"""The import graph of gpt_tf/, apps/ and tflite/, and the cycles in it.

    python tools/import_graph.py            # every cycle (strongly connected component)
    python tools/import_graph.py --edges    # and the imports that close each cycle

Exits 1 if modules import each other in a cycle, or packages do (modules
grouped into `gpt_tf.X`, `apps`, `tflite`).

Every `import` and `from ... import` in a file counts, including those inside
functions: a module low in the stack must not import one above it even lazily.
Standard library only; `tests/test_structure.py` runs it.
"""

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("gpt_tf", "apps", "tflite")


def module_files(root=ROOT, packages=PACKAGES):
    """`{module name: file path}` for every `.py` file under the packages."""
    found = {}
    for package in packages:
        for directory, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                parts = os.path.relpath(os.path.join(directory, name), root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = os.path.join(directory, name)
    return found


def _imported_modules(tree, module, is_package, modules):
    """The known modules that a module's imports name, relative imports resolved.

    `import a.b.c` and `from a.b import c` (c a module) name `a.b.c`;
    `from a.b import name` (name defined in `a/b/__init__.py`) names `a.b`.
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:
                submodule = f"{prefix}.{alias.name}"
                found.add(submodule if submodule in modules else _resolve(prefix, modules))
    found.discard(None)
    return found


def _resolve(name, modules):
    """The longest known module that `name` names (or lies inside), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root=ROOT, packages=PACKAGES):
    """`{module: set of modules it imports}` over the packages (edges inside them only).

    `from a.b import c` is an edge to the module `a.b.c` if there is one, else
    to the package `a.b` (its `__init__.py`). Importing `a.b.c` from outside
    `a.b` also runs `a/b/__init__.py`: an edge to each such package too.
    """
    files = module_files(root, packages)
    graph = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        is_package = path.endswith("__init__.py")
        edges = set()
        for target in _imported_modules(tree, module, is_package, files):
            edges.add(target)
            # Importing `a.b.c` from outside `a.b` runs `a/b/__init__.py` first (a
            # facade that may import more); from inside, that has already run.
            parts = target.split(".")[:-1]
            while parts:
                package = ".".join(parts)
                if package in files and not module.startswith(package + "."):
                    edges.add(package)
                parts.pop()
        edges.discard(module)
        graph[module] = edges
    return graph


def package_of(module):
    """The room a module belongs to: `gpt_tf.X` (a subpackage or top-level module), `apps`, `tflite`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "gpt_tf" and len(parts) > 1 else parts[0]


def package_graph(graph):
    """The module graph collapsed onto `package_of`: the layering between gpt_tf's rooms.

    Importing `gpt_tf.clients.base` runs `gpt_tf/clients/__init__.py` too, so
    at this level an edge into any module of a package is an edge to all of it.
    """
    collapsed = {}
    for module, targets in graph.items():
        source = package_of(module)
        edges = collapsed.setdefault(source, set())
        edges.update(package_of(t) for t in targets if package_of(t) != source)
    return collapsed


def strongly_connected_components(graph):
    """Tarjan's algorithm, iterative; components of more than one module, largest first."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components, key=lambda c: (-len(c), c))


def describe_cycles(graph, components):
    """Readable lines: each component's members and the imports inside it."""
    lines = []
    for component in components:
        members = set(component)
        packages = sorted({package_of(m) for m in component})
        lines.append(f"cycle of {len(component)} (in {len(packages)} packages: "
                     f"{', '.join(packages)})")
        for module in component:
            inside = sorted(graph[module] & members)
            lines.append(f"  {module} -> {', '.join(inside)}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="list the imports inside each cycle")
    args = parser.parse_args(argv)
    modules = import_graph()
    cycles = 0
    for level, graph in (("module", modules), ("package", package_graph(modules))):
        components = strongly_connected_components(graph)
        cycles += len(components)
        print(f"{level} level: {len(graph)} nodes, {sum(map(len, graph.values()))} imports, "
              f"{len(components)} cycles; largest: {len(components[0]) if components else 0}")
        for line in describe_cycles(graph, components):
            if args.edges or not line.startswith("  "):
                print(line)
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
