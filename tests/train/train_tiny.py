"""A tiny stand-in model and config for the trainer's tests, and main.py with it.

The full model takes minutes to compile on a CPU; the train package only needs
the model interface: `apply(variables, ms, pan, lms, train, rngs, mutable)`
returning `(sr_1_4, sr_1_2, full)` and a `world` attribute, with dropout and a mutable 'world_state'
collection carried across steps (as the WSM's GRU state is).

  PYTHONPATH=. python tests/train/train_tiny.py --config configs/default.py --workdir DIR

runs main.py with this model in place of the registry's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
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


class TinyNet(nn.Module):
  """Two convs around a residual on the interpolated MS, plus a running state."""

  num_bands: int
  features: int = 8
  dropout: float = 0.1
  carry_state: bool = True  # False: the state stays 0 (batch splits then compare exactly)
  world = None  # the model's world options; None: no world-model loss terms

  @nn.compact
  def __call__(self, ms, pan, lms=None, *, train: bool = False):
    del ms
    hidden = self.variable("world_state", "hidden", jnp.zeros, (self.features,))
    y = nn.gelu(nn.Conv(self.features, (3, 3))(jnp.concatenate([lms, pan], -1)))
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    if train and self.carry_state and self.is_mutable_collection("world_state"):
      hidden.value = 0.9 * hidden.value + 0.1 * jnp.mean(y, axis=(0, 1, 2))
    y = y * (1.0 + jnp.tanh(hidden.value))
    logit = jax.scipy.special.logit(jnp.clip(lms, 1e-4, 1 - 1e-4))
    full = jax.nn.sigmoid(nn.Conv(self.num_bands, (3, 3))(y) + logit)
    half = nn.avg_pool(full, (2, 2), (2, 2))
    return nn.avg_pool(half, (2, 2), (2, 2)), half, full


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
  model = TinyNet(num_bands=num_bands, dropout=0.0)
  z = np.zeros((1, 4 * ratio, 4 * ratio, 1), np.float32)
  variables = random_variables(model, {"ms": np.zeros((1, 4, 4, num_bands), np.float32),
                                       "pan": z, "lms": z.repeat(num_bands, -1)})
  return jax.jit(lambda b: step_lib.predict_fn(variables, b, model=model))


def build(model_config, num_bands):
  return TinyNet(num_bands=num_bands,
                 dropout=float(model_config.get("dropout", 0.1)))


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
