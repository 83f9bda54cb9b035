"""The real tiny model in the trainer (a world-preset run, a sharded step, an
exact resume), determinism, bf16, remat and scan_layers.

(The none preset trains in tests/test_main.py's end-to-end run; tests/train/
checks the trainer itself with a stand-in model.)"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
import model_helpers as h

from configs import default
from pansharp_jax.models.assm import ASSMLayer
from pansharp_jax.models.options import BlockOptions
from pansharp_jax.models.sizes import LayerSize
from pansharp_jax.train import builder, checkpoint, parallel

# Every option on: the WSM's world state, DCA, DSC and WAC-X losses.
FULL = dict(world_preset="full", world_wsm_reset_every=2)

_LAYER = LayerSize(d_state=4, num_tokens=4, inner_rank=4, mlp_ratio=1.0)


def _trainer(num_devices=1, **model_fields):
  """configs/default.py's tiny model at 20x28, batch 2, on `num_devices`."""
  config = default.get_config()
  config.data.image_size = h.HEIGHT
  config.batch_size = 2
  for key, value in model_fields.items():
    if key.startswith("world_"):
      config.model.world[key[len("world_"):]] = value
    else:
      config.model[key] = value
  mesh = parallel.make_mesh(num_devices)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  # make_init reads data.image_size for a square sample; shapes do not depend
  # on it, so the state serves the 20x28 batch too.
  return types.SimpleNamespace(
      config=config, mesh=mesh,
      init=builder.make_init(config, model, optimizer, mesh),
      step=builder.jit_train_step(model, optimizer, config, mesh))


@pytest.fixture(scope="module")
def full_trainer():
  """One compiled train step with every world option, shared by the tests."""
  return _trainer(**FULL)


@pytest.fixture(scope="module")
def batch(tiny):
  gt = jnp.clip(tiny.lms + 0.05 * jax.random.normal(h.key(20), tiny.lms.shape),
                0, 1)
  return {"gt": gt, "ms": tiny.ms, "pan": tiny.pan, "lms": tiny.lms}


def _run(trainer, batch, steps=3, state=None):
  state = trainer.init(h.key(0)) if state is None else state
  batch = parallel.shard_batch(batch, trainer.mesh)
  history = []
  for _ in range(steps):
    # The step donates its state: keep copies of what is compared.
    state, metrics = trainer.step(state, batch)
    history.append(jax.device_get(metrics))
  return state, history


def _finite(history):
  return all(np.isfinite(float(m["loss"])) and int(m["skipped"]) == 0
             for m in history)


def test_full_preset_trains_and_carries_the_world_state(full_trainer, batch):
  # The core preset's options are a subset of these.
  state, history = _run(full_trainer, batch)
  assert _finite(history)
  assert "loss_dsc" in history[0] and "loss_wacx" in history[0]
  wsm = jax.device_get(state.model_state["world_state"]["decoder"]["wsm"])
  assert int(wsm["count"]) == 3
  assert np.abs(np.asarray(wsm["hidden"])).sum() > 0


def test_sharded_step_matches_one_device(full_trainer, batch):
  """The batch split over 2 devices (params replicated): one step gives the
  one-device state up to float reassociation in the gradient all-reduce."""
  results = []
  for trainer in (full_trainer, _trainer(2, **FULL)):
    state, history = _run(trainer, batch, steps=1)
    assert all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state))
    results.append((h.leaves(jax.device_get(state)), float(history[0]["loss"])))
  (one, loss1), (two, loss2) = results
  assert loss1 == pytest.approx(loss2, abs=1e-5)
  for a, b in zip(one, two, strict=True):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_resume_from_a_checkpoint_continues_bitwise(full_trainer, batch,
                                                    tmp_path):
  """Three steps in one go, or one step, an Orbax checkpoint, a restore and
  two more steps: the same losses and state, bit for bit (params, EMA,
  optimizer, WSM world state and the Gumbel/dropout RNG all round-trip)."""
  straight, history = _run(full_trainer, batch)
  state, first = _run(full_trainer, batch, steps=1)
  manager = checkpoint.make_manager(str(tmp_path), full_trainer.config)
  assert checkpoint.save(manager, state)
  manager.wait_until_finished()
  # The state's own shapes: its RNG is a typed rbg key, not PRNGKey's (2,).
  like = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
  restored = checkpoint.restore_latest(manager, like)
  manager.close()
  resumed, rest = _run(full_trainer, batch, steps=2, state=restored)
  assert [float(m["loss"]) for m in first + rest] == [
      float(m["loss"]) for m in history]
  h.assert_trees_equal(jax.device_get(resumed), jax.device_get(straight))


@pytest.mark.parametrize("scan_layers", [False, True])
def test_remat_gives_the_same_values_and_gradients(scan_layers):
  """Remat changes what the backward pass stores, not what it computes."""
  ms, pan = (jax.random.normal(k, (1, 8, 8, 8))
             for k in jax.random.split(h.key(40)))
  layer = lambda remat: nnx.split(ASSMLayer(
      8, 2, _LAYER, BlockOptions(remat=remat, scan_layers=scan_layers),
      rngs=nnx.Rngs(41)), nnx.Param)
  params = layer(False)[1]

  def value_and_grad(remat):
    graphdef = layer(remat)[0]
    def loss(params):
      out = nnx.merge(graphdef, params)(
          ms, pan, train=True, rngs=nnx.Rngs(gumbel=h.key(43), dropout=h.key(44)))
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
    # The residual heads pass the woken heads' large corrections unsquashed
    # (outputs up to ~1 away from the MS), so the bound is relative to them.
    error = np.abs(np.asarray(out) - np.asarray(ref))
    spread = max(1.0, float(np.abs(np.asarray(ref)).mean()) / 0.25)
    assert error.mean() < 1e-2 * spread and np.quantile(error, 0.9) < 3e-2 * spread


def test_scan_layers_matches_the_block_loop():
  ms, pan = (jax.random.normal(k, (1, 8, 8, 8))
             for k in jax.random.split(h.key(30)))
  layer = lambda scan: nnx.split(ASSMLayer(
      8, 2, _LAYER, BlockOptions(scan_layers=scan), rngs=nnx.Rngs(31)),
      nnx.Param)
  loop_graph, params = layer(False)
  params = nnx.to_pure_dict(params)
  stacked = {"stacked": jax.tree.map(lambda *b: jnp.stack(b),
                                     params["block_0"], params["block_1"])}
  run = lambda graph, p: nnx.merge(graph, nnx.State(p))(ms, pan)
  looped = jax.jit(run, static_argnums=0)(loop_graph, params)
  scanned = jax.jit(run, static_argnums=0)(layer(True)[0], stacked)
  assert h.max_abs_diff(looped, scanned) < 1e-5
