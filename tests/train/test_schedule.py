"""Warmup + cosine with warm restarts (SGDR), in steps or in epochs."""

import numpy as np
import pytest

from configs import common
from pansharp_jax import config_checks
from pansharp_jax.train import builder, schedule as schedule_lib


def test_warmup_then_restarts_with_growing_periods():
  sched = schedule_lib.warmup_cosine_restarts(
      peak=1.0, warmup_steps=10, total_steps=1000, period=20, period_mult=2,
      floor=0.01)
  lr = np.array([float(sched(s)) for s in range(200)])
  assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
  # Cycles start at 10, 30 (10 + 20) and 70 (30 + 40), each at the peak.
  for start in (10, 30, 70):
    assert lr[start] == pytest.approx(1.0)
  assert lr[29] < 0.05 and lr[69] < 0.05
  assert lr.min() >= 0.01 - 1e-6


def test_single_cosine_without_restarts():
  sched = schedule_lib.warmup_cosine_restarts(
      peak=2.0, warmup_steps=0, total_steps=100, period=0, period_mult=2,
      floor=0.0)
  assert float(sched(0)) == pytest.approx(2.0)
  assert float(sched(50)) == pytest.approx(1.0)
  assert float(sched(100)) == pytest.approx(0.0, abs=1e-6)


def _optim_config(**fields):
  config = common.get_base_config()
  config.optim.warmup_steps = 0
  config.optim.restart_period = 0
  for key, value in fields.items():
    config.optim[key] = value
  return config


def test_epochs_become_steps_of_the_train_split_and_batch():
  # 100 samples in batches of 8: an epoch is 12.5 steps.
  config = _optim_config(warmup_epochs=2, restart_period_epochs=20)
  steps = schedule_lib.epochs_to_steps(config, train_size=100, batch_size=8)
  assert steps.optim.warmup_steps == 25 and steps.optim.restart_period == 250
  assert steps.optim.warmup_epochs == 0 and steps.optim.restart_period_epochs == 0
  config_checks.validate(steps)
  assert config.optim.warmup_epochs == 2  # the given config is left alone
  sched = builder.make_schedule(steps)
  lr = np.array([float(sched(s)) for s in range(800)])
  # The warmup ends at the peak after 25 steps; then cycles of 20 and 40
  # epochs (250 and 500 steps), each ending near the floor.
  assert lr[23] < lr[24] == pytest.approx(steps.optim.lr)
  for start in (25, 25 + 250, 25 + 250 + 500):
    assert lr[start] == pytest.approx(steps.optim.lr)
  for end in (25 + 250, 25 + 250 + 500):
    assert lr[end - 1] < 0.01 * steps.optim.lr


def test_steps_only_configs_are_unchanged():
  config = _optim_config(warmup_steps=7, restart_period=30)
  assert schedule_lib.epochs_to_steps(config, 100, 8) is config


@pytest.mark.parametrize("steps_field, epochs_field", [
    ("warmup_steps", "warmup_epochs"),
    ("restart_period", "restart_period_epochs")])
def test_steps_and_epochs_together_are_a_config_error(steps_field, epochs_field):
  config = _optim_config(**{steps_field: 10, epochs_field: 2.0})
  with pytest.raises(config_checks.ConfigError,
                     match=rf"^config\.optim\.{epochs_field}: .*optim\."
                           rf"{steps_field}=0"):
    config_checks.validate(config)
