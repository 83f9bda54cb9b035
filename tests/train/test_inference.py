"""inference.py: restoring a workdir's weights, and the sharded eval forward.

Here (tests/train) the registry builds the tiny stand-in model.
"""

import jax
import numpy as np
import pytest
import train_tiny

from pansharp_jax import errors, inference
from pansharp_jax.train import builder, checkpoint, parallel


def _saved_run(tmp_path, best=False):
  """A workdir with one checkpoint (and a best export), from a fresh init
  whose EMA params differ from its params."""
  config = train_tiny.config()
  workdir = str(tmp_path / "run")
  _, _, _, state = builder.build(config, parallel.make_mesh())
  state = state.replace(
      step=state.step + 7,
      ema_params=jax.tree.map(lambda x: x + 0.5, state.ema_params))
  manager = checkpoint.make_manager(workdir, config)
  checkpoint.save(manager, state, force=True)
  manager.wait_until_finished()
  manager.close()
  if best:
    best_manager = checkpoint.make_best_manager(workdir)
    checkpoint.save_best(best_manager, state, {"step": 7, "metric": "psnr",
                                               "value": 30.0, "mode": "max"})
    best_manager.close()
  return config, workdir, jax.device_get(state)


@pytest.mark.parametrize("weights", ["latest", "best"])
def test_restore_returns_the_ema_variables(tmp_path, weights):
  config, workdir, state = _saved_run(tmp_path, best=True)
  restored = inference.restore(config, workdir, weights)
  assert restored.step == 7
  expected = {"params": state.ema_params, **state.model_state}
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.variables),
               expected)


@pytest.mark.parametrize("weights,folder", [("latest", "checkpoints"), ("best", "best")])
def test_missing_weights_fail_before_building(tmp_path, monkeypatch, weights, folder):
  monkeypatch.setattr(builder, "make_model_and_optimizer",
                      lambda *a: pytest.fail("model built"))
  with pytest.raises(errors.CheckpointError,
                     match=rf"^{tmp_path}/{folder}: no checkpoint to predict with \("):
    inference.restore(train_tiny.config(), str(tmp_path), weights, "predict with")


def test_local_mesh_takes_the_devices_that_split_the_batch():
  assert jax.local_device_count() == 8
  assert [parallel.local_mesh(b).devices.size for b in (16, 8, 4, 6, 3, 1)] == [
      8, 8, 4, 2, 1, 1]


def test_sharded_forward_equals_one_device(tmp_path):
  config, workdir, _ = _saved_run(tmp_path)
  restored = inference.restore(config, workdir)
  rng = np.random.default_rng(0)
  batch = {"ms": rng.random((4, 8, 8, 4), np.float32),
           "pan": rng.random((4, 32, 32, 1), np.float32),
           "lms": rng.random((4, 32, 32, 4), np.float32)}
  out = restored.batch_fn()(batch)
  assert len(out.sharding.device_set) == 4
  one = builder.jit_predict(restored.model)(restored.variables, batch)
  np.testing.assert_allclose(np.asarray(out), np.asarray(one), atol=1e-6)
