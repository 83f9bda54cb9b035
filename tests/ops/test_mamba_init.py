"""Mamba's initialisers: values, ranges and dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pansharp_jax import ops


def test_a_log_gives_minus_one_to_n():
  a_log = ops.a_log_init(jax.random.key(0), (3, 16))
  assert a_log.shape == (3, 16) and a_log.dtype == jnp.float32
  np.testing.assert_allclose(-jnp.exp(a_log),
                             np.tile(-np.arange(1, 17), (3, 1)), rtol=1e-6)


def test_d_is_ones():
  d = ops.d_init(jax.random.key(0), (5,))
  assert d.dtype == jnp.float32
  np.testing.assert_array_equal(d, np.ones(5))


def test_dt_bias_is_inverse_softplus_of_log_uniform_dt():
  bias = ops.dt_bias_init()(jax.random.key(0), (4096,))
  assert bias.dtype == jnp.float32
  dt = np.asarray(jax.nn.softplus(bias))
  assert dt.min() >= 1e-3 * (1 - 1e-4) and dt.max() <= 1e-1 * (1 + 1e-4)
  # Log-uniform: log(dt) spreads evenly, a quarter in each quarter.
  quarters = np.histogram(np.log(dt), bins=4,
                          range=(np.log(1e-3), np.log(1e-1)))[0]
  np.testing.assert_allclose(quarters / dt.size, 0.25, atol=0.03)


def test_dt_bias_floor():
  bias = ops.dt_bias_init(dt_min=1e-6, dt_max=1e-5, dt_floor=1e-4)(
      jax.random.key(1), (8,))
  np.testing.assert_allclose(jax.nn.softplus(bias), 1e-4, rtol=1e-4)


@pytest.mark.parametrize("d_model, rank", [(16, 1), (96, 6), (100, 7),
                                           (192, 12)])
def test_dt_rank(d_model, rank):
  assert ops.dt_rank(d_model) == rank


def test_dt_kernel_bound():
  kernel = ops.dt_kernel_init(6)(jax.random.key(2), (6, 192))
  assert kernel.dtype == jnp.float32
  assert np.abs(kernel).max() <= 6**-0.5
  assert np.abs(kernel).max() > 0.9 * 6**-0.5
