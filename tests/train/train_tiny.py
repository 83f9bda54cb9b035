"""A tiny stand-in model and config for the trainer's tests, and main.py with it.

The full model takes minutes to compile on a CPU; the train package only needs
the model interface: `apply(variables, ms, pan, lms, train, rngs, mutable)`
returning `(sr_1_4, sr_1_2, full)` and a `world` attribute, with dropout and a 'world_state'
carried across steps (as the WSM's GRU state is).

  PYTHONPATH=. python tests/train/train_tiny.py --config configs/default.py --workdir DIR

runs main.py with this model in place of the registry's.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import default
from pansharp_jax.models import functional
from pansharp_jax.models.world import WorldState
from pansharp_jax.train import step as step_lib

# main.py overrides for a run of a few seconds (one CPU device: batch 2).
FLAGS = ["--config.data.image_size=32", "--config.data.synthetic.scene_size=32",
         "--config.data.synthetic.num_train=8", "--config.data.synthetic.num_val=2",
         "--config.batch_size=2", "--config.optim.warmup_steps=2",
         "--config.log_every=1", "--config.eval_every=10",
         "--config.checkpoint_every=5"]


# config() fields of a 10-step run that validates and checkpoints once.
SHORT_RUN = {"num_train_steps": 10, "eval_every": 10, "checkpoint_every": 10,
             "log_every": 10}


class TinyNet(nnx.Module):
  """Two convs around a residual on the interpolated MS, plus a running state."""
  linen_names = {"conv_in": "Conv_0", "conv_out": "Conv_1"}  # main before NNX

  def __init__(self, num_bands, features=8, dropout=0.1, carry_state=True, *,
               rngs):
    """carry_state False: the state stays 0 (batch splits then compare exactly)."""
    self.hidden = WorldState(jnp.zeros((features,)))
    self.conv_in = nnx.Conv(num_bands + 1, features, (3, 3), rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.conv_out = nnx.Conv(features, num_bands, (3, 3), rngs=rngs)
    self.carry_state = carry_state

  def __call__(self, ms, pan, lms=None, *, train=False, rngs=None):
    del ms
    y = nnx.gelu(self.conv_in(jnp.concatenate([lms, pan], -1)))
    y = self.dropout(y, deterministic=not train, rngs=rngs)
    if train and self.carry_state:
      self.hidden[...] = 0.9 * self.hidden[...] + 0.1 * jnp.mean(y, axis=(0, 1, 2))
    y = y * (1.0 + jnp.tanh(self.hidden[...]))
    logit = jax.scipy.special.logit(jnp.clip(lms, 1e-4, 1 - 1e-4))
    full = jax.nn.sigmoid(self.conv_out(y) + logit)
    half = nnx.avg_pool(full, (2, 2), (2, 2))
    return nnx.avg_pool(half, (2, 2), (2, 2)), half, full


def tiny_model(num_bands=4, dropout=0.1, carry_state=True):
  """TinyNet as the registry gives models; no world options (no world-model
  loss terms)."""
  return functional.FunctionalModel(
      lambda ratio, rngs: TinyNet(num_bands, dropout=dropout,
                                  carry_state=carry_state, rngs=rngs), None)


def random_variables(model, batch, seed=1, scale=0.3):
  """Variables of `model` for `batch` ({ms, pan, lms}) with every leaf drawn
  at random (non-zero), so every input of a model matters. The shapes come
  from `jax.eval_shape` of the init and the values from numpy: nothing is
  compiled (a real init compiles for a minute on a CPU)."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), batch["ms"],
                                             batch["pan"], batch["lms"]))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda v: (scale * rng.standard_normal(v.shape)).astype(v.dtype),
                      shapes)


def random_predict_fn(num_bands=4, ratio=4):
  """The jitted eval forward of a TinyNet with random weights: a model of
  local receptive field (two 3x3 convs, radius 2) for tiling tests."""
  model = tiny_model(num_bands, dropout=0.0)
  z = np.zeros((1, 4 * ratio, 4 * ratio, 1), np.float32)
  variables = random_variables(model, {"ms": np.zeros((1, 4, 4, num_bands), np.float32),
                                       "pan": z, "lms": z.repeat(num_bands, -1)})
  return jax.jit(lambda b: step_lib.predict_fn(variables, b, model=model))


def build(model_config, num_bands):
  return tiny_model(num_bands, float(model_config.get("dropout", 0.1)))


def config(**fields):
  """configs/default.py at 32 px, batch 8 (one per fake CPU device)."""
  c = default.get_config()
  c.data.image_size = 32
  c.data.synthetic.scene_size = 32
  c.data.synthetic.num_train = 8
  c.data.synthetic.num_val = 2
  c.batch_size = 8
  c.optim.warmup_steps = 2
  for key, value in fields.items():
    c[key] = value
  return c


if __name__ == "__main__":
  from absl import app

  import main
  from pansharp_jax.models import registry

  registry.build_model = build
  app.run(main.main, flags_parser=main._parse_flags)
