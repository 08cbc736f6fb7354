"""The shape of the code: no import cycles, layers that point one way, stdlib-only leaves.

Imports inside functions count too (`tools/import_graph.py` reads every import
statement with `ast`): a lazy import up the stack is still an arrow up.
"""

import ast
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "import_graph", os.path.join(ROOT, "tools", "import_graph.py"))
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

# README, "Architecture": a module imports from its own layer or below. The
# longest matching prefix decides; the fine-tuning data (`task_data/`, which
# training reads) is core. `portable` reads and writes run directories.
LAYERS = {
    "gpt_tf": 0,
    "gpt_tf.training": 1,
    "gpt_tf.training_cli": 1,
    "gpt_tf.portable": 1,
    "gpt_tf.launcher": 1,
    "gpt_tf.export": 1,
    "gpt_tf.interop": 1,
    "gpt_tf.clients": 2,
    "gpt_tf.serving": 2,
    "gpt_tf.tasks": 3,
    "gpt_tf.evaluation": 3,
    "gpt_tf.cli": 3,
    "apps": 3,
}
LAYER_NAMES = ["core", "training/export", "clients/serving", "tasks/apps"]
# Imported by every layer: the standard library (and `gpt_tf.errors`) only.
LEAVES = ["gpt_tf.errors", "gpt_tf.files", "gpt_tf.validation", "gpt_tf.task_card",
          "gpt_tf.progress", "gpt_tf.text_stream", "gpt_tf.export.layout",
          "gpt_tf.export.manifest", "gpt_tf.task_table"]

# Issue 16: a task is one entry in `gpt_tf/task_table.py`, not a literal repeated in ten
# modules. Before the table the literal "sentiment" was a string constant 27 times in 11
# modules of gpt_tf; what is left names something else that happens to share the word.
TASK_LITERAL = "sentiment"
# data files' CSV header cells (Pang & Lee's, IMDB's) and the npm package `sentiment`'s name
TASK_LITERAL_ALLOWED = {"gpt_tf.datasets.sentiment": 1, "gpt_tf.datasets.modern": 1,
                        "gpt_tf.datasets.sources": 1}

# Issue 16: a function a reader takes in at once. Longer ones for now, to be split:
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS = set()


def _layer(module):
    parts = module.split(".")
    while parts:
        name = ".".join(parts)
        if name in LAYERS:
            return LAYERS[name]
        parts.pop()
    return None


def test_no_import_cycle():
    graph = import_graph.import_graph()
    assert "gpt_tf.clients.tflite_client" in graph and "apps.sentiment" in graph
    cycles = import_graph.strongly_connected_components(graph)
    assert not cycles, "\n".join(["import cycles (python tools/import_graph.py --edges):"]
                                 + import_graph.describe_cycles(graph, cycles))


def test_no_import_cycle_between_packages():
    # One room per concern: gpt_tf.X as a whole never imports a room that imports it back.
    graph = import_graph.package_graph(import_graph.import_graph())
    cycles = import_graph.strongly_connected_components(graph)
    assert not cycles, "\n".join(["package cycles (python tools/import_graph.py --edges):"]
                                 + import_graph.describe_cycles(graph, cycles))


def test_the_finder_sees_cycles_through_lazy_imports_and_package_facades(tmp_path):
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("from pkg.low.checks import check\n")
    (package / "low" / "checks.py").write_text("import os\n")
    (package / "high.py").write_text("def f():\n    from pkg.low import checks\n")
    graph = import_graph.import_graph(str(tmp_path), ("pkg",))
    assert import_graph.strongly_connected_components(graph) == []
    # `low.checks` imports `high` inside a function: `high` -> `low` (facade) -> `low.checks`.
    (package / "low" / "checks.py").write_text("def g():\n    import pkg.high\n")
    graph = import_graph.import_graph(str(tmp_path), ("pkg",))
    assert import_graph.strongly_connected_components(graph) == [
        ["pkg.high", "pkg.low", "pkg.low.checks"]]


def test_layers_point_one_way():
    graph = import_graph.import_graph()
    unplaced = sorted(m for m in graph if m.split(".")[0] != "tflite" and _layer(m) is None)
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"
    upward = [f"{source} ({LAYER_NAMES[_layer(source)]}) -> {target} "
              f"({LAYER_NAMES[_layer(target)]})"
              for source, targets in sorted(graph.items()) for target in sorted(targets)
              if _layer(source) is not None and _layer(target) is not None
              and _layer(target) > _layer(source)]
    assert not upward, "imports up the stack:\n" + "\n".join(upward)


def test_tflite_runner_imports_no_gpt_tf():
    graph = import_graph.import_graph()
    for module, targets in graph.items():
        if module.split(".")[0] == "tflite":
            assert all(t.split(".")[0] == "tflite" for t in targets), (module, targets)


def test_leaf_modules_import_only_the_standard_library():
    files = import_graph.module_files()
    for leaf in LEAVES:
        with open(files[leaf], encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                allowed = (name.split(".")[0] in sys.stdlib_module_names
                           or name in ("gpt_tf.errors", "gpt_tf.files", "gpt_tf.export.layout"))
                assert allowed, f"{leaf} imports {name}: leaf modules use the standard library"


def test_functions_stay_short():
    lengths = []
    for module, path in import_graph.module_files(ROOT, ("gpt_tf",)).items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append((node.end_lineno - node.lineno + 1, f"{module}.{node.name}"))
    long = [f"{name}: {lines} lines" for lines, name in sorted(lengths, reverse=True)
            if lines > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {long}"
    assert LONG_FUNCTIONS <= {name for lines, name in lengths if lines > MAX_FUNCTION_LINES}, \
        "a function in LONG_FUNCTIONS is short now: drop it from the list"


def test_a_task_is_named_in_the_table_only():
    found = {}
    for module, path in import_graph.module_files(ROOT, ("gpt_tf",)).items():
        if module == "gpt_tf.task_table":
            continue
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        count = sum(isinstance(node, ast.Constant) and node.value == TASK_LITERAL
                    for node in ast.walk(tree))
        if count:
            found[module] = count
    assert found == TASK_LITERAL_ALLOWED, (
        f"the literal {TASK_LITERAL!r} outside gpt_tf/task_table.py: {found}; read the task's "
        "name and facts from gpt_tf.task_table")
