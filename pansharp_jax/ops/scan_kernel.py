"""The S6 selective scan as fused Pallas kernels for NVIDIA GPUs (Mosaic GPU).

`fused_scan` is `selective_scan(method="fused")`: one kernel reads u, delta,
B, C and z once and writes y once, the d_state states of a channel held in
registers (one (block,) vector per state, a channel per thread of a
warpgroup). The grid runs over (batch, channel blocks); each program streams
its tokens in tiles of `TILE` steps through `plgpu.emit_pipeline` (async
copies, double-buffered) and saves the state at each tile start. The
backward kernel walks the tiles the other way: it recomputes a tile's states
from the saved one into shared memory, then runs the adjoint recurrence,
writing dB and dC per channel block (summed afterwards: deterministic, no
atomics).

The kernels are one tile body each (ops/scan_tiles.py) over plain ref
indexing, run by ops/pallas_launch.py: a Mosaic GPU pipeline on GPU, Pallas'
interpreter on CPU (`interpret=True`, for the tests, which also export the
GPU kernels for CUDA with `jax.export`).
"""

import functools

import jax
import jax.numpy as jnp

from pansharp_jax.ops import backend, pallas_launch, scan_tiles
from pansharp_jax.ops.scan_tiles import SUB, TILE

BLOCK = 128  # channels per program: one warpgroup, a channel per thread
# The kernels' XLA custom call, and the jax.export check to disable to export
# it (Mosaic GPU's custom call is not in export's stable list).
CUSTOM_CALL = "mosaic_gpu_v2"
EXPORT_CHECK = jax.export.DisabledSafetyCheck.custom_call(CUSTOM_CALL)
KERNELS = ("scan_forward", "scan_backward")  # the GPU kernels' names


def fused_scan(u, delta, A, B, C, D, z, delta_bias, h0, *, delta_softplus,
               reverse, interpret=False, block=BLOCK):
  """selective_scan's contract; returns (y, last state (batch, ch, d_state)).

  Computes in float32 whatever the input dtype; y has u's dtype.
  interpret: run the kernels with Pallas' CPU interpreter (slow; tests).
  """
  reason = pallas_launch.unavailable_reason()
  if reason:
    raise ValueError(f"selective_scan method 'fused' needs Mosaic GPU: {reason}")
  if not interpret and backend.target() != "gpu":
    raise ValueError(
        "selective_scan method 'fused' runs on NVIDIA GPUs only (backend is "
        f"{backend.target()!r}); use method 'chunked' or 'sequential', or "
        "interpret=True to test the kernel on CPU")
  batch, length, channels = u.shape
  f32 = jnp.float32
  D = jnp.zeros((channels,), f32) if D is None else D
  delta_bias = (jnp.zeros((channels,), f32) if delta_bias is None
                else delta_bias)
  h0 = jnp.zeros((batch, channels, A.shape[1]), f32) if h0 is None else h0
  scan = _scan_function(z is not None, delta_softplus, reverse, interpret,
                        block)
  return scan(u, delta, A, B, C, D, delta_bias, h0,
              *(() if z is None else (z,)))


@functools.lru_cache(maxsize=None)
def _scan_function(has_z, softplus, reverse, interpret, block):
  """The forward and backward kernels as one custom_vjp function of
  (u, delta, A, B, C, D, delta_bias, h0[, z])."""
  static = dict(softplus=softplus, reverse=reverse, interpret=interpret,
                block=block)

  def forward(*args):
    u, delta, A, B, C, D, delta_bias, h0, *z = args
    length, channels = u.shape[1:]
    lay = _layout(u, delta, A, B, C, D, delta_bias, h0, z[0] if z else None,
                  block)
    y, checkpoints, last = _forward(lay, length=length, **static)
    out = (y[:, :length, :channels],
           last[:, :A.shape[1], :channels].swapaxes(1, 2))
    return out, (args, checkpoints)

  def backward(res, cotangents):
    args, checkpoints = res
    u, delta, A, B, C, D, delta_bias, h0, *z = args
    dy, dlast = cotangents
    length, channels = u.shape[1:]
    n_state = A.shape[1]
    lay = _layout(u, delta, A, B, C, D, delta_bias, h0, z[0] if z else None,
                  block)
    lp, cp = lay["u"].shape[1:]
    grads = _backward(lay, checkpoints, _pad(dy, lp, cp),
                      _state_layout(dlast, cp), length=length, **static)
    du, ddelta, dB, dC, dz, carry = grads
    tokens = lambda x: x[:, :length, :channels]
    ddelta = tokens(ddelta)
    padded = lay["B"].shape[-1]
    carry = carry[:, :, :channels]
    dh0, dA, dD = (carry[:, :n_state], carry[:, padded:padded + n_state],
                   carry[:, 2 * padded])
    out = [tokens(du), ddelta, dA.sum(0).T,
           dB.sum(1)[:, :length, :n_state], dC.sum(1)[:, :length, :n_state],
           dD.sum(0), ddelta.sum((0, 1)), dh0.swapaxes(1, 2)]
    if z:
      out.append(tokens(dz))
    return tuple(g.astype(x.dtype) for g, x in zip(out, args))

  scan = jax.custom_vjp(lambda *args: forward(*args)[0])
  scan.defvjp(forward, backward)
  return scan


