"""Warmup + cosine with warm restarts (SGDR)."""

import numpy as np
import pytest

from pansharp_jax.train import schedule as schedule_lib


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
