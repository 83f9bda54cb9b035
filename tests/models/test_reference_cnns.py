"""The reference CNNs (models/reference_cnns.py): shapes for every band count
and ratio, parameter counts from their papers' layer sizes, what each adds
its output to, and that each trains on the synthetic data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import ndimage

from configs import default
from pansharp_jax import losses
from pansharp_jax.data import sources
from pansharp_jax.models import reference_cnns, registry
import model_helpers as h

NAMES = tuple(reference_cnns.NETWORKS)


def _build(name, bands):
  return registry.build_model(h.model_config(name=name), bands)


def _inputs(bands, ratio, size=32, batch=2):
  rng = np.random.default_rng(bands * 10 + ratio)
  ms = rng.uniform(0.1, 0.9, (batch, size // ratio, size // ratio, bands))
  pan = rng.uniform(0, 1, (batch, size, size, 1))
  lms = rng.uniform(0.1, 0.9, (batch, size, size, bands))
  return tuple(jnp.asarray(x, jnp.float32) for x in (ms, pan, lms))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bands", (3, 4, 8))
@pytest.mark.parametrize("ratio", (2, 4, 8))
def test_one_full_resolution_output_for_every_band_count_and_ratio(name, bands, ratio):
  model = _build(name, bands)
  ms, pan, lms = _inputs(bands, ratio)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), ms, pan, lms)
  outputs = jax.eval_shape(model.apply, variables, ms, pan, lms)
  assert [o.shape for o in outputs] == [(2, 32, 32, bands)]
  assert outputs[0].dtype == jnp.float32


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


# Each paper's layers (kernel, in, out) for C bands at ratio r.
PAPER_COUNTS = {
    "pnn": lambda c, r: _conv(9, c + 1, 64) + _conv(5, 64, 32) + _conv(5, 32, c),
    "pannet": lambda c, r: (_conv(2 * r, c, c) + _conv(3, c + 1, 32)
                            + 8 * _conv(3, 32, 32) + _conv(3, 32, c)),
    "dicnn": lambda c, r: _conv(3, c + 1, 64) + _conv(3, 64, 64) + _conv(3, 64, c),
    "fusionnet": lambda c, r: (_conv(3, c, 32) + 8 * _conv(3, 32, 32)
                               + _conv(3, 32, c)),
}
# Those formulas at WorldView-3's setting, 8 bands at ratio 4 (PanCollection's),
# written out as a regression pin; they are our sums, not published figures
# (PUBLISHED_4_BANDS below is one).
WV3 = {"pnn": 104_360, "pannet": 83_024, "dicnn": 46_792, "fusionnet": 78_632}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bands, ratio", [(8, 4), (4, 4), (3, 2), (8, 8)])
def test_parameter_count_is_the_papers(name, bands, ratio):
  ms, pan, lms = _inputs(bands, ratio)
  variables = jax.eval_shape(_build(name, bands).init, jax.random.PRNGKey(0),
                             ms, pan, lms)
  count = sum(x.size for x in jax.tree.leaves(variables["params"]))
  assert count == PAPER_COUNTS[name](bands, ratio)
  if (bands, ratio) == (8, 4):
    assert count == WV3[name]


# A total published outside this code base, counted by another implementation:
# the torchsummary of the PyTorch PNN in github.com/VisionVoyagerX/PNN
# (README.md, "Torch Summary": 25,984 + 51,232 + 3,204 = "Total params:
# 80,420") for 4-band GaoFen-2 data (MS + PAN in, 4 bands out).
# (Its PanNet README gives 78,152 for 4 bands, with batch normalisation in
# its residual blocks, which the PanNet paper's blocks and ours do not have.)
PUBLISHED_4_BANDS = {"pnn": 80_420}


@pytest.mark.parametrize("name", sorted(PUBLISHED_4_BANDS))
def test_parameter_count_matches_a_published_total(name):
  ms, pan, lms = _inputs(4, 4)
  variables = jax.eval_shape(_build(name, 4).init, jax.random.PRNGKey(0), ms, pan, lms)
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == PUBLISHED_4_BANDS[name]


def test_pannet_ignores_a_constant_added_to_the_pan():
  """PanNet sees only high-pass inputs: PAN + c gives the same output (a
  network fed the raw PAN would not)."""
  model = _build("pannet", 4)
  ms, pan, lms = _inputs(4, 4)
  variables = model.init(jax.random.PRNGKey(0), ms, pan, lms)
  (out,) = model.apply(variables, ms, pan, lms)
  (shifted,) = model.apply(variables, ms, pan + 0.3, lms)
  np.testing.assert_allclose(shifted, out, atol=1e-5)
  # ... while the PAN's detail does reach the output.
  (detail,) = model.apply(variables, ms, pan * 1.5, lms)
  assert float(jnp.abs(detail - out).max()) > 1e-3


def test_high_pass_is_the_residual_of_a_5x5_box_filter():
  x = np.random.default_rng(0).uniform(size=(1, 12, 10, 3)).astype(np.float32)
  # jnp.pad's "reflect" (no edge repeat) is scipy's "mirror".
  expected = x - ndimage.uniform_filter(x, size=(1, 5, 5, 1), mode="mirror")
  np.testing.assert_allclose(reference_cnns.high_pass(x), expected, atol=1e-6)
  assert np.allclose(reference_cnns.high_pass(np.full((1, 8, 8, 1), 0.3)), 0, atol=1e-7)


def _zero_last_conv(params):
  """params with the output convolution zeroed."""
  last = "conv_3" if "conv_3" in params else "conv_out"
  return {**params, last: jax.tree.map(jnp.zeros_like, params[last])}


@pytest.mark.parametrize("name", NAMES)
def test_residual_networks_add_to_the_upsampled_ms_and_pnn_does_not(name):
  ms, pan, lms = _inputs(4, 4, size=16)
  model = _build(name, 4)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), ms, pan, lms)["params"]
  apply = jax.jit(lambda p, pan: model.apply({"params": p}, ms, pan, lms)[0])
  full = apply(_zero_last_conv(params), pan)
  if name == "pnn":  # no residual: nothing left but zeros
    np.testing.assert_array_equal(full, 0.0)
  else:
    np.testing.assert_allclose(full, lms, atol=1e-6)
  # The untouched network depends on the PAN.
  assert float(jnp.abs(apply(params, 1.0 - pan) - apply(params, pan)).max()) > 1e-3


def test_world_options_of_the_pansharpener_are_refused():
  with pytest.raises(ValueError, match=r"config.model.world: wsm belong to the "
                     r"pansharpener, not to model.name=pnn"):
    registry.build_model(h.model_config(name="pnn", world_preset="core"), 4)
  # Loss terms apply to any network.
  model = registry.build_model(h.model_config(name="pnn", world_dsc=True), 4)
  assert model.world.dsc


@pytest.fixture(scope="module")
def synthetic_batch():
  """Two 32 px Wald triples of the synthetic source (the train split)."""
  config = default.get_config()
  config.data.image_size = config.data.synthetic.scene_size = 32
  config.data.synthetic.num_train = 2
  source = sources.make_source(config.data, "train")
  samples = [source[i] for i in range(2)]
  return {k: jnp.asarray(np.stack([s[k] for s in samples])) for k in samples[0]}


@pytest.mark.parametrize("name", NAMES)
def test_trains_on_synthetic_data(name, synthetic_batch):
  """20 Adam steps of the training losses on one batch: the loss falls."""
  batch = synthetic_batch
  model = _build(name, 4)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), batch["ms"], batch["pan"],
                               batch["lms"])["params"]
  optimizer = optax.adam(1e-3)
  loss_config = default.get_config().loss

  def loss_fn(p):
    outputs = model.apply({"params": p}, batch["ms"], batch["pan"], batch["lms"])
    return losses.compute_losses(outputs, batch, loss_config)[0]

  @jax.jit
  def step(p, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(p, updates), opt_state, loss

  opt_state = optimizer.init(params)
  history = []
  for _ in range(20):
    params, opt_state, loss = step(params, opt_state)
    history.append(float(loss))
  assert np.all(np.isfinite(history))
  assert history[-1] < 0.8 * history[0], history
