"""How much gradient reaches the heads and the decoder, per head type and preset.

    python -m benchmarks.head_gradients

For each sensor preset (`data/presets.py`; demo: the README demo's sensor),
one batch of 8 validation tiles (32 px) and the tiny model at one init,
twice: `model.head=sigmoid` and `residual` (`input_norm=none`, and as
docs/recipes.md measured them before issue 30's round 2: `detail_input=none`,
width 16, no `full_refine` blocks, the multi-scale loss at every ratio). Prints the norm of the training
loss's gradient (configs/default.py's loss weights, train mode) with
respect to the three head kernels at the init (heads at zero, so both
models compute the same output), and with respect to every decoder
parameter once the head kernels are woken with the same small random
values (at zero no gradient passes the heads). The sigmoid's slope p(1 - p)
scales both; the ratio residual / sigmoid is the diagnosis in
docs/recipes.md.
"""

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from configs import default
from pansharp_jax import losses
from pansharp_jax.data import presets, sources
from pansharp_jax.models import registry

PRESETS = flags.DEFINE_list("presets", ["demo", "geoeye1", "quickbird", "ikonos",
                                        "wv2", "landsat8"], "Presets.")
_HEADS = ("head_quarter", "head_half", "head_full")


def _config(preset: str):
  config = default.get_config()
  if preset != "demo":
    for key, value in presets.preset_overrides(preset).items():
      *path, name = key.split(".")
      section = config
      for part in path:
        section = section[part]
      section[name] = value
  config.data.image_size = config.data.synthetic.scene_size = 32
  config.data.synthetic.num_val = 8
  # The model and loss the diagnosis measured (before round 2's defaults: at
  # ratio 2 those leave the 1/2 and 1/4 heads without gradient).
  config.model.detail_input = "none"
  config.model.dim = 0  # tiny's width 16 (round 3's default is 24)
  config.model.full_refine = 0  # no full-resolution blocks (round 4's default: 2)
  config.loss.multiscale_from_ratio = 2
  return config


def _batch(config) -> dict:
  source = sources.make_source(config.data, "val")
  return {k: jnp.stack([source[i][k] for i in range(len(source))])
          for k in ("gt", "ms", "lms", "pan")}


def _norms(config, batch, head: str) -> tuple[float, float]:
  """(head kernels' gradient norm at init, decoder gradient norm with woken
  heads) of the training loss."""
  config.model.head, config.model.input_norm = head, "none"
  model = registry.build_model(config.model, int(config.data.num_bands))
  key = jax.random.key(0, impl="unsafe_rbg")
  params = jax.jit(model.init)(key, batch["ms"], batch["pan"])["params"]
  rngs = {"gumbel": key, "dropout": key}

  def loss(p):
    outputs = model.apply({"params": p}, batch["ms"], batch["pan"],
                          batch["lms"], train=True, rngs=rngs)
    return losses.compute_losses(outputs, batch, config.loss,
                                 sensor=config.data.sensor)[0]

  grad = jax.jit(jax.grad(loss))
  norm = lambda tree: float(jnp.sqrt(sum(jnp.sum(x ** 2)
                                         for x in jax.tree.leaves(tree))))
  at_init = norm([grad(params)[h]["conv"]["kernel"] for h in _HEADS])
  woken = dict(params)
  for i, name in enumerate(_HEADS):
    kernel = params[name]["conv"]["kernel"]
    woken[name] = {"conv": {**params[name]["conv"], "kernel": 0.05 *
                            jax.random.normal(jax.random.key(i), kernel.shape)}}
  return at_init, norm(grad(woken)["decoder"])


def main(argv):
  del argv
  print("| preset | median GT | head grad sigmoid | residual | ratio | "
        "decoder grad sigmoid | residual | ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|")
  for preset in PRESETS.value:
    config = _config(preset)
    batch = _batch(config)
    sig = _norms(config, batch, "sigmoid")
    res = _norms(config, batch, "residual")
    print(f"| {preset} | {float(jnp.median(batch['gt'])):.3f} | {sig[0]:.3g} | "
          f"{res[0]:.3g} | {res[0] / sig[0]:.2f} | {sig[1]:.3g} | {res[1]:.3g} | "
          f"{res[1] / sig[1]:.2f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
