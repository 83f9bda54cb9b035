"""The package's floors (docs/architecture.md): imports only run downward.

Read from the source with `ast`, so it checks what the files say, not what
happens to be imported at test time.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "pansharp_jax")

# Module (or package prefix) -> floor; a module may import from its own floor
# or lower ones, never higher. The most specific prefix wins.
FLOORS = {
    "errors": 0,
    "ops": 1, "data": 1,
    "models": 2, "metrics": 2, "baselines": 2, "losses": 2, "report": 2,
    "quicklook": 2, "curves": 2,
    "evaluate": 3, "config_checks": 3, "scene_metrics": 3, "compare": 3,
    "train": 4,
    "inference": 5, "predict": 5, "adapt": 5,
    "commands": 6,
}
# Optional heavy dependencies that a module may import lazily on purpose.
DEFERRED_OK = ("rasterio", "affine", "torch")
MAX_LINES = 400


def _modules():
  """{dotted name below pansharp_jax: path} of every module in the package."""
  found = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
        found[rel.removesuffix(".__init__").removesuffix("__init__")] = path
  return found


def _floor(module: str) -> int:
  parts = module.split(".")
  for n in range(len(parts), 0, -1):
    if ".".join(parts[:n]) in FLOORS:
      return FLOORS[".".join(parts[:n])]
  raise AssertionError(f"pansharp_jax.{module} has no floor in FLOORS")


def _imports(path: str, modules) -> set[str]:
  """Package modules imported at module level by the file at `path`."""
  tree = ast.parse(open(path).read())
  names = set()
  for node in tree.body:
    for sub in ast.walk(node):
      if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("pansharp_jax"):
        base = sub.module.removeprefix("pansharp_jax").lstrip(".")
        for alias in sub.names:
          full = f"{base}.{alias.name}".lstrip(".")
          names.add(full if full in modules else base)
      elif isinstance(sub, ast.Import):
        names |= {a.name.removeprefix("pansharp_jax.") for a in sub.names
                  if a.name.startswith("pansharp_jax.")}
  return {n for n in names if n}


def _graph():
  modules = _modules()
  return {m: _imports(p, modules) for m, p in modules.items()}


def test_imports_only_run_downward():
  upward = [f"{m} (floor {_floor(m)}) imports {d} (floor {_floor(d)})"
            for m, deps in _graph().items() if m for d in deps
            if _floor(d) > _floor(m)]
  assert not upward, "\n".join(upward)


def _find_cycle(graph) -> list[str] | None:
  """One import cycle of `graph` ({module: imported modules}) as a path, or None."""
  state = {}

  def visit(m, path):
    if state.get(m) == "done":
      return None
    if state.get(m) == "open":
      return path[path.index(m):] + [m]
    state[m] = "open"
    for d in sorted(graph.get(m, ())):
      cycle = visit(d, path + [m])
      if cycle:
        return cycle
    state[m] = "done"
    return None

  for m in sorted(graph):
    cycle = visit(m, [])
    if cycle:
      return cycle
  return None


def test_no_import_cycle():
  cycle = _find_cycle(_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_is_found():
  """The cycle finder itself, on a made-up circle and on a chain."""
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_at_top_and_files_short(module):
  path = _modules()[module]
  source = open(path).read()
  assert source.count("\n") <= MAX_LINES, f"{path}: over {MAX_LINES} lines"
  tree = ast.parse(source)
  top = {id(n) for n in tree.body}
  for node in tree.body:  # module-level try/except ImportError blocks are fine
    if isinstance(node, ast.Try):
      top |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
  for node in ast.walk(tree):
    if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
      module_name = getattr(node, "module", None) or node.names[0].name
      assert module_name.split(".")[0] in DEFERRED_OK, (
          f"{path}:{node.lineno}: import inside a function ({ast.unparse(node)})")


def test_data_and_models_stay_apart():
  """Nothing under data/ uses flax; nothing under models/ reads data files."""
  for module, path in _modules().items():
    source = open(path).read()
    if module.startswith("data"):
      assert "import flax" not in source and "from flax" not in source, path
    if module.startswith("models"):
      assert not any(d.startswith("data") for d in _imports(path, _modules())), path


def _linen_imports(source: str) -> list[str]:
  """The imports of Flax Linen in a module's source."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found += [a.name for a in node.names if a.name.startswith("flax.linen")]
    elif isinstance(node, ast.ImportFrom) and node.module:
      if node.module.startswith("flax.linen"):
        found.append(node.module)
      elif node.module == "flax":
        found += [f"flax.{a.name}" for a in node.names if a.name == "linen"]
  return found


def test_no_flax_linen_import_is_left():
  """The networks are Flax NNX modules (issue 33); Linen stays out."""
  for path in _modules().values():
    assert not _linen_imports(open(path).read()), path
  assert _linen_imports("import flax.linen as nn") == ["flax.linen"]
  assert _linen_imports("from flax import linen, nnx") == ["flax.linen"]
  assert _linen_imports("from flax.linen import Dense") == ["flax.linen"]
  assert _linen_imports("from flax import nnx") == []
