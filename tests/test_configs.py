"""Every shipped config passes validation; the original's run is as published."""

import importlib
import os

import pytest

from pansharp_jax import config_checks

CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))
                 if f.endswith(".py") and f not in ("__init__.py", "common.py"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  config_checks.validate(config)


def test_original_run_as_published():
  """results.json of the original: base, 256 px, 80 epochs at batch 1, lr 2e-4,
  all four world-model options; config.py: warmup 5 epochs, restarts T_0 20
  epochs / T_mult 2, minimum lr 1e-6; 600 images make an epoch."""
  from configs import original_256
  config = original_256.get_config()
  epoch = 600
  assert (config.model.size, config.model.depth, config.data.image_size) == ("base", 1, 256)
  assert (config.batch_size, config.num_train_steps) == (1, 80 * epoch)
  assert (config.optim.lr, config.optim.min_lr, config.optim.clip_norm) == (2e-4, 1e-6, 0.1)
  assert (config.optim.warmup_steps, config.optim.restart_period,
          config.optim.restart_mult) == (5 * epoch, 20 * epoch, 2)
  assert config.model.world.preset == "full"
  # SPEC's heads, inputs, shallow convs and multi-scale loss at every ratio.
  assert (config.model.head, config.model.input_norm, config.model.detail_input,
          config.loss.multiscale_from_ratio) == ("sigmoid", "none", "none", 2)
  assert config.model.full_refine == 0  # SPEC's decoder: no extra blocks
  assert (config.loss.dsc, config.loss.wacx) == (0.3, 0.5)
  assert (config.data.source, config.data.num_bands, config.data.max_value) == ("photo", 3, 255.0)
