"""Selective-scan test inputs and a float64 numpy reference, shared by the
scan tests (tests/ops/test_selective_scan.py, test_scan_kernel.py)."""

import numpy as np

# Every optional input at once: D, z, delta_bias, h0 and softplus.
FULL = dict(D=True, z=True, delta_bias=True, h0=True, delta_softplus=True)


def make_inputs(seed, batch, length, channels, d_state, *, D=False, z=False,
                delta_bias=False, h0=False, delta_softplus=True,
                dtype=np.float32):
  """Random scan inputs as numpy arrays; the options say which to include.

  delta and its bias are positive so that the scan is stable with or
  without softplus.
  """
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.standard_normal(shape).astype(dtype)
  return dict(
      u=normal(batch, length, channels),
      delta=rng.uniform(0, 1, (batch, length, channels)).astype(dtype),
      A=-np.exp(normal(channels, d_state) * 0.5),
      B=normal(batch, length, d_state),
      C=normal(batch, length, d_state),
      D=normal(channels) if D else None,
      z=normal(batch, length, channels) if z else None,
      delta_bias=(rng.uniform(0, 0.2, channels).astype(dtype)
                  if delta_bias else None),
      h0=normal(batch, channels, d_state) if h0 else None,
      delta_softplus=delta_softplus)


def reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, h0=None,
              delta_softplus=True, reverse=False):
  """The recurrence written out step by step in float64 numpy.

  Returns y (batch, length, channels) and the last state.
  """
  u, delta, A, B, C = (np.asarray(x, np.float64) for x in (u, delta, A, B, C))
  batch, length, channels = u.shape
  if delta_bias is not None:
    delta = delta + delta_bias
  if delta_softplus:
    delta = np.logaddexp(0.0, delta)
  h = (np.zeros((batch, channels, A.shape[1])) if h0 is None
       else np.asarray(h0, np.float64))
  y = np.zeros_like(u)
  steps = range(length - 1, -1, -1) if reverse else range(length)
  for t in steps:
    decay = np.exp(delta[:, t, :, None] * A)
    h = decay * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
    y[:, t] = np.einsum("bdn,bn->bd", h, C[:, t])
  if D is not None:
    y = y + u * D
  if z is not None:
    z = np.asarray(z, np.float64)
    y = y * z / (1 + np.exp(-z))
  return y, h


def assert_close(actual, expected, tol):
  """Elementwise within tol relative, or tol times the largest magnitude."""
  expected = np.asarray(expected, np.float64)
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected,
                             rtol=tol, atol=tol * np.abs(expected).max())
