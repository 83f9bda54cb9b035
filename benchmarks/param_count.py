"""Parameter counts per model size, with a breakdown by top-level module.

Shapes come from `jax.eval_shape` of the model's init, so nothing is
allocated and the large size counts in seconds on a CPU. Prints Markdown for
docs/models.md:

  python -m benchmarks.param_count              # tiny, small, base, large; 3 bands
  python -m benchmarks.param_count --num_bands=8 --world=full

The last row is base with model.depth=1 and detail_input=none, the model as
the original PyTorch code builds it (its layers ignore `depths`: one ASSM
block per layer).
"""

import re

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from configs import common
from pansharp_jax.models import registry

_NUM_BANDS = flags.DEFINE_integer("num_bands", 3, "MS bands of the model.")
_WORLD = flags.DEFINE_enum("world", "none", ["none", "core", "full"],
                           "config.model.world.preset (WSM and DCA add params).")
_SIZES = flags.DEFINE_list("sizes", ["tiny", "small", "base", "large"],
                           "Sizes to count, in this order.")

# Columns: a label and a pattern over the decoder's / model's top names.
_GROUPS = (
    ("ASSM layers (4)", r"assm_\d"),
    ("cross attention (3)", r"cross_\d"),
    ("fusion 1/2", r"fusion_half"),
    ("fusion 1/4", r"fusion_quarter"),
    ("up convs", r"up_(half|full)"),
    ("1/4 enhance + attention", r"(ResidualEnhance|ChannelSpatialAttention)_\d"),
    ("world (WSM, DCA)", r"wsm|dca_fim"),
    ("other (shallow convs, refine, heads)", r".*"),
)


def count_params(model_config, num_bands):
  """{top module path: parameter count} of the model, via eval_shape."""
  model = registry.build_model(model_config, num_bands)
  ms = jax.ShapeDtypeStruct((1, 16, 16, num_bands), jnp.float32)
  pan = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  variables = jax.eval_shape(
      lambda m, p: model.init(jax.random.PRNGKey(0), m, p), ms, pan)
  counts = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
    names = [k.key for k in path]
    if names[0] == "decoder":
      names = names[1:]
    # DCA-FIM sits inside the cross attention; count it as a world option.
    top = "dca_fim" if "dca_fim" in names else names[0]
    counts[top] = counts.get(top, 0) + leaf.size
  return counts


def group_counts(counts):
  """Sums `counts` into the _GROUPS columns (first matching pattern wins)."""
  totals = {label: 0 for label, _ in _GROUPS}
  for name, n in counts.items():
    for label, pattern in _GROUPS:
      if re.fullmatch(pattern, name):
        totals[label] += n
        break
  return totals


def _row(cells):
  return "| " + " | ".join(cells) + " |"


def main(argv):
  del argv
  rows = [(size, 0, size) for size in _SIZES.value]
  if "base" in _SIZES.value:
    rows.append(("base", 1, "base, depth 1 (as the original builds it)"))
  print(f"Parameters, {_NUM_BANDS.value} bands, world preset "
        f"{_WORLD.value!r} (jax.eval_shape; nothing allocated)\n")
  labels = [label for label, _ in _GROUPS]
  print(_row(["model", "depth", "total"] + labels))
  print(_row(["---"] * 2 + ["---:"] * (len(labels) + 1)))
  for size, depth, name in rows:
    config = common.get_base_config().model
    config.size, config.depth = size, depth
    if depth:  # the original's layout: its shallow convs read MS and PAN alone
      config.detail_input = "none"
    config.world.preset = _WORLD.value
    counts = count_params(config, _NUM_BANDS.value)
    groups = group_counts(counts)
    shown = depth or registry.sizes.get_size(size).depth
    print(_row([name, str(shown), f"{sum(counts.values()):,}"] +
               [f"{groups[label]:,}" for label in labels]))


if __name__ == "__main__":
  app.run(main)
