"""Checkpoints: round trip and the data position, fallback past damaged ones, best export."""

import json
import os

import jax
import numpy as np
import pytest
import train_tiny

from configs import default
from pansharp_jax import errors
from pansharp_jax.data import pipeline, sources
from pansharp_jax.train import builder, checkpoint, parallel


@pytest.fixture(scope="module")
def setup():
  config = train_tiny.config(keep_checkpoints=5)
  # One device: orbax compiles a slicing op per array shape for replicated
  # arrays on several devices, which only slows this test down.
  mesh = parallel.make_mesh(1)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  init = builder.make_init(config, model, optimizer, mesh)
  source = sources.make_source(config.data, "train")
  make_iter = lambda start=0: iter(pipeline.train_dataset(
      source, config.data, batch_size=config.batch_size, seed=0, start_step=start))
  return config, init, make_iter


def _abstract(init):
  """What the loop and inference.py restore into: the init's shapes."""
  return jax.eval_shape(init, jax.random.PRNGKey(0))


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _save(manager, state, step):
  state = state.replace(step=jax.numpy.asarray(step, jax.numpy.int32))
  assert checkpoint.save(manager, state)
  manager.wait_until_finished()
  return state


def test_round_trip_restores_state_and_data_position(setup, tmp_path):
  config, init, make_iter = setup
  state = init(jax.random.PRNGKey(1))
  it = make_iter()
  for _ in range(3):
    next(it)
  manager = checkpoint.make_manager(str(tmp_path), config)
  state = _save(manager, state, 3)
  expected_batch = next(it)

  restored = checkpoint.restore_latest(manager, _abstract(init))
  manager.close()
  _equal(restored, state)
  assert int(restored.step) == 3 and np.isnan(float(restored.best_metric))
  # The loop resumes the data at the restored step.
  batch = next(make_iter(int(restored.step)))
  for key in pipeline.KEYS:
    np.testing.assert_array_equal(batch[key], expected_batch[key])


def _truncate_files(directory):
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_damaged_newest_checkpoint_falls_back_to_the_previous(setup, tmp_path):
  config, init, _ = setup
  state = init(jax.random.PRNGKey(1))
  manager = checkpoint.make_manager(str(tmp_path), config)
  first = _save(manager, state, 1)
  _save(manager, init(jax.random.PRNGKey(2)), 2)
  _truncate_files(os.path.join(manager.directory, "2"))

  restored = checkpoint.restore_latest(manager, _abstract(init))
  assert int(restored.step) == 1
  _equal(restored, first)
  assert checkpoint.set_aside_newer(manager, 1) == [2]
  assert os.path.isdir(os.path.join(f"{manager.directory}.damaged", "2"))
  assert manager.all_steps() == [1]
  _save(manager, state, 2)   # the step can be saved again
  manager.close()


def test_the_newest_of_two_good_checkpoints_is_restored(setup, tmp_path):
  config, init, _ = setup
  manager = checkpoint.make_manager(str(tmp_path), config)
  _save(manager, init(jax.random.PRNGKey(1)), 1)
  newest = _save(manager, init(jax.random.PRNGKey(2)), 2)
  restored = checkpoint.restore_latest(manager, _abstract(init))
  manager.close()
  assert int(restored.step) == 2
  _equal(restored, newest)


def test_a_step_another_host_cannot_load_is_skipped_on_every_host(setup, tmp_path, monkeypatch):
  # Hosts resumed at different steps would deadlock in their first save: a
  # step that fails on any host (stood in for by any_process) is skipped here
  # too, though it loads on this one.
  config, init, _ = setup
  manager = checkpoint.make_manager(str(tmp_path), config)
  first = _save(manager, init(jax.random.PRNGKey(1)), 1)
  _save(manager, init(jax.random.PRNGKey(2)), 2)
  asked = []
  def failed_elsewhere(flag):
    asked.append(flag)
    return len(asked) == 1   # the newest step failed on another host
  monkeypatch.setattr(parallel, "any_process", failed_elsewhere)
  restored = checkpoint.restore_latest(manager, _abstract(init))
  manager.close()
  assert asked == [False, False]   # both steps loaded here
  assert int(restored.step) == 1
  _equal(restored, first)


