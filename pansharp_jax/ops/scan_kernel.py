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

Both kernels are written as one tile body over plain ref indexing, run by
two drivers: `plgpu.kernel` + `emit_pipeline` on GPU, and a plain
`pl.pallas_call` over (batch, channel block, tile) with `interpret=True` on
CPU (Mosaic GPU's own interpreter does not run `emit_pipeline`'s copies).
The CPU tests run the second and lower the first with `jax.export`.

Forms Mosaic GPU's layout inference refused when this was written: loading a
(d_state,) row and indexing it; so B[t, n] and C[t, n] are scalar loads.
"""

import functools
import inspect

import jax
from jax import lax
import jax.numpy as jnp

from pansharp_jax.ops import backend

try:
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu
except ImportError:  # pragma: no cover - jaxlib without Pallas
  pl = plgpu = None

TILE = 16    # time steps per pipeline stage; states are saved at tile starts
BLOCK = 128  # channels per program: one warpgroup, a channel per thread
SUB = 8      # steps of a tile whose states the backward pass holds at once
# The kernels' XLA custom call, and the jax.export check to disable to export
# it (Mosaic GPU's custom call is not in export's stable list).
CUSTOM_CALL = "mosaic_gpu_v2"
EXPORT_CHECK = jax.export.DisabledSafetyCheck.custom_call(CUSTOM_CALL)


def unavailable_reason():
  """Why the fused kernel cannot be built with this JAX, or None."""
  if plgpu is None:
    return "jax.experimental.pallas.mosaic_gpu does not import"
  for name in ("kernel", "emit_pipeline", "SMEM"):
    if not hasattr(plgpu, name):
      return f"jax {jax.__version__} has no plgpu.{name}"
  if "init_carry" not in inspect.signature(plgpu.emit_pipeline).parameters:
    return f"jax {jax.__version__}: plgpu.emit_pipeline has no init_carry"
  if "out_type" not in inspect.signature(plgpu.kernel).parameters:
    return f"jax {jax.__version__}: plgpu.kernel has no out_type"
  return None


def fused_scan(u, delta, A, B, C, D, z, delta_bias, h0, *, delta_softplus,
               reverse, interpret=False, block=BLOCK):
  """selective_scan's contract; returns (y, last state (batch, ch, d_state)).

  Computes in float32 whatever the input dtype; y has u's dtype.
  interpret: run the kernels with Pallas' CPU interpreter (slow; tests).
  """
  reason = unavailable_reason()
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
    return _forward_tile(
        tile, u_r, d_r, b_r, c_r, z_r[0] if z_r else None, *out_refs, carry,
        _split_params(params, n_state), length=length, softplus=softplus,
        reverse=reverse)

  return _launch(tile_fn, ins, outs, scratch=(), block=block,
                 reverse=reverse, interpret=interpret)


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
    new = _backward_tile(
        tile, u_r, d_r, b_r, c_r, z_r, dy_r, ck_r, du_r, dd_r, db_r, dc_r,
        dz_r[0] if dz_r else None, scratch[0],
        (carry[:n_state], carry[n_state:2 * n_state], carry[2 * n_state]),
        _split_params(params, n_state), length=length, softplus=softplus,
        reverse=reverse)
    dh, dA, dD = new
    return list(dh) + list(dA) + [dD]

  grads = _launch(
      tile_fn, ins, outs,
      scratch=(jax.ShapeDtypeStruct((SUB, n_state, block), f32),),
      block=block, reverse=not reverse, interpret=interpret)
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


# ---------------------------------------------------------------------------
# The per-step math, on lists of (block,) float32 vectors: one per state.


def _sigmoid(x):
  return 1 / (1 + jnp.exp(-x))


def _softplus(x):
  """log(1 + e^x) from exp and log: Mosaic GPU has no log1p or logistic."""
  return jnp.maximum(x, 0) + jnp.log(1 + jnp.exp(-jnp.abs(x)))


def _step_inputs(u_ref, d_ref, t, valid, bias, softplus):
  """u, delta after bias and softplus (0 on padding) and the raw delta."""
  u = u_ref[t].astype(jnp.float32)
  raw = d_ref[t].astype(jnp.float32) + bias
  delta = _softplus(raw) if softplus else raw
  # A multiply, not a select: Mosaic GPU selects only same-shaped operands.
  return u, delta * valid.astype(jnp.float32), raw


def _order(t, reverse):
  """The tile row processed at step t of a forward pass."""
  return TILE - 1 - t if reverse else t


def _valid(tile, row, length):
  return tile * TILE + row < length


def _forward_tile(tile, u_ref, d_ref, b_ref, c_ref, z_ref, y_ref, ck_ref,
                  hs, params, *, length, softplus, reverse):
  """Runs one tile from state hs; writes y and the tile's start state."""
  A, D, bias = params
  for n, h in enumerate(hs):
    ck_ref[0, n] = h

  def body(t, hs):
    row = _order(t, reverse)
    u, delta, _ = _step_inputs(u_ref, d_ref, row, _valid(tile, row, length),
                               bias, softplus)
    du = delta * u
    y = D * u
    new = []
    for n, h in enumerate(hs):
      h = jnp.exp(delta * A[n]) * h + du * b_ref[row, n].astype(jnp.float32)
      y = y + h * c_ref[row, n].astype(jnp.float32)
      new.append(h)
    if z_ref is not None:
      zt = z_ref[row].astype(jnp.float32)
      y = y * zt * _sigmoid(zt)
    y_ref[row] = y.astype(y_ref.dtype)
    return tuple(new)

  return lax.fori_loop(0, TILE, body, tuple(hs))


