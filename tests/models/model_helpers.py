"""Shared pieces of the model tests: configs, inputs and param surgery.

Everything runs the tiny size at 16-36 px on the CPU; base and large only go
through `jax.eval_shape`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from configs import common
from pansharp_jax.models import registry

# Every real (not eval_shape) model call uses these input sizes: multiples of
# 4 but not of 8, the least the model promises to accept.
HEIGHT, WIDTH = 20, 28


def model_config(size="tiny", **fields):
  """config.model at `size`, dropout 0 and per-block loops (CPU friendly).

  `fields` sets model fields; `world_<name>` sets model.world.<name>.
  """
  config = common.get_base_config().model
  config.size = size
  config.dropout = 0.0
  config.scan_layers = False
  for key, value in fields.items():
    if key.startswith("world_"):
      config.world[key[len("world_"):]] = value
    else:
      config[key] = value
  return config


def build(num_bands=4, size="tiny", **fields):
  return registry.build_model(model_config(size, **fields), num_bands)


def inputs(seed=0, batch=2, height=16, width=None, bands=4):
  """ms (B, H/4, W/4, C), pan (B, H, W, 1) and lms (B, H, W, C) in [0, 1]."""
  width = width or height
  k_ms, k_pan, k_lms = jax.random.split(jax.random.PRNGKey(seed), 3)
  ms = jax.random.uniform(k_ms, (batch, height // 4, width // 4, bands),
                          minval=0.1, maxval=0.9)
  pan = jax.random.uniform(k_pan, (batch, height, width, 1))
  lms = jax.random.uniform(k_lms, (batch, height, width, bands),
                           minval=0.1, maxval=0.9)
  return ms, pan, lms


def key(seed=0):
  """A typed PRNG key on XLA's RngBitGenerator.

  XLA:CPU takes minutes to compile threefry for the ~300 parameter inits of
  the model and seconds for RngBitGenerator; typed keys carry their
  implementation, so nothing global changes.
  """
  return jax.random.key(seed, impl="unsafe_rbg")


def wake_heads(params, seed=0, scale=0.05):
  """Random head kernels instead of zeros.

  The heads start at zero, so an untrained model outputs the interpolated
  MS whatever its features are; tests that look for the features' effect on
  the output need heads that read them.
  """
  params = dict(params)
  for i, name in enumerate(sorted(k for k in params if k.startswith("head_"))):
    kernel = params[name]["conv"]["kernel"]
    noise = jax.random.normal(jax.random.fold_in(key(seed), i), kernel.shape)
    params[name] = {"conv": {**params[name]["conv"], "kernel": scale * noise}}
  return params


def dead_parameters(model, params, ms, pan, lms) -> list[str]:
  """Paths of the parameters that get no gradient from a loss on every
  output (heads woken, train mode: the routing's straight-through Gumbel
  passes gradients); [] when every parameter is reached."""
  params = wake_heads(params)
  targets = [o + 0.05 for o in model.apply({"params": params}, ms, pan, lms)]

  def loss(p):
    outputs = model.apply({"params": p}, ms, pan, lms, train=True,
                          rngs={"gumbel": key(7), "dropout": key(8)})
    return sum(jnp.mean((o - t) ** 2) for o, t in zip(outputs, targets))

  grads = jax.jit(jax.grad(loss))(params)
  return [jax.tree_util.keystr(path)
          for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]
          if not np.any(np.asarray(g) != 0)]


def leaves(tree):
  """The leaves as numpy arrays; PRNG keys (a train state's) as their bits."""
  def plain(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    return np.asarray(x)
  return [plain(x) for x in jax.tree.leaves(tree)]


def max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32) -
                                   jnp.asarray(y, jnp.float32))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def assert_trees_equal(a, b):
  """Bitwise equality of two pytrees of arrays."""
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