def test_no_loadable_checkpoint_is_an_error(setup, tmp_path):
  config, init, _ = setup
  state = init(jax.random.PRNGKey(1))
  manager = checkpoint.make_manager(str(tmp_path), config)
  _save(manager, state, 1)
  _truncate_files(os.path.join(manager.directory, "1"))
  with pytest.raises(errors.CheckpointError, match="no checkpoint loads"):
    checkpoint.restore_latest(manager, _abstract(init))
  manager.close()


def test_best_export_round_trip(setup, tmp_path):
  _, init, _ = setup
  state = init(jax.random.PRNGKey(1))
  assert checkpoint.restore_best(str(tmp_path), None) is None
  manager = checkpoint.make_best_manager(str(tmp_path))
  checkpoint.save_best(manager, state, {"step": 0, "metric": "psnr", "value": 30.5})
  manager.close()
  variables = {"params": state.ema_params, **state.model_state}
  abstract = _abstract(init)
  restored, info = checkpoint.restore_best(
      str(tmp_path), {"params": abstract.ema_params, **abstract.model_state})
  _equal(restored, variables)
  assert info == {"step": 0, "metric": "psnr", "value": 30.5}


def _run_dir(tmp_path, model_section):
  """A workdir as a run leaves it: config.json and one checkpoint step."""
  os.makedirs(tmp_path / "checkpoints" / "100")
  (tmp_path / "config.json").write_text(json.dumps({"model": model_section}))
  return str(tmp_path)


def test_weights_trained_with_other_heads_are_refused(tmp_path):
  config = default.get_config()
  # A run from before model.head existed trained the sigmoid heads on raw inputs.
  old = _run_dir(tmp_path, {"name": "pansharpener", "size": "tiny"})
  with pytest.raises(errors.CheckpointError,
                     match=r"config.json: its weights were trained with "
                           r"model.head=sigmoid, the config has residual; "
                           r"pass --config.model.head=sigmoid"):
    checkpoint.check_saved_model(config, old)
  config.model.head = "sigmoid"
  with pytest.raises(errors.CheckpointError, match="model.input_norm=none"):
    checkpoint.check_saved_model(config, old)
  config.model.input_norm = "none"
  with pytest.raises(errors.CheckpointError, match="model.detail_input=none"):
    checkpoint.check_saved_model(config, old)
  config.model.detail_input = "none"
  with pytest.raises(errors.CheckpointError,
                     match="model.full_refine=0, the config has 2"):
    checkpoint.check_saved_model(config, old)
  config.model.full_refine = 0
  with pytest.raises(errors.CheckpointError, match="model.dim=0, the config has 24"):
    checkpoint.check_saved_model(config, old)
  config.model.dim = 0
  checkpoint.check_saved_model(config, old)
  config.model.dim = 16  # tiny's own width, the weights dim=0 trained
  checkpoint.check_saved_model(config, old)
  # The reference CNNs have no such fields; nor does a workdir without weights.
  config = default.get_config()
  config.model.name = "fusionnet"
  checkpoint.check_saved_model(config, old)
  os.rmdir(tmp_path / "checkpoints" / "100")
  checkpoint.check_saved_model(default.get_config(), old)


def test_weights_of_the_same_heads_are_accepted(tmp_path):
  config = default.get_config()
  run = _run_dir(tmp_path, {"name": "pansharpener", "head": "residual",
                            "input_norm": "sample",
                            "detail_input": "pan_minus_ms", "dim": 24,
                            "full_refine": 2})
  checkpoint.check_saved_model(config, run)
  config.model.dim = 0  # tiny's 16, not the 24 the run trained
  with pytest.raises(errors.CheckpointError, match="model.dim=24, the config has 0"):
    checkpoint.check_saved_model(config, run)
  config.model.dim = 24
  config.model.input_norm = "band"
  with pytest.raises(errors.CheckpointError, match="input_norm=sample, the config has band"):
    checkpoint.check_saved_model(config, run)
  config.model.input_norm = "sample"
  config.model.full_refine = 0  # SPEC's decoder: the run's blocks would not load
  with pytest.raises(errors.CheckpointError, match="model.full_refine=2, the config has 0"):
    checkpoint.check_saved_model(config, run)