def _forward(lay, *, length, softplus, reverse, interpret, block):
  """y, the state at each tile start and the last state (padded)."""
  u = lay["u"]
  batch, lp, cp = u.shape
  n_state = lay["B"].shape[-1]
  has_z = lay["z"] is not None
  ins = ([("tok", u), ("tok", lay["delta"]), ("state", lay["B"]),
          ("state", lay["C"])] + ([("tok", lay["z"])] if has_z else [])
         + [("param", lay["params"]), ("carry", lay["h0"])])
  f32 = jnp.float32
  outs = [("tok", jax.ShapeDtypeStruct(u.shape, u.dtype)),
          ("ck", jax.ShapeDtypeStruct((batch, lp // TILE, n_state, cp), f32)),
          ("carry", jax.ShapeDtypeStruct((batch, n_state, cp), f32))]

  def tile_fn(tile, in_refs, out_refs, carry, params, scratch):
    del scratch
    u_r, d_r, b_r, c_r, *z_r = in_refs
    return scan_tiles.forward_tile(
        tile, u_r, d_r, b_r, c_r, z_r[0] if z_r else None, *out_refs, carry,
        _split_params(params, n_state), length=length, softplus=softplus,
        reverse=reverse)

  return pallas_launch.launch(tile_fn, ins, outs, scratch=(), block=block,
                              reverse=reverse, interpret=interpret,
                              name=KERNELS[0])


def _backward(lay, checkpoints, dy, dlast, *, length, softplus, reverse,
              interpret, block):
  """du, d(raw delta), dB and dC per channel block, dz (or None) and the
  final carry (dh0, dA, dD per batch), all padded."""
  u = lay["u"]
  batch, lp, cp = u.shape
  n_state = lay["B"].shape[-1]
  has_z = lay["z"] is not None
  f32 = jnp.float32
  carry = jnp.concatenate(
      [dlast, jnp.zeros((batch, n_state + 1, cp), f32)], axis=1)
  ins = ([("tok", u), ("tok", lay["delta"]), ("state", lay["B"]),
          ("state", lay["C"])] + ([("tok", lay["z"])] if has_z else [])
         + [("tok", dy), ("ck", checkpoints), ("param", lay["params"]),
            ("carry", carry)])
  partial = jax.ShapeDtypeStruct((batch, cp // block, lp, n_state), f32)
  outs = ([("tok", jax.ShapeDtypeStruct(u.shape, u.dtype)),
           ("tok", jax.ShapeDtypeStruct(u.shape, f32)),
           ("partial", partial), ("partial", partial)]
          + ([("tok", jax.ShapeDtypeStruct(u.shape, lay["z"].dtype))]
             if has_z else [])
          + [("carry", jax.ShapeDtypeStruct(carry.shape, f32))])

  def tile_fn(tile, in_refs, out_refs, carry, params, scratch):
    u_r, d_r, b_r, c_r, *rest = in_refs
    z_r, dy_r, ck_r = rest if has_z else [None] + rest
    du_r, dd_r, db_r, dc_r, *dz_r = out_refs
    new = scan_tiles.backward_tile(
        tile, u_r, d_r, b_r, c_r, z_r, dy_r, ck_r, du_r, dd_r, db_r, dc_r,
        dz_r[0] if dz_r else None, scratch[0],
        (carry[:n_state], carry[n_state:2 * n_state], carry[2 * n_state]),
        _split_params(params, n_state), length=length, softplus=softplus,
        reverse=reverse)
    dh, dA, dD = new
    return list(dh) + list(dA) + [dD]

  grads = pallas_launch.launch(
      tile_fn, ins, outs,
      scratch=(jax.ShapeDtypeStruct((SUB, n_state, block), f32),),
      block=block, reverse=not reverse, interpret=interpret, name=KERNELS[1])
  if not has_z:
    grads = grads[:4] + (None,) + grads[4:]
  return grads


def _split_params(params, n_state):
  """A (a vector per state), D and delta_bias."""
  return params[:n_state], params[n_state], params[n_state + 1]


# ---------------------------------------------------------------------------
# Layout: tokens (batch, length, channels) padded to (.., TILE k, block m);
# per-channel parameters transposed to (d_state or 1, channels).


def _pad(x, length=None, channels=None, axis_l=1):
  """Zero-pads axis `axis_l` (time) to `length`, the last axis to `channels`."""
  widths = [(0, 0)] * x.ndim
  if length is not None:
    widths[axis_l] = (0, length - x.shape[axis_l])
  if channels is not None:
    widths[-1] = (0, channels - x.shape[-1])
  return jnp.pad(x, widths)


def _layout(u, delta, A, B, C, D, delta_bias, h0, z, block):
  length, channels = u.shape[1:]
  lp = -(-length // TILE) * TILE
  cp = -(-channels // block) * block
  n_state = _padded_states(A.shape[1])
  tok = lambda x: _pad(x, lp, cp)
  f32 = jnp.float32
  # Extra states have B = C = 0 and h0 = 0: they stay 0 and add nothing.
  A_t = _pad(A.T.astype(f32), n_state, axis_l=0)
  params = jnp.concatenate([A_t, D[None].astype(f32),
                            delta_bias[None].astype(f32)])  # (N + 2, ch)
  return dict(
      u=tok(u), delta=tok(delta), B=_pad(B, lp, n_state),
      C=_pad(C, lp, n_state), z=None if z is None else tok(z),
      params=_pad(params, channels=cp), h0=_state_layout(h0, cp))


def _padded_states(n_state):
  """d_state rounded up to 8: async copies need rows of 16-byte multiples
  (B and C in bf16 are (length, d_state)); the model has d_state 18, 20."""
  return -(-n_state // 8) * 8


def _state_layout(h, channels):
  """(batch, ch, d_state) -> (batch, padded d_state, padded ch), float32."""
  h = h.astype(jnp.float32).swapaxes(1, 2)
  return _pad(h, _padded_states(h.shape[1]), channels)


def hbm_bytes(batch, length, channels, d_state, itemsize, *, gate=True,
              backward=False, block=BLOCK):
  """Bytes the kernels read and write in HBM, at their padded shapes.

  Forward: u, delta (and z), B and C once, the per-channel parameters and
  h0 once per program; y once, the float32 state at every tile start and
  the last state. The backward kernel reads them again with dy and the tile
  states, and writes du, d(delta) (float32), dz, per-block dB and dC
  partials (float32) and its (dh0, dA, dD) carry. Padding copies made
  outside the kernels (channels to a multiple of `block`, the length to one
  of TILE) are not counted.
  """
  lp = -(-length // TILE) * TILE
  cp = -(-channels // block) * block
  n = _padded_states(d_state)
  programs = batch * (cp // block)
  tokens = batch * lp * cp
  streams = (3 if gate else 2) * tokens * itemsize + 2 * batch * lp * n * itemsize
  params = programs * (n + 2) * block * 4
  states = batch * (lp // TILE) * n * cp * 4
  fwd = streams + params + 2 * batch * n * cp * 4 + tokens * itemsize + states
  if not backward:
    return fwd
  carry = batch * (2 * n + 1) * cp * 4
  bwd_reads = streams + tokens * itemsize + states + params + carry
  bwd_writes = (tokens * (itemsize + 4 + (itemsize if gate else 0))
                + 2 * programs * lp * n * 4 + carry)
  return fwd + bwd_reads + bwd_writes
