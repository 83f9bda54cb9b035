"""NNX networks as pure functions of their state: `init` and `apply`.

The train step, the checkpoints, the sharding and the memory probe work on
plain pytrees of arrays, and `jax.jit` over pure state dispatches as fast as
anything can. `FunctionalModel` is that boundary: `init` builds the NNX
module and splits it into `{'params': ..., 'world_state': ...}` (plain nested
dicts, the layout Linen's variables had), `apply` merges a state into the
module's graph (at trace time only), calls it and splits the new state off.
The graph is built once per ratio from abstract shapes (`nnx.eval_shape`),
its modules named for the ops' scopes (models/scopes.py).
"""

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import linen_paths, scopes
from pansharp_jax.models.world import WorldOptions, WorldState

# Variable kind -> the key its pure state has in a variables dict.
COLLECTIONS = ((nnx.Param, "params"), (WorldState, "world_state"))


def split(module):
  """(graphdef, {'params': ..., 'world_state': ...}): pure nested dicts; a
  collection the module does not have is left out (as Linen did)."""
  graphdef, *states = nnx.split(module, *(kind for kind, _ in COLLECTIONS))
  variables = {}
  for (_, name), state in zip(COLLECTIONS, states):
    pure = nnx.to_pure_dict(state)
    if pure or name == "params":
      variables[name] = pure
  return graphdef, variables


def ratio_of(ms, pan):
  return pan.shape[1] // ms.shape[1]


class FunctionalModel:
  """`build(ratio, rngs)` -> an NNX network taking `(ms, pan, lms=None, *,
  train=False, rngs=None)`; `world` its WorldOptions (the loss terms)."""

  def __init__(self, build: Callable[..., nnx.Module], world: WorldOptions):
    self.build = build
    self.world = world
    self._abstract = {}  # ratio -> (network, its graphdef)

  def _built(self, ratio: int):
    if ratio not in self._abstract:
      network = nnx.eval_shape(lambda: self.build(ratio, nnx.Rngs(0)))
      scopes.name_modules(network)  # kept by the graphdef, so by every apply
      self._abstract[ratio] = network, split(network)[0]
    return self._abstract[ratio]

  def abstract(self, ratio: int):
    """The network of `ratio` with shapes for values (nothing allocated)."""
    return self._built(ratio)[0]

  def graphdef(self, ratio: int):
    """The graph of `ratio`'s network, split once (apply merges into it at
    every trace)."""
    return self._built(ratio)[1]

  def linen_paths(self, ratio: int) -> dict:
    """{NNX path: Linen path} of every variable (params and world state), to
    restore what the Linen models saved."""
    network = self.abstract(ratio)
    return {**linen_paths.linen_paths(network),
            **linen_paths.linen_paths(network, WorldState)}

  def init(self, rngs, ms, pan, lms=None, **unused):
    """The variables of a new network for inputs shaped like ms and pan;
    `rngs`: a key or {'params': key, ...}."""
    del lms, unused
    key = rngs["params"] if isinstance(rngs, dict) else rngs
    return split(self.build(ratio_of(ms, pan), nnx.Rngs(params=key)))[1]

  def bind(self, variables, ratio: int):
    """The network of `ratio` holding `variables`."""
    # As jax arrays: a numpy leaf would be written in place by a state update.
    states = [nnx.State(jax.tree.map(jnp.asarray, variables.get(name, {})))
              for _, name in COLLECTIONS]
    return nnx.merge(self.graphdef(ratio), *states)

  def apply(self, variables, ms, pan, lms=None, *, train=False, rngs=None,
            mutable=False):
    """The outputs; with `mutable` (any value but False, as Linen's), also
    the new non-param variables (a training call updates the world state).

    `rngs`: {'gumbel': key, 'dropout': key} for a training call.
    """
    network = self.bind(variables, ratio_of(ms, pan))
    outputs = network(ms, pan, lms, train=train,
                      rngs=nnx.Rngs(**rngs) if rngs else None)
    if mutable is False:
      return outputs
    state = {k: v for k, v in split(network)[1].items() if k != "params"}
    return outputs, state

