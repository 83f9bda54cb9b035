"""The Linen reference fixture: the models' outputs, losses and gradients as
the Flax Linen code computed them before the NNX migration (issue 33).

`fixtures/make_linen_fixture.py` wrote `fixtures/linen_reference.npz` with
the Linen modules; the NNX modules are held to it. Parameters are stored as
int8 codes times one float32 scale per leaf (the values are exactly those
the reference was computed with), keyed by their '/'-joined Linen paths; a
case that shares its base case's values stores only its paths.
"""

import contextlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from configs import common
from pansharp_jax import losses
from pansharp_jax.models import assm

PATH = pathlib.Path(__file__).parent / "fixtures" / "linen_reference.npz"
BANDS, SIZE, RATIO, BATCH = 4, 32, 4, 2
SEP = "/"


def inputs():
  """Fixed ms, pan, lms and gt (B, 32, 32, .) in [0, 1]."""
  rng = np.random.default_rng(33)
  draw = lambda *shape: rng.uniform(0.05, 0.95, shape).astype(np.float32)
  return {"ms": draw(BATCH, SIZE // RATIO, SIZE // RATIO, BANDS),
          "pan": draw(BATCH, SIZE, SIZE, 1),
          "lms": draw(BATCH, SIZE, SIZE, BANDS),
          "gt": draw(BATCH, SIZE, SIZE, BANDS)}


def flatten(tree, prefix=""):
  """{'a/b/c': leaf} of a nested dict."""
  flat = {}
  for name, value in tree.items():
    path = f"{prefix}{SEP}{name}" if prefix else str(name)
    if isinstance(value, dict):
      flat.update(flatten(value, path))
    else:
      flat[path] = value
  return flat


def unflatten(flat):
  tree = {}
  for path, value in flat.items():
    *parents, leaf = path.split(SEP)
    node = tree
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return tree


def loss(outputs, batch, world):
  """The default config's training loss (every term the world switches on),
  multi-scale at every ratio as when the fixture was written."""
  config = common.get_base_config().loss
  config.multiscale_from_ratio = 2
  return losses.compute_losses(outputs, batch, config, world=world,
                               sensor="QB")


@contextlib.contextmanager
def fixed_gumbel(seed=0, stride=1, offset=0):
  """Routes drawn with the i-th traced block's key
  fold_in(key(seed), stride * i + offset).

  Linen and NNX derive per-block keys differently; with this both draw the
  same Gumbel noise block by block (blocks are traced in the same order).
  Linen's nn.scan traces its body twice (the second trace is the one run):
  NNX code replays those keys with stride 2, offset 1.
  """
  policy, count = assm.route_policy, [0]

  def counted(logits, rng=None):
    if rng is None:
      return policy(logits)
    count[0] += 1
    index = stride * (count[0] - 1) + offset
    return policy(logits, jax.random.fold_in(jax.random.PRNGKey(seed), index))

  assm.route_policy = counted
  try:
    yield
  finally:
    assm.route_policy = policy


def quantise(flat):
  """int8 codes and float32 scales whose products are the stored values."""
  codes, scales = {}, {}
  for path, value in flat.items():
    value = np.asarray(value, np.float32)
    scale = np.float32(np.max(np.abs(value)) / 127 or 1.0)
    codes[path] = np.round(value / scale).astype(np.int8)
    scales[path] = scale
  return codes, scales


def dequantise(codes, scales):
  return {p: (jnp.asarray(codes[p], jnp.float32) * scales[p]) for p in codes}


def load(path=PATH):
  """{case: {'params': nested dict, field: {path: array}}} (fields: out,
  state, and with a train step loss, train_out, new_state, gradnorm,
  gradsum, grad)."""
  cases = {}
  with np.load(path) as data:
    for key in data.files:
      case, field, *rest = key.split(SEP)
      cases.setdefault(case, {}).setdefault(field, {})[SEP.join(rest)] = data[key]
  for name, (_, _, base) in CASES.items():
    case = cases[name]
    if base is None:
      case["params"] = unflatten(dequantise(case["codes"], case["scales"]))
    else:  # a subset of the base case's parameters
      paths = case.pop("paths")["all"]
      while CASES[base][2] is not None:  # the case that stores the values
        base = CASES[base][2]
      codes, scales = (cases[base][f] for f in ("codes", "scales"))
      case["params"] = unflatten(dequantise({p: codes[p] for p in paths},
                                            {p: scales[p] for p in paths}))
  for name, (_, _, base) in CASES.items():
    if base is None:
      del cases[name]["codes"], cases[name]["scales"]
  return cases


# The pansharpener as the fixture's Linen code had it: SPEC's shallow convs
# (model.detail_input came later, with another default).
_SPEC = dict(detail_input="none")
# case -> (model config fields, train step recorded?, params taken from case).
# The world presets share one parameter set (the full preset's, less the
# modules a preset lacks); model.world.<name> is given as world_<name>.
CASES = {
    **{f"cnn_{name}": (dict(name=name), True, None)
       for name in ("pnn", "pannet", "dicnn", "fusionnet")},
    **{f"{size}_{preset}": (dict(size=size, world_preset=preset, **_SPEC),
                            size == "tiny" or preset == "full",
                            None if preset == "full" else f"{size}_full")
       for size in ("tiny", "small") for preset in ("full", "core", "none")},
    "tiny_patch_prior": (dict(size="tiny", world_patch_prior=True, **_SPEC),
                         False, "tiny_none"),
    "tiny_scan_layers": (dict(size="tiny", scan_layers=True, depth=2,
                              **_SPEC), True, None),
}
