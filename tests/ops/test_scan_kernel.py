"""The fused selective-scan kernels (ops/scan_kernel.py) on CPU.

Values and gradients run the kernels in Pallas' interpreter against the
float64 sequential scan; the lowering tests export the GPU kernels for CUDA
(Mosaic GPU), which catches ops and layouts the GPU compiler refuses.
Tolerances: float32 inputs 1e-5 (values, states) and 1e-4 (gradients) of
the reference's largest magnitude; bfloat16 inputs 3e-2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pansharp_jax import ops
from pansharp_jax.ops import backend, pallas_launch, scan_kernel
from tests.ops.scan_reference import FULL, assert_close, make_inputs, reference

pytestmark = pytest.mark.skipif(
    pallas_launch.unavailable_reason() is not None,
    reason=f"fused scan unavailable: {pallas_launch.unavailable_reason()}")

ARRAYS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0")


def _value_and_grads(inputs, reverse, scan):
  """(y, last state) and the gradients w.r.t. every array input of a loss
  on both outputs (so the last state's cotangent is exercised)."""
  names = [k for k in ARRAYS if inputs[k] is not None]
  shape = inputs["u"].shape
  rng = np.random.default_rng(0)
  w_y = rng.standard_normal(shape)
  w_state = rng.standard_normal((shape[0], shape[2], inputs["A"].shape[1]))

  def loss(args):
    y, state = scan(**{**inputs, **dict(zip(names, args))}, reverse=reverse)
    return (jnp.sum(y * w_y.astype(y.dtype))
            + jnp.sum(state * w_state.astype(state.dtype))), (y, state)

  (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      [jnp.asarray(inputs[k]) for k in names])
  return out, dict(zip(names, grads))


def _fused(block=scan_kernel.BLOCK):
  def scan(delta_softplus, reverse, **arrays):
    return scan_kernel.fused_scan(
        **{k: arrays[k] for k in ARRAYS}, delta_softplus=delta_softplus,
        reverse=reverse, interpret=True, block=block)
  return scan


def _sequential64(delta_softplus, reverse, **arrays):
  return ops.selective_scan(**arrays, delta_softplus=delta_softplus,
                            reverse=reverse, return_last_state=True,
                            method="sequential")


def _reference_grads(inputs, reverse):
  with jax.enable_x64(True):
    as64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v)
            for k, v in inputs.items()}
    _, grads = _value_and_grads(as64, reverse, _sequential64)
    return {k: np.asarray(v) for k, v in grads.items()}


# Lengths 1, 7, 64, 257 (16 tiles and a padded one) and 1024 (64 tiles);
# each optional input on (FULL) and off (bare), softplus off; channels 20 in
# blocks of 8 (three blocks, the last padded: dB and dC sum over blocks).
@pytest.mark.parametrize("length, reverse, options, channels, block", [
    (1, False, FULL, 3, 128),
    (7, True, {}, 3, 128),
    (64, False, dict(D=True, delta_bias=True, delta_softplus=False), 5, 128),
    (257, True, FULL, 20, 8),
    (1024, False, FULL, 4, 128),
], ids=["L1", "L7_reverse_bare", "L64_no_softplus", "L257_reverse_blocks",
        "L1024"])
def test_values_and_gradients_match_float64(length, reverse, options,
                                            channels, block):
  inputs = make_inputs(length, 2, length, channels, 4, **options)
  (y, state), grads = _value_and_grads(inputs, reverse, _fused(block))
  assert y.dtype == jnp.float32 and state.dtype == jnp.float32
  y_ref, state_ref = reference(**inputs, reverse=reverse)
  assert_close(y, y_ref, 1e-5)
  assert_close(state, state_ref, 1e-5)
  expected = _reference_grads(inputs, reverse)
  assert grads.keys() == expected.keys()
  for name, grad in grads.items():
    assert grad.shape == expected[name].shape, name
    assert_close(grad, expected[name], 1e-4)


def test_bfloat16_inputs_keep_a_float32_state():
  inputs = make_inputs(9, 2, 40, 8, 16, **FULL)
  low = {k: (v.astype(jnp.bfloat16) if isinstance(v, np.ndarray) else v)
         for k, v in inputs.items()}
  (y, state), grads = _value_and_grads(low, True, _fused())
  assert y.dtype == jnp.bfloat16 and state.dtype == jnp.float32
  y_ref, state_ref = reference(**inputs, reverse=True)
  for got, want in ((y, y_ref), (state, state_ref)):
    err = np.abs(np.asarray(got, np.float32) - want).max()
    assert err <= 3e-2 * np.abs(want).max()
  expected = _reference_grads(inputs, True)
  for name, grad in grads.items():
    assert grad.dtype == jnp.bfloat16, name
    err = np.abs(np.asarray(grad, np.float32) - expected[name]).max()
    assert err <= 3e-2 * np.abs(expected[name]).max(), name


def test_selective_scan_runs_the_kernel():
  """method="fused" through the public API: its result, and that on CPU it
  needs interpret mode (a one-line error, not a crash in the compiler)."""
  inputs = make_inputs(3, 2, 20, 3, 4, **FULL)
  y, state = ops.selective_scan(**inputs, method="fused", interpret=True,
                                return_last_state=True)
  y_ref, state_ref = reference(**inputs)
  assert_close(y, y_ref, 1e-5)
  assert_close(state, state_ref, 1e-5)
  with pytest.raises(ValueError, match="NVIDIA GPUs only"):
    ops.selective_scan(**inputs, method="fused")


def test_missing_mosaic_gpu_is_one_error(monkeypatch):
  monkeypatch.setattr(pallas_launch, "plgpu", None)
  inputs = make_inputs(3, 1, 4, 3, 4)
  with pytest.raises(ValueError, match="needs Mosaic GPU"):
    ops.selective_scan(**inputs, method="fused", interpret=True)


def _export_for_cuda(fn, *args):
  """MLIR of `fn` exported for CUDA from this CPU-only process."""
  with backend.tracing_for("gpu"):
    exported = jax.export.export(
        jax.jit(fn), platforms=("cuda",),
        disabled_checks=[scan_kernel.EXPORT_CHECK])(*args)
  return exported.mlir_module()


# The model's shapes in miniature: d_state 16, channels 192 (two blocks, the
# second padded), a length that is no multiple of the tile; bf16 with every
# option, reversed, and float32 bare.
@pytest.mark.parametrize("dtype, options, reverse", [
    (jnp.bfloat16, FULL, True), (jnp.float32, {}, False)],
    ids=["bf16_full_reverse", "f32_bare"])
def test_forward_and_gradient_lower_for_cuda(dtype, options, reverse):
  inputs = make_inputs(0, 2, 250, 192, 16, **options)
  softplus = inputs.pop("delta_softplus")
  names = [k for k in ARRAYS if inputs[k] is not None]
  args = [jax.ShapeDtypeStruct(inputs[k].shape,
                               jnp.float32 if k in ("A", "h0") else dtype)
          for k in names]

  def forward(*args):
    return ops.selective_scan(**dict(zip(names, args)), method="fused",
                              delta_softplus=softplus, reverse=reverse,
                              return_last_state=True)

  def loss(*args):
    y, state = forward(*args)
    return jnp.sum(y.astype(jnp.float32) ** 2) + jnp.sum(state)

  assert _export_for_cuda(forward, *args).count(scan_kernel.CUSTOM_CALL) == 1
  gradient = jax.grad(loss, argnums=tuple(range(len(args))))
  # The forward kernel (its residuals) and the backward kernel.
  assert _export_for_cuda(gradient, *args).count(scan_kernel.CUSTOM_CALL) == 2
