"""Linen parameter trees (runs and best exports written before the NNX
modules) as the NNX modules' pure state.

Each NNX module may name, in an attribute or property `linen_names`, the
Linen name of any child whose attribute name differs (Linen named unnamed
layers by class and call order: `Conv_0`, `Dense_1`, ...); every other child
keeps its name. Leaves keep their values: a Linen Dense or Conv kernel is
laid out as an NNX Linear or Conv kernel, and `scan_layers` stacks blocks
along a leading axis in both.
"""

from flax import nnx


def linen_name(module: nnx.Module, attribute: str) -> str:
  return getattr(module, "linen_names", {}).get(attribute, attribute)


def linen_paths(module: nnx.Module, kind=nnx.Param) -> dict:
  """{NNX path: Linen path} (tuples of names) of every `kind` variable of
  `module` (which may be abstract, from `nnx.eval_shape`)."""
  paths = {}
  for attribute, child in vars(module).items():
    name = linen_name(module, attribute)
    if isinstance(child, nnx.Module):
      for sub, linen in linen_paths(child, kind).items():
        paths[(attribute, *sub)] = (name, *linen)
    elif isinstance(child, kind):
      paths[(attribute,)] = (name,)
  return paths


def _get(tree, path):
  for name in path:
    if not isinstance(tree, dict) or name not in tree:
      raise KeyError(f"the Linen tree has no {'/'.join(path)}")
    tree = tree[name]
  return tree


def linen_to_nnx(linen: dict, module: nnx.Module, kind=nnx.Param) -> dict:
  """The pure NNX state (nested dicts) of `module`'s `kind` variables from
  the Linen collection `linen` (nested dicts) of the same network; a
  missing Linen entry is a KeyError naming its path."""
  converted = {}
  for path, source in linen_paths(module, kind).items():
    node = converted
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = _get(linen, source)
  return converted