def _backward_tile(tile, u_ref, d_ref, b_ref, c_ref, z_ref, dy_ref, ck_ref,
                   du_ref, dd_ref, db_ref, dc_ref, dz_ref, hist_ref, carry,
                   params, *, length, softplus, reverse):
  """The adjoint of one tile: carry = (dh, dA, dD) accumulators."""
  A, D, bias = params
  n_state = len(A)
  dh, dA, dD = carry
  f32 = jnp.float32

  # The states entering each step of a part of the tile, recomputed from the
  # saved tile start into hist_ref ((SUB, d_state, block): half a tile, to
  # fit shared memory beside the pipeline's buffers).
  def recompute(start, stop, hs, store):
    def body(step, hs):
      row = _order(step, reverse)
      u, delta, _ = _step_inputs(u_ref, d_ref, row,
                                 _valid(tile, row, length), bias, softplus)
      new = []
      for n, h in enumerate(hs):
        if store:
          hist_ref[step - start, n] = h
        new.append(jnp.exp(delta * A[n]) * h
                   + delta * u * b_ref[row, n].astype(f32))
      return tuple(new)
    return lax.fori_loop(start, stop, body, hs)

  def adjoint(step, start, carry):
    dh, dA, dD = carry
    row = _order(step, reverse)
    valid = _valid(tile, row, length)
    u, delta, raw = _step_inputs(u_ref, d_ref, row, valid, bias, softplus)
    du_prod = delta * u
    g = dy_ref[row].astype(f32)
    a = [jnp.exp(delta * A[n]) for n in range(n_state)]
    prev = [hist_ref[step - start, n] for n in range(n_state)]
    Bv = [b_ref[row, n].astype(f32) for n in range(n_state)]
    Cv = [c_ref[row, n].astype(f32) for n in range(n_state)]
    h = [a[n] * prev[n] + du_prod * Bv[n] for n in range(n_state)]
    if z_ref is not None:
      zt = z_ref[row].astype(f32)
      gate = _sigmoid(zt)
      ys = D * u
      for n in range(n_state):
        ys = ys + h[n] * Cv[n]
      dz_ref[row] = (g * ys * gate * (1 + zt * (1 - gate))).astype(
          dz_ref.dtype)
      g = g * zt * gate
    dD = dD + g * u
    du = g * D
    ddelta = jnp.zeros_like(u)
    new_dh, new_dA = [], []
    for n in range(n_state):
      dc_ref[row, n] = jnp.sum(g * h[n])
      dhn = dh[n] + g * Cv[n]
      db_ref[row, n] = jnp.sum(dhn * du_prod)
      ddelta = ddelta + dhn * (prev[n] * A[n] * a[n] + u * Bv[n])
      du = du + dhn * delta * Bv[n]
      new_dA.append(dA[n] + dhn * prev[n] * delta * a[n])
      new_dh.append(dhn * a[n])
    if softplus:
      ddelta = ddelta * _sigmoid(raw)
    dd_ref[row] = (ddelta * valid.astype(f32)).astype(dd_ref.dtype)
    du_ref[row] = du.astype(du_ref.dtype)
    return tuple(new_dh), tuple(new_dA), dD

  carry = (tuple(dh), tuple(dA), dD)
  for start in reversed(range(0, TILE, SUB)):  # the later part first
    hs = tuple(ck_ref[0, n] for n in range(n_state))
    hs = recompute(0, start, hs, store=False)
    recompute(start, start + SUB, hs, store=True)
    carry = lax.fori_loop(
        0, SUB, lambda t, c, start=start: adjoint(start + SUB - 1 - t, start, c),
        carry)
  return carry


