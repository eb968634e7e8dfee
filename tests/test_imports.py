"""The import graph of bigbigan_tf has no cycle, lazy imports included.

Every `import` and `from ... import` statement of every module, at any depth
(inside functions too), is an edge; a cycle would mean that some module can
only be imported after another that needs it.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bigbigan_tf"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
  """bigbigan_tf modules imported anywhere in the file."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from bigbigan_tf import data` imports bigbigan_tf.data.
      names = [f"{node.module}.{alias.name}" for alias in node.names]
      names.append(node.module)
    else:
      continue
    for name in names:
      # The deepest module the name denotes (a symbol's own module).
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name:
        found.add(name)
  return found


def import_graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    edges = _imports(path, set(modules))
    # Importing a module imports its parent packages first.
    for dependency in list(edges):
      parent = dependency.rpartition(".")[0]
      while parent:
        edges.add(parent)
        parent = parent.rpartition(".")[0]
    edges.discard(name)
    # A package's own submodules are not a cycle with the package.
    graph[name] = {e for e in edges if not name.startswith(e + ".")}
  return graph


def find_cycle(graph: dict[str, set[str]]):
  """A list of modules forming a cycle, or None."""
  state = {}
  stack = []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_find_cycle_finds_a_cycle_and_accepts_a_dag():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_lazy_imports_are_edges(tmp_path):
  module = tmp_path / "m.py"
  module.write_text("def f():\n  from bigbigan_tf import training\n")
  assert "bigbigan_tf.training" in _imports(
      module, {"bigbigan_tf", "bigbigan_tf.training"})


def test_bigbigan_tf_has_no_import_cycle():
  graph = import_graph()
  assert "bigbigan_tf.training" in graph and "bigbigan_tf.config" in graph
  cycle = find_cycle(graph)
  assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("module", ["bigbigan_tf.training",
                                    "bigbigan_tf.evaluation.evaluator",
                                    "bigbigan_tf.data"])
def test_library_modules_below_config_do_not_import_it(module):
  """config registers every configurable by importing their modules; those
  must not import config back."""
  assert "bigbigan_tf.config" not in import_graph()[module]
