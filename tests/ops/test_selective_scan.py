"""The S6 selective scan against a plain numpy loop, per method and option."""

import functools

import jax
from jax import test_util
import jax.numpy as jnp
import numpy as np
import pytest

from pansharp_jax import ops
from tests.ops.scan_reference import FULL, assert_close, make_inputs, reference

METHODS = ("sequential", "associative", "chunked")

scan = jax.jit(ops.selective_scan, static_argnames=(
    "delta_softplus", "reverse", "return_last_state", "method", "chunk_size"))


# 257 steps are one more than the default chunk, so the chunked scan pads
# them, and reversed it runs the padding after t = 0; 4096 is the model's
# shortest sequence.
@pytest.mark.parametrize("length, reverse", [
    (1, False), (1, True), (7, False), (7, True), (257, False), (257, True),
    (4096, False)])
@pytest.mark.parametrize("method", METHODS)
def test_matches_reference(method, length, reverse):
  batch, channels = (1, 4) if length == 4096 else (2, 3)
  inputs = make_inputs(length, batch, length, channels, 4, **FULL)
  y, state = scan(**inputs, reverse=reverse, return_last_state=True,
                  method=method)
  y_ref, state_ref = reference(**inputs, reverse=reverse)
  assert y.shape == inputs["u"].shape and y.dtype == jnp.float32
  assert state.shape == (batch, channels, 4) and state.dtype == jnp.float32
  assert_close(y, y_ref, 1e-5)
  assert_close(state, state_ref, 1e-5)


# With FULL above, each option is tested both on and off.
@pytest.mark.parametrize("options", [
    dict(),
    dict(D=True, delta_bias=True, delta_softplus=False),
], ids=["bare", "no_softplus"])
@pytest.mark.parametrize("method", METHODS)
def test_options_match_reference(method, options):
  inputs = make_inputs(1, 2, 33, 3, 4, **options)
  y, state = scan(**inputs, return_last_state=True, method=method,
                  chunk_size=8)
  y_ref, state_ref = reference(**inputs)
  assert_close(y, y_ref, 1e-5)
  assert_close(state, state_ref, 1e-5)


def test_auto_is_sequential_on_cpu():
  inputs = make_inputs(2, 2, 20, 3, 4, **FULL)
  np.testing.assert_array_equal(scan(**inputs, method="auto"),
                                scan(**inputs, method="sequential"))


def _array_names(inputs):
  """The names of the given array inputs, in order."""
  return [k for k, v in inputs.items() if isinstance(v, np.ndarray)]


# The reversed chunked scan runs every part: flips, padding, remat and the
# associative scan; the other methods are compared with it below.
@pytest.mark.parametrize("method, reverse", [
    ("sequential", False), ("chunked", True)])
def test_check_grads_float64(method, reverse):
  with jax.enable_x64(True):
    inputs = make_inputs(3, 1, 6, 2, 3, dtype=np.float64, **FULL)
    names = _array_names(inputs)

    @jax.jit
    def f(*args):
      return ops.selective_scan(
          **{**inputs, **dict(zip(names, args))}, reverse=reverse,
          return_last_state=True, method=method, chunk_size=4)

    args = [jnp.asarray(inputs[k]) for k in names]
    assert f(*args)[0].dtype == jnp.float64
    test_util.check_grads(f, args, order=1, modes=("rev",))


def _loss_grads(method, inputs, reverse):
  """Gradients of a loss on y and the last state, w.r.t. every input."""
  names = _array_names(inputs)
  rng = np.random.default_rng(0)
  weights = rng.standard_normal(inputs["u"].shape).astype(np.float32)

  def loss(args):
    y, state = ops.selective_scan(
        **{**inputs, **dict(zip(names, args))}, reverse=reverse,
        return_last_state=True, method=method, chunk_size=16)
    return jnp.sum(y * weights) + jnp.sum(state**2)

  return jax.jit(jax.grad(loss))([inputs[k] for k in names])


def test_gradients_agree_across_methods():
  # Reversed, so that the flips are differentiated too; 40 steps in chunks
  # of 16 also covers the padding.
  inputs = make_inputs(4, 2, 40, 3, 4, **FULL)
  expected = _loss_grads("sequential", inputs, reverse=True)
  for method in ("associative", "chunked"):
    for got, want in zip(_loss_grads(method, inputs, reverse=True), expected):
      assert_close(got, want, 1e-4)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100])
def test_chunk_size_invariance(chunk_size):
  # Reversed, so that the padding (7 and 64 do not divide 100) runs after
  # t = 0 and must leave the last state alone.
  inputs = make_inputs(5, 2, 100, 3, 4, **FULL)
  y, state = scan(**inputs, reverse=True, return_last_state=True,
                  method="chunked", chunk_size=chunk_size)
  y_ref, state_ref = scan(**inputs, reverse=True, return_last_state=True,
                          method="sequential")
  assert_close(y, y_ref, 1e-5)
  assert_close(state, state_ref, 1e-5)


def _split(inputs, start, stop):
  """The inputs restricted to time steps [start, stop)."""
  return {k: (v[:, start:stop] if k in ("u", "delta", "B", "C", "z") else v)
          for k, v in inputs.items()}


# Every method reverses by the same flip; reversed splitting is tested where
# the padding makes a difference, in the chunked method.
@pytest.mark.parametrize("method, reverse", [
    ("sequential", False), ("associative", False), ("chunked", False),
    ("chunked", True)])
