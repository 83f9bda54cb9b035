"""Checkpoints and best exports written by the Flax Linen models (before
issue 33) restored into the NNX models' state.

Such a tree is read back without a target (as saved) and every leaf of the
NNX state is looked up in it by path: where a path ends in a parameter or
world-state path of the network, that end is replaced by the Linen one
(`models/linen_paths.py`), which covers the params, the EMA, the
optimizer's moments and accumulated gradients alike.
"""

import jax
import numpy as np
import orbax.checkpoint as ocp


def _names(path) -> tuple:
  """A jax key path as plain strings (orbax restores tuples and named
  tuples without a target as lists and dicts)."""
  return tuple(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k))))
               for k in path)


def _place(value, like):
  """`value` as an array shaped, typed and sharded like `like`."""
  if isinstance(value, jax.Array):  # replicated: this host holds all of it
    value = value.addressable_data(0)
  host = np.asarray(value, dtype=like.dtype)
  sharding = getattr(like, "sharding", None)
  if sharding is None:
    return jax.numpy.asarray(host)
  return jax.make_array_from_callback(like.shape, sharding, lambda i: host[i])


def from_linen(raw, abstract, paths: dict):
  """`abstract`'s tree filled from `raw`, a tree with Linen-named
  parameters; `paths` {NNX path: Linen path}. KeyError when a leaf is
  missing (the tree is not this network's)."""
  found = {_names(p): v for p, v in jax.tree_util.tree_flatten_with_path(raw)[0]}
  flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  leaves = []
  for path, like in flat:
    names = _names(path)
    for start in range(len(names)):
      if names[start:] in paths:
        names = names[:start] + paths[names[start:]]
        break
    if names not in found:
      raise KeyError(f"no {'/'.join(names)} in the saved tree")
    if np.shape(found[names]) != tuple(like.shape):  # e.g. another width
      raise KeyError(f"{'/'.join(names)} is {np.shape(found[names])} in the "
                     f"saved tree, {tuple(like.shape)} in this network")
    leaves.append(_place(found[names], like))
  return treedef.unflatten(leaves)


def restore(manager: ocp.CheckpointManager, step: int, item: str, abstract,
            paths: dict):
  """Item `item` of checkpoint `step`, saved by the Linen models, as
  `abstract`'s NNX tree."""
  raw = manager.restore(step, args=ocp.args.Composite(
      **{item: ocp.args.StandardRestore()}))[item]
  return from_linen(raw, abstract, paths)
