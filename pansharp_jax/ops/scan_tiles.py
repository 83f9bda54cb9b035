"""The fused scan's tile bodies (ops/scan_kernel.py): one tile of TILE time
steps, forward or adjoint, for one (batch, channel block) program.

Plain ref indexing over a tile's refs, so the same body runs in a Mosaic GPU
pipeline and in Pallas' CPU interpreter. The states are lists of (block,)
float32 vectors, one per state (a channel per thread). Only forms Mosaic
GPU lowers: exp and log (no log1p, no logistic), scalar loads of B[t, n]
and C[t, n] (a loaded (d_state,) row cannot be indexed), masks by multiply
(a select needs operands of one shape).
"""

from jax import lax
import jax.numpy as jnp

TILE = 16    # time steps per pipeline stage; states are saved at tile starts
SUB = 8      # steps of a tile whose states the backward pass holds at once


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


def forward_tile(tile, u_ref, d_ref, b_ref, c_ref, z_ref, y_ref, ck_ref,
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


def backward_tile(tile, u_ref, d_ref, b_ref, c_ref, z_ref, dy_ref, ck_ref,
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
