"""The train step: learning, data parallelism, non-finite skipping, accumulation."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_tiny

from pansharp_jax.data import pipeline, sources
from pansharp_jax.models import registry
from pansharp_jax.train import builder, optimizer as optimizer_lib, parallel


def _trainer(config, num_devices):
  """Jitted init and step on a mesh of `num_devices` (compiled once, reused)."""
  mesh = parallel.make_mesh(num_devices)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  return types.SimpleNamespace(
      mesh=mesh, optimizer=optimizer,
      init=builder.make_init(config, model, optimizer, mesh),
      step=builder.jit_train_step(model, optimizer, config, mesh))


@pytest.fixture(scope="module")
def batch():
  config = train_tiny.config()
  source = sources.make_source(config.data, "train")
  return next(iter(pipeline.train_dataset(
      source, config.data, batch_size=config.batch_size, seed=0)))


@pytest.fixture(scope="module")
def trainer8():
  return _trainer(train_tiny.config(), 8)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_steps_on_a_fixed_batch_lower_the_loss(trainer8, batch):
  state = trainer8.init(jax.random.PRNGKey(0))
  sharded = parallel.shard_batch(batch, trainer8.mesh)
  losses = []
  for _ in range(6):
    state, metrics = trainer8.step(state, sharded)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0]
  assert int(state.step) == 6 and int(state.nonfinite) == 0
  # The world state is carried from step to step.
  assert np.abs(np.asarray(state.model_state["world_state"]["hidden"])).sum() > 0
  assert float(metrics["lr"]) > 0


def test_eight_devices_match_one_device(trainer8, batch):
  results = []
  for trainer in (_trainer(train_tiny.config(), 1), trainer8):
    state, metrics = trainer.step(trainer.init(jax.random.PRNGKey(0)),
                                  parallel.shard_batch(batch, trainer.mesh))
    results.append((_leaves(state), float(metrics["loss"])))
  (one, loss1), (eight, loss8) = results
  assert loss1 == pytest.approx(loss8, abs=1e-5)
  for a, b in zip(one, eight):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_nonfinite_batch_is_skipped_and_counted(trainer8, batch):
  state = trainer8.init(jax.random.PRNGKey(0))
  bad = dict(batch, gt=np.full_like(batch["gt"], np.nan))
  kept = lambda s: _leaves((s.params, s.ema_params, s.opt_state, s.model_state))
  before = kept(state)
  for expected_streak in (1, 2):
    state, metrics = trainer8.step(state, parallel.shard_batch(bad, trainer8.mesh))
    assert int(metrics["skipped"]) == 1
    assert int(state.nonfinite) == expected_streak
  for a, b in zip(before, kept(state)):
    np.testing.assert_array_equal(a, b)
  assert int(state.step) == 2
  state, metrics = trainer8.step(state, parallel.shard_batch(batch, trainer8.mesh))
  assert int(metrics["skipped"]) == 0 and int(state.nonfinite) == 0


def test_gradient_accumulation_of_k_batches_is_one_step_on_the_k_times_batch(
    batch, monkeypatch):
  """k = 2 accumulated batches move params and EMA as one step on both
  batches at once; mid-accumulation nothing moves. The model carries no state
  and drops nothing here, so the two runs see the same forward."""
  monkeypatch.setattr(registry, "build_model", lambda cfg, bands: train_tiny.tiny_model(
      bands, dropout=0.0, carry_state=False))
  second = jax.tree.map(lambda x: np.ascontiguousarray(np.rot90(x, axes=(1, 2))), batch)
  moving = lambda s: _leaves((s.params, s.ema_params))
  config = train_tiny.config()
  config.optim.grad_accum_steps = 2
  trainer = _trainer(config, 1)
  state = trainer.init(jax.random.PRNGKey(0))
  start = moving(state)
  state, _ = trainer.step(state, parallel.shard_batch(batch, trainer.mesh))
  for a, b in zip(start, moving(state)):
    np.testing.assert_array_equal(a, b)   # mid-accumulation: nothing moves
  assert not bool(optimizer_lib.applied_update(trainer.optimizer, state.opt_state))
  state, _ = trainer.step(state, parallel.shard_batch(second, trainer.mesh))
  assert bool(optimizer_lib.applied_update(trainer.optimizer, state.opt_state))

  config = train_tiny.config(batch_size=16)
  once = _trainer(config, 1)
  both = jax.tree.map(lambda a, b: np.concatenate([a, b]), batch, second)
  reference, _ = once.step(once.init(jax.random.PRNGKey(0)),
                           parallel.shard_batch(both, once.mesh))
  for a, b, s in zip(moving(state), moving(reference), start):
    assert not np.array_equal(b, s)
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_weight_decay_mask():
  params = {"blocks": {"kernel": jnp.ones((2, 3, 3)), "bias": jnp.ones((2, 3)),
                       "A_log": jnp.ones((2, 3, 4)), "D": jnp.ones((2, 3)),
                       "dt_bias": jnp.ones((2, 3)),
                       "LayerNorm_0": {"scale": jnp.ones((2, 3))},
                       "layer_scale": jnp.ones((2, 3))},
            "embedding": jnp.ones((4, 3)), "norm": {"scale": jnp.ones(3)}}
  mask = optimizer_lib.decay_mask(params)
  assert mask["blocks"]["kernel"] and mask["embedding"]
  assert not any(mask["blocks"][k] for k in ("bias", "A_log", "D", "dt_bias",
                                             "layer_scale"))
  assert not mask["blocks"]["LayerNorm_0"]["scale"]
  assert not mask["norm"]["scale"]


def test_logged_lr_follows_the_schedule_and_plateau():
  config = train_tiny.config()
  config.optim.plateau.enabled = True
  config.optim.plateau.window = 1
  config.optim.plateau.patience = 1
  schedule = builder.make_schedule(config)
  optimizer = optimizer_lib.make_optimizer(config.optim, schedule)
  params = {"w": jnp.ones((2, 2))}
  opt_state = optimizer.init(params)
  lrs = []
  for loss in (1.0, 2.0, 3.0):  # never improves after the first
    _, opt_state = optimizer.update({"w": jnp.ones((2, 2))}, opt_state, params,
                                    value=loss)
    lrs.append(float(optimizer_lib.learning_rate(opt_state)))
  # Patience 1: every window without improvement halves the scale.
  factor = config.optim.plateau.factor
  for i, lr in enumerate(lrs):
    assert lr == pytest.approx(float(schedule(i)) * factor**i)