def test_splitting_carries_the_state(method, reverse):
  # Halves of 24 steps in chunks of 16, so the halves are padded.
  inputs = make_inputs(6, 2, 48, 3, 4, **FULL)
  run = functools.partial(scan, return_last_state=True, reverse=reverse,
                          method=method, chunk_size=16)
  y, state = run(**inputs)
  first, second = _split(inputs, 0, 24), _split(inputs, 24, 48)
  if reverse:  # The tail goes first and hands its state to the head.
    y2, state2 = run(**second)
    y1, last = run(**{**first, "h0": state2})
  else:
    y1, state1 = run(**first)
    y2, last = run(**{**second, "h0": state1})
  assert_close(np.concatenate([y1, y2], axis=1), y, 1e-5)
  assert_close(last, state, 1e-5)


# The closed forms share one input layout (D, no softplus), so one compile.
@pytest.mark.parametrize("method", METHODS)
def test_zero_delta_leaves_the_skip(method):
  inputs = make_inputs(7, 2, 30, 3, 4, D=True, delta_softplus=False)
  u, D = inputs["u"], inputs["D"]
  y, state = scan(**{**inputs, "delta": np.zeros_like(u)},
                  return_last_state=True, method=method, chunk_size=8)
  np.testing.assert_array_equal(y, u * D)
  np.testing.assert_array_equal(state, 0.0)


@pytest.mark.parametrize("method", METHODS)
def test_zero_A_unit_delta_is_a_cumulative_sum(method):
  inputs = make_inputs(8, 2, 30, 3, 4, D=True, delta_softplus=False)
  u, B, C = inputs["u"], inputs["B"], inputs["C"]
  y, state = scan(**{**inputs, "A": np.zeros_like(inputs["A"]),
                     "delta": np.ones_like(u), "D": np.zeros_like(inputs["D"])},
                  return_last_state=True, method=method, chunk_size=8)
  h = np.cumsum(u[..., None] * B[:, :, None, :], axis=1)  # (b, l, d, n)
  assert_close(state, h[:, -1], 1e-5)
  assert_close(y, np.einsum("bldn,bln->bld", h, C), 1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_bfloat16_stays_near_float32(method):
  inputs = make_inputs(9, 2, 64, 8, 16, **FULL)
  y32, state32 = reference(**inputs)
  low = {k: (v.astype(jnp.bfloat16) if isinstance(v, np.ndarray) else v)
         for k, v in inputs.items()}
  y16, state16 = scan(**low, return_last_state=True, method=method)
  assert y16.dtype == jnp.bfloat16 and state16.dtype == jnp.float32
  scale = np.abs(y32).max()
  assert np.abs(np.asarray(y16, np.float32) - y32).max() <= 3e-2 * scale
  scale = np.abs(state32).max()
  assert np.abs(np.asarray(state16) - state32).max() <= 3e-2 * scale


def test_long_sequence_is_finite():
  """L = 16384 with Mamba's initialisation and wide step sizes.

  Gradients through the sequential scan only (the parallel forms' backward
  passes take long to compile at this length; they are compared with it at
  shorter lengths above).
  """
  length, channels, d_state = 16384, 4, 16
  A = -jnp.exp(ops.a_log_init(None, (channels, d_state)))
  delta_bias = ops.dt_bias_init()(jax.random.key(0), (channels,))
  rng = np.random.default_rng(11)
  u, delta, z = rng.standard_normal((3, 1, length, channels), np.float32) * 3
  B, C = rng.standard_normal((2, 1, length, d_state), np.float32)

  def loss(u, delta, B, C, method):
    y, state = ops.selective_scan(
        u, delta, A, B, C, D=jnp.ones(channels), z=z, delta_bias=delta_bias,
        return_last_state=True, method=method)
    return jnp.sum(y**2) + jnp.sum(state**2), y

  args = (u, delta, B, C)
  (_, y), grads = jax.jit(jax.value_and_grad(
      functools.partial(loss, method="sequential"), argnums=(0, 1, 2, 3),
      has_aux=True))(*args)
  for x in (y,) + grads:
    assert np.isfinite(np.asarray(x)).all()
  for method in ("associative", "chunked"):
    _, y_method = jax.jit(functools.partial(loss, method=method))(*args)
    assert np.isfinite(np.asarray(y_method)).all()
    assert_close(y_method, y, 1e-5)


def test_bad_arguments_are_named():
  inputs = make_inputs(10, 2, 8, 3, 4)
  with pytest.raises(ValueError, match="B must have shape"):
    ops.selective_scan(**{**inputs, "B": inputs["B"][:, :4]})
  with pytest.raises(ValueError, match="method"):
    ops.selective_scan(**inputs, method="parallel")
  with pytest.raises(ValueError, match="chunk_size"):
    ops.selective_scan(**inputs, method="chunked", chunk_size=0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("delta_softplus", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_numpy_and_jax_inputs_alike(method, delta_softplus, reverse):
  """Called eagerly (no jit, so no tracers), NumPy inputs give the JAX
  inputs' result, with and without every optional array."""
  inputs = make_inputs(11, 2, 9, 3, 4, **{**FULL,
                                          "delta_softplus": delta_softplus})
  options = dict(delta_softplus=delta_softplus, reverse=reverse,
                 return_last_state=True, method=method, chunk_size=4)
  arrays = {k: v for k, v in inputs.items() if k != "delta_softplus"}
  as_jax = {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}
  y_ref, state_ref = reference(**inputs, reverse=reverse)
  for given in (arrays, as_jax):
    y, state = ops.selective_scan(**given, **options)
    assert_close(y, y_ref, 1e-5)
    assert_close(state, state_ref, 1e-5)
  bare = {k: arrays[k] for k in ("u", "delta", "A", "B", "C")}
  y_bare = ops.selective_scan(**bare, **{**options, "return_last_state": False})
  assert_close(y_bare, reference(**bare, delta_softplus=delta_softplus,
                                 reverse=reverse)[0], 1e-5)