# ---------------------------------------------------------------------------
# Drivers. Every operand has a kind that says how a program sees it:
#   "tok":     (batch, length, channels), streamed as (TILE, block) tiles;
#   "state":   (batch, length, d_state), streamed as (TILE, d_state) tiles;
#   "partial": (batch, blocks, length, d_state), one slab per program;
#   "ck":      (batch, tiles, k, channels), one (1, k, block) row per tile;
#   "param":   (k, channels), k vectors per program, the same for each batch;
#   "carry":   (batch, k, channels): an input is the initial carry of the
#              tile loop, an output receives its final value.


def _tile_index(k, n_tiles, reverse):
  return n_tiles - 1 - k if reverse else k


def _launch(tile_fn, ins, out_types, *, scratch, block, reverse, interpret):
  """Runs tile_fn over every tile of every (batch, channel block)."""
  kinds_in = [kind for kind, _ in ins]
  kinds_out = [kind for kind, _ in out_types]
  arrays = [x for _, x in ins]
  out_shapes = tuple(s for _, s in out_types)
  batch, length, channels = arrays[kinds_in.index("tok")].shape
  n_tiles, n_blocks = length // TILE, channels // block
  carry_size = arrays[kinds_in.index("carry")].shape[1]
  n_in = len(ins)
  tile_of = functools.partial(_tile_index, n_tiles=n_tiles, reverse=reverse)
  if interpret:
    return _launch_interpret(
        tile_fn, kinds_in, kinds_out, arrays, out_shapes, scratch, block,
        tile_of, (batch, n_blocks, n_tiles), carry_size)

  def kernel(*refs):
    gmem_in, gmem_out = refs[:n_in], refs[n_in:n_in + len(out_shapes)]
    scratch_refs = refs[n_in + len(out_shapes):]
    b, c = lax.axis_index("batch"), lax.axis_index("block")
    cs = pl.ds(c * block, block)
    streamed, specs, params, carry = [], [], [], None
    for kind, ref in zip(kinds_in + kinds_out, gmem_in + gmem_out):
      if kind == "tok":
        streamed.append(ref.at[b, :, cs])
        specs.append(pl.BlockSpec((TILE, block),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "state":
        streamed.append(ref.at[b])
        specs.append(pl.BlockSpec((TILE, ref.shape[-1]),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "partial":
        streamed.append(ref.at[b, c])
        specs.append(pl.BlockSpec((TILE, ref.shape[-1]),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "ck":
        streamed.append(ref.at[b, :, :, cs])
        specs.append(pl.BlockSpec((1, ref.shape[2], block),
                                  lambda k: (tile_of(k), 0, 0)))
      elif kind == "param":
        params = [ref[i, cs] for i in range(ref.shape[0])]
      elif kind == "carry" and carry is None:
        carry = tuple(ref[b, i, cs] for i in range(ref.shape[1]))
    n_streamed_in = sum(k not in ("param", "carry") for k in kinds_in)

    def body(idx, *tile_refs):
      *tile_refs, carry = tile_refs
      new = tile_fn(tile_of(idx[0]), tile_refs[:n_streamed_in],
                    tile_refs[n_streamed_in:], list(carry), params,
                    scratch_refs)
      return tuple(new)

    final = plgpu.emit_pipeline(
        body, grid=(n_tiles,), in_specs=specs[:n_streamed_in],
        out_specs=specs[n_streamed_in:], max_concurrent_steps=2,
        init_carry=carry)(*streamed)
    carry_out = gmem_out[kinds_out.index("carry")]
    for i, v in enumerate(final):
      carry_out[b, i, cs] = v

  return plgpu.kernel(
      kernel, out_type=out_shapes,
      scratch_types=[plgpu.SMEM(s.shape, s.dtype) for s in scratch],
      grid=(batch, n_blocks), grid_names=("batch", "block"))(*arrays)


def _launch_interpret(tile_fn, kinds_in, kinds_out, arrays, out_shapes,
                      scratch, block, tile_of, grid, carry_size):
  """The same tiles through `pl.pallas_call(interpret=True)` on CPU."""
  def spec(kind, shape):
    if kind == "tok":
      return pl.BlockSpec((None, TILE, block),
                          lambda b, c, k: (b, tile_of(k), c))
    if kind == "state":
      return pl.BlockSpec((None, TILE, shape[-1]),
                          lambda b, c, k: (b, tile_of(k), 0))
    if kind == "partial":
      return pl.BlockSpec((None, None, TILE, shape[-1]),
                          lambda b, c, k: (b, c, tile_of(k), 0))
    if kind == "ck":
      return pl.BlockSpec((None, 1, shape[2], block),
                          lambda b, c, k: (b, tile_of(k), 0, c))
    if kind == "param":
      return pl.BlockSpec((shape[0], block), lambda b, c, k: (0, c))
    return pl.BlockSpec((None, shape[1], block), lambda b, c, k: (b, 0, c))

  n_in, n_out = len(arrays), len(out_shapes)
  streamed_in = [i for i, k in enumerate(kinds_in) if k not in ("param", "carry")]
  streamed_out = [i for i, k in enumerate(kinds_out) if k != "carry"]

  def kernel(*refs):
    ins, outs = refs[:n_in], refs[n_in:n_in + n_out]
    carry_ref, *scratch_refs = refs[n_in + n_out:]
    k = pl.program_id(2)

    @pl.when(k == 0)
    def _():
      carry_ref[...] = ins[kinds_in.index("carry")][...]

    param_ref = ins[kinds_in.index("param")]
    params = [param_ref[i] for i in range(param_ref.shape[0])]
    new = tile_fn(tile_of(k), [ins[i] for i in streamed_in],
                  [outs[i] for i in streamed_out],
                  [carry_ref[i] for i in range(carry_size)], params,
                  scratch_refs)
    for i, v in enumerate(new):
      carry_ref[i] = v
    outs[kinds_out.index("carry")][...] = carry_ref[...]

  return pl.pallas_call(
      kernel, grid=grid,
      in_specs=[spec(k, x.shape) for k, x in zip(kinds_in, arrays)],
      out_specs=[spec(k, s.shape) for k, s in zip(kinds_out, out_shapes)],
      out_shape=out_shapes,
      scratch_shapes=[plgpu.SMEM((carry_size, block), jnp.float32)]
      + [plgpu.SMEM(s.shape, s.dtype) for s in scratch],
      interpret=True)(*arrays)
