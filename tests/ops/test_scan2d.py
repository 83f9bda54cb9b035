"""Cross-scan and cross-merge: orders, adjointness and symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pansharp_jax import ops


def test_scan_orders():
  x = jnp.arange(6).reshape(1, 2, 3, 1)  # rows [0 1 2] and [3 4 5]
  seqs = ops.cross_scan(x, 4)[:, 0, :, 0]
  np.testing.assert_array_equal(seqs, [[0, 1, 2, 3, 4, 5],
                                       [0, 3, 1, 4, 2, 5],
                                       [5, 4, 3, 2, 1, 0],
                                       [5, 2, 4, 1, 3, 0]])
  for k in (1, 2):
    np.testing.assert_array_equal(ops.cross_scan(x, k)[:, 0, :, 0], seqs[:k])
  # The last two orders are the first two run backwards.
  assert ops.reversed_orders(4) == (False, False, True, True)
  assert ops.reversed_orders(2) == (False, False)


@pytest.mark.parametrize("directions", [1, 2, 4])
def test_merge_is_the_adjoint_of_scan(directions):
  batch, height, width, channels = 2, 3, 5, 4
  rng = np.random.default_rng(directions)
  x = rng.standard_normal((batch, height, width, channels))
  y = rng.standard_normal((directions, batch, height * width, channels))
  np.testing.assert_allclose(
      jnp.vdot(ops.cross_scan(x, directions), y),
      jnp.vdot(x, ops.cross_merge(y, height, width)), rtol=1e-5)
  # Each order is a permutation, so merging a scan counts every token K times.
  np.testing.assert_allclose(
      ops.cross_merge(ops.cross_scan(x, directions), height, width),
      directions * x, rtol=1e-6)


def test_four_direction_scan_of_a_constant_map_is_symmetric():
  """Selective scans along the 4 orders of a constant map, merged: the result
  is unchanged by transposition and by a half turn of the square grid."""
  size, channels, d_state = 6, 3, 4
  rng = np.random.default_rng(0)
  x = jnp.full((1, size, size, channels), 0.7)
  seqs = ops.cross_scan(x, 4).reshape(4, size * size, channels)
  # Token-independent B, C and delta, as projections of a constant map give.
  const = lambda *shape: jnp.broadcast_to(rng.standard_normal(shape[-1]),
                                          shape)
  B = const(4, size * size, d_state)
  C = const(4, size * size, d_state)
  delta = const(4, size * size, channels)
  A = -jnp.exp(ops.a_log_init(None, (channels, d_state)))
  ys = ops.selective_scan(seqs, delta, A, B, C, D=jnp.ones(channels))
  merged = ops.cross_merge(ys.reshape(4, 1, size * size, channels), size,
                           size)[0]
  np.testing.assert_allclose(merged, merged.swapaxes(0, 1), rtol=1e-5)
  np.testing.assert_allclose(merged, merged[::-1, ::-1], rtol=1e-5)
  # Not trivially symmetric: positions early in some order differ.
  assert np.abs(merged - merged[0, 0]).max() > 1e-3


def test_bad_directions_and_sizes():
  x = jnp.zeros((1, 2, 3, 1))
  with pytest.raises(ValueError, match="directions"):
    ops.cross_scan(x, 3)
  with pytest.raises(ValueError, match="grid"):
    ops.cross_merge(ops.cross_scan(x, 2), 3, 3)


def test_jit_and_shapes():
  x = jnp.ones((2, 4, 6, 3))
  ys = jax.jit(ops.cross_scan, static_argnums=1)(x, 4)
  assert ys.shape == (4, 2, 24, 3)
  out = jax.jit(ops.cross_merge, static_argnums=(1, 2))(ys, 4, 6)
  assert out.shape == x.shape
