"""A world-preset train run, determinism, bf16, remat and scan_layers.

(The none preset trains in tests/test_main.py's end-to-end run.)"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import model_helpers as h

from configs import default
from pansharp_jax.models.assm import ASSMLayer
from pansharp_jax.train import builder, parallel


def _trainer(**model_fields):
  """configs/default.py's tiny model at 20x28, batch 2, on one device."""
  config = default.get_config()
  config.data.image_size = h.HEIGHT
  config.batch_size = 2
  for key, value in model_fields.items():
    if key.startswith("world_"):
      config.model.world[key[len("world_"):]] = value
    else:
      config.model[key] = value
  mesh = parallel.make_mesh(1)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  # make_init reads data.image_size for a square sample; shapes do not depend
  # on it, so the state serves the 20x28 batch too.
  return types.SimpleNamespace(
      init=builder.make_init(config, model, optimizer, mesh),
      step=builder.jit_train_step(model, optimizer, config, mesh))


@pytest.fixture(scope="module")
def batch(tiny):
  gt = jnp.clip(tiny.lms + 0.05 * jax.random.normal(h.key(20), tiny.lms.shape),
                0, 1)
  return {"gt": gt, "ms": tiny.ms, "pan": tiny.pan, "lms": tiny.lms}


def _run(trainer, batch, steps=3, state=None):
  state = trainer.init(h.key(0)) if state is None else state
  history = []
  for _ in range(steps):
    # The step donates its state: keep copies of what is compared.
    state, metrics = trainer.step(state, batch)
    history.append(jax.device_get(metrics))
  return state, history


def _finite(history):
  return all(np.isfinite(float(m["loss"])) and int(m["skipped"]) == 0
             for m in history)


@pytest.mark.parametrize("preset", ["full"])  # core's options are a subset
def test_presets_train_and_carry_the_world_state(batch, preset):
  state, history = _run(_trainer(world_preset=preset, world_wsm_reset_every=2),
                        batch)
  assert _finite(history)
  assert "loss_dsc" in history[0]
  assert ("loss_wacx" in history[0]) == (preset == "full")
  wsm = jax.device_get(state.model_state["world_state"]["decoder"]["wsm"])
  assert int(wsm["count"]) == 3
  assert np.abs(np.asarray(wsm["hidden"])).sum() > 0


@pytest.mark.parametrize("scan_layers", [False, True])
def test_remat_gives_the_same_values_and_gradients(scan_layers):
  """Remat changes what the backward pass stores, not what it computes."""
  ms, pan = (jax.random.normal(k, (1, 8, 8, 8))
             for k in jax.random.split(h.key(40)))
  layer = lambda remat: ASSMLayer(depth=2, d_state=4, num_tokens=4,
                                  inner_rank=4, mlp_ratio=1.0, train=True,
                                  remat=remat, scan_layers=scan_layers)
  rngs = {"params": h.key(41), "gumbel": h.key(42)}
  params = jax.jit(layer(False).init)(rngs, ms, pan)["params"]

  def value_and_grad(remat):
    def loss(params):
      out = layer(remat).apply({"params": params}, ms, pan,
                               rngs={"gumbel": h.key(43)})
      return sum(jnp.sum(x**2) for x in jax.tree.leaves(out))
    return jax.jit(jax.value_and_grad(loss))(params)

  plain, remat = value_and_grad(False), value_and_grad(True)
  np.testing.assert_allclose(remat[0], plain[0], rtol=1e-5)
  # Float32 reassociation only: relative to each gradient's scale.
  for got, want in zip(jax.tree.leaves(remat[1]), jax.tree.leaves(plain[1])):
    np.testing.assert_allclose(got, want, rtol=1e-4,
                               atol=1e-5 * float(np.abs(want).max()))


def test_separately_built_models_agree_bitwise(tiny, tiny_outputs):
  """A second model, built, initialised from the same seed and compiled on
  its own, has the same params and eval outputs, bit for bit."""
  model = h.build(4)
  params = jax.jit(model.init)(h.key(0), tiny.ms, tiny.pan)["params"]
  h.assert_trees_equal(params, tiny.init_params)
  # The same program as tiny.forward (inputs as arguments, not constants).
  forward = jax.jit(lambda p, ms, pan, lms: model.apply({"params": p}, ms, pan, lms))
  outputs = forward(h.wake_heads(params), tiny.ms, tiny.pan, tiny.lms)
  h.assert_trees_equal(outputs, tiny_outputs)


def test_bf16_compute_keeps_float32_params(tiny, tiny_outputs):
  model = h.build(4, dtype="bfloat16")
  params = jax.eval_shape(model.init, h.key(0), tiny.ms, tiny.pan)["params"]
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  outputs = jax.jit(lambda p: model.apply(
      {"params": p}, tiny.ms, tiny.pan, tiny.lms))(tiny.params)
  for out, ref in zip(outputs, tiny_outputs):
    assert out.dtype == jnp.float32
    # bf16 rounding can flip a pixel's argmax route, which moves it in the
    # sorted scan: a few pixels differ more, the output as a whole does not.
    error = np.abs(np.asarray(out) - np.asarray(ref))
    assert error.mean() < 1e-2 and np.quantile(error, 0.9) < 3e-2


def test_scan_layers_matches_the_block_loop():
  ms, pan = (jax.random.normal(k, (1, 8, 8, 8))
             for k in jax.random.split(h.key(30)))
  layer = lambda scan: ASSMLayer(depth=2, d_state=4, num_tokens=4,
                                 inner_rank=4, mlp_ratio=1.0, scan_layers=scan)
  params = jax.jit(layer(False).init)(h.key(31), ms, pan)["params"]
  stacked = {"blocks": jax.tree.map(lambda *b: jnp.stack(b),
                                    params["block_0"], params["block_1"])}
  looped = jax.jit(layer(False).apply)({"params": params}, ms, pan)
  scanned = jax.jit(layer(True).apply)({"params": stacked}, ms, pan)
  assert h.max_abs_diff(looped, scanned) < 1e-5
