"""Mamba's selective scan (S6): three pure-JAX forms and a fused GPU kernel.

For batch b, channel d and state n the recurrence is

  h[t] = exp(delta[t] * A) * h[t-1] + delta[t] * B[t] * u[t]
  y[t] = sum_n C[t, n] * h[t, n] + D * u[t]

with the semantics of mamba's `selective_scan_ref`, laid out channel-last.
Every step is an affine map h -> a * h + b, and composing two of them,
(a1, b1) then (a2, b2), gives (a1 * a2, a2 * b1 + b2): an associative
operator, so the scan also has a parallel (log-depth) form.

Four ways to run it, all with the same results:
- "sequential": `lax.scan` over time, discretising one step at a time. The
  reference, and the fast path on CPU.
- "associative": `lax.associative_scan` over the whole sequence. Parallel, but
  it holds several (batch, length, channels, d_state) tensors at once.
- "chunked": the associative scan inside chunks of `chunk_size` steps, the
  state carried across chunks by `lax.scan`, each chunk rematerialised. Only
  one chunk's discretised tensors exist at a time, and the backward pass keeps
  only the chunk-boundary states. The fast path on GPU/TPU for long inputs.
- "fused": Pallas kernels for NVIDIA GPUs (ops/scan_kernel.py) that read
  each input once and keep the states in registers; float32 compute. Opt-in
  until the GPU suite has verified it on a device; `interpret=True` runs it
  on CPU (slowly, for tests).
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp

from pansharp_jax.ops import backend
from pansharp_jax.ops import scan_kernel

METHODS = ("auto", "associative", "sequential", "chunked", "fused")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=True, *, reverse=False, h0=None,
                   return_last_state=False, method="auto", chunk_size=256,
                   interpret=False):
  """Runs the S6 selective scan.

  Args:
    u: inputs, (batch, length, channels).
    delta: step sizes before the bias and softplus, (batch, length, channels).
    A: state matrix (diagonal per channel), (channels, d_state); negative
      for a stable scan (mamba uses A = -exp(A_log)).
    B: input projection per token, (batch, length, d_state).
    C: output projection per token, (batch, length, d_state).
    D: optional skip connection, (channels,).
    z: optional gate, (batch, length, channels); the output is multiplied by
      silu(z).
    delta_bias: optional bias added to delta, (channels,).
    delta_softplus: whether delta goes through softplus (after the bias).
    reverse: scan from the last token to the first. The last state is then
      the state after processing t = 0.
    h0: optional initial state, (batch, channels, d_state); zeros if None.
    return_last_state: also return the final state.
    method: "sequential", "associative", "chunked", "fused" or "auto"
      (sequential on CPU, where it is the fastest; chunked on GPU/TPU).
    chunk_size: steps per chunk for method "chunked"; the length is padded
      to a multiple of it with identity steps (clamped to the length).
    interpret: method "fused" only: run its kernels in Pallas' interpreter
      (CPU, slow); without it "fused" needs an NVIDIA GPU.

  Returns:
    y with the shape and dtype of u and, if return_last_state, the last state
    (batch, channels, d_state). Everything is computed in float32 (float64
    when given float64), whatever the input dtype; the state is returned in
    that compute dtype.
  """
  _check_shapes(u, delta, A, B, C, D, z, delta_bias, h0)
  if method == "auto":
    method = "sequential" if backend.target() == "cpu" else "chunked"
  if method == "fused":
    y, last_state = scan_kernel.fused_scan(
        u, delta, A, B, C, D, z, delta_bias, h0,
        delta_softplus=delta_softplus, reverse=reverse, interpret=interpret)
    return (y, last_state) if return_last_state else y
  if method == "chunked":
    if chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    core = functools.partial(_chunked, chunk_size=chunk_size)
  elif method == "associative":
    core = _associative
  elif method == "sequential":
    core = _sequential
  else:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")

  out_dtype = u.dtype
  dtype = jnp.promote_types(
      jnp.float32, jnp.result_type(u, delta, A, B, C))
  # jnp.asarray: NumPy inputs become JAX arrays (the scan cores use `.at`).
  u, delta, A, B, C = (jnp.asarray(x, dtype) for x in (u, delta, A, B, C))
  if delta_bias is not None:
    delta = delta + delta_bias.astype(dtype)
  if delta_softplus:
    delta = jax.nn.softplus(delta)
  if h0 is None:
    h0 = jnp.zeros((u.shape[0],) + A.shape, dtype)
  h0 = jnp.asarray(h0, dtype)

  # A reversed scan is the forward scan of the time-reversed sequence.
  flip = (lambda x: jnp.flip(x, axis=1)) if reverse else (lambda x: x)
  y, last_state = core(flip(delta), flip(u), A, flip(B), flip(C), h0)
  y = flip(y)

  if D is not None:
    y = y + u * D.astype(dtype)
  if z is not None:
    y = y * jax.nn.silu(z.astype(dtype))
  y = y.astype(out_dtype)
  return (y, last_state) if return_last_state else y


def _check_shapes(u, delta, A, B, C, D, z, delta_bias, h0):
  """Raises ValueError naming the first argument whose shape does not fit."""
  if u.ndim != 3:
    raise ValueError(f"selective_scan: u must be (batch, length, channels), "
                     f"got {u.shape}")
  if A.ndim != 2:
    raise ValueError(f"selective_scan: A must be (channels, d_state), got "
                     f"{A.shape}")
  batch, length, channels = u.shape
  if length < 1:
    raise ValueError(f"selective_scan: u has no time steps, shape {u.shape}")
  d_state = A.shape[1]
  expected = {
      "delta": (delta, (batch, length, channels)),
      "A": (A, (channels, d_state)),
      "B": (B, (batch, length, d_state)),
      "C": (C, (batch, length, d_state)),
      "D": (D, (channels,)),
      "z": (z, (batch, length, channels)),
      "delta_bias": (delta_bias, (channels,)),
      "h0": (h0, (batch, channels, d_state)),
  }
  for name, (x, shape) in expected.items():
    if x is not None and x.shape != shape:
      raise ValueError(f"selective_scan: {name} must have shape {shape} for "
                       f"u {u.shape} and A {A.shape}, got {x.shape}")


def _discretise(delta, u, A, B):
  """The per-step affine maps h -> a * h + b, each (batch, ..., ch, d_state)."""
  a = jnp.exp(delta[..., None] * A)
  b = (delta * u)[..., None] * B[..., None, :]
  return a, b


def _readout(h, C):
  """y = sum_n C[n] h[n]; a multiply-and-sum, so GPUs never round to TF32."""
  return jnp.sum(h * C[..., None, :], axis=-1)


def _combine(first, second):
  """Composes two affine maps: first, then second."""
  a1, b1 = first
  a2, b2 = second
  return a1 * a2, a2 * b1 + b2


def _sequential(delta, u, A, B, C, h0):
  """One `lax.scan` step per token; nothing of size (B, L, D, N) up front."""
  # Remat each step: the backward pass then keeps one state per step instead
  # of the state, a and b (about 1.3x instead of 3.4x one (B, L, D, N) tensor)
  # at no measurable cost in time on CPU.
  @functools.partial(jax.checkpoint, prevent_cse=False)
  def step(h, inputs):
    delta_t, u_t, B_t, C_t = inputs
    a, b = _discretise(delta_t, u_t, A, B_t)
    h = a * h + b
    return h, _readout(h, C_t)

  time_major = [jnp.moveaxis(x, 1, 0) for x in (delta, u, B, C)]
  last_state, y = lax.scan(step, h0, time_major)
  return jnp.moveaxis(y, 0, 1), last_state


def _associative(delta, u, A, B, C, h0):
  """`lax.associative_scan` over the whole length."""
  a, b = _discretise(delta, u, A, B)
  # Fold the initial state into the first step: h[0] = a[0] h0 + b[0].
  b = b.at[:, 0].add(a[:, 0] * h0)
  _, h = lax.associative_scan(_combine, (a, b), axis=1)
  return _readout(h, C), h[:, -1]


def _chunked(delta, u, A, B, C, h0, *, chunk_size):
  """Associative scans over chunks, the state carried between them."""
  batch, length, _ = u.shape
  chunk = min(chunk_size, length)
  pad = -length % chunk
  # delta = 0 makes a step the identity (a = 1, b = 0), so the padding at
  # the end leaves the last state unchanged.
  chunks = [
      jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
      .reshape(batch, -1, chunk, x.shape[-1]).swapaxes(0, 1)
      for x in (delta, u, B, C)
  ]

  # Remat: the backward pass keeps only each chunk's input state and
  # recomputes the chunk's discretised tensors.
  @functools.partial(jax.checkpoint, prevent_cse=False)
  def step(h, inputs):
    delta_c, u_c, B_c, C_c = inputs
    y, h = _associative(delta_c, u_c, A, B_c, C_c, h)
    return h, y

  last_state, y = lax.scan(step, h0, chunks)
  y = y.swapaxes(0, 1).reshape(batch, length + pad, -1)
  return y[:, :length], last_state
