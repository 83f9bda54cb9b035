"""Exact multi-head softmax attention with O(N) memory.

`attention(q, k, v)` computes softmax(q k^T / sqrt(head_dim)) v over all keys,
in one of three ways with the same result:
- "cudnn": `jax.nn.dot_product_attention` with cuDNN's fused (flash) kernel.
  GPU only, bf16/fp16 inputs; the head dimension is zero-padded to a multiple
  of 8, which cuDNN needs and which leaves q.k and the output unchanged.
- "chunked": online softmax over key chunks (`lax.scan`), query chunks mapped
  one at a time, with a hand-written backward pass that recomputes the scores
  chunk by chunk. Forward and backward keep only q, k, v, the output and the
  per-query log-sum-exp, so memory is O(N) at any length, on any backend.
- "xla": `jax.nn.dot_product_attention`'s plain XLA path, which materialises
  the (q_len, kv_len) scores: a reference for small inputs.
"auto" takes cuDNN where it applies; elsewhere "xla" when the scores are no
bigger than one chunk tile (chunk_size**2 per head), "chunked" otherwise.
"""

import functools
import math

import jax
from jax import lax
import jax.numpy as jnp

from pansharp_jax.ops import backend

IMPLS = ("auto", "cudnn", "xla", "chunked")
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)


def attention(q, k, v, *, impl="auto", chunk_size=512):
  """Exact global softmax attention.

  Args:
    q: queries, (batch, q_len, heads, head_dim).
    k: keys, (batch, kv_len, heads, head_dim).
    v: values, (batch, kv_len, heads, head_dim).
    impl: "auto", "cudnn", "chunked" or "xla" (see the module docstring).
    chunk_size: query and key chunk length of the chunked path.

  Returns:
    (batch, q_len, heads, head_dim) in q's dtype.
  """
  if impl == "auto":
    if _cudnn_applies(q):
      impl = "cudnn"
    elif q.shape[1] * k.shape[1] <= chunk_size**2:
      impl = "xla"  # one tile: nothing to save, and cheaper to compile
    else:
      impl = "chunked"
  scale = 1.0 / math.sqrt(q.shape[-1])
  if impl == "cudnn":
    return _cudnn(q, k, v, scale)
  if impl == "xla":
    return jax.nn.dot_product_attention(q, k, v, scale=scale,
                                        implementation="xla")
  if impl == "chunked":
    return _chunked(q, k, v, scale, chunk_size)
  raise ValueError(f"attention: impl must be one of {IMPLS}, got {impl!r}")


def _cudnn_applies(q):
  return backend.target() == "gpu" and q.dtype in _CUDNN_DTYPES


def _cudnn(q, k, v, scale):
  head_dim = q.shape[-1]
  pad = -head_dim % 8
  if pad:
    q, k, v = (jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, pad))) for x in (q, k, v))
  out = jax.nn.dot_product_attention(q, k, v, scale=scale,
                                     implementation="cudnn")
  return out[..., :head_dim]


def _chunked(q, k, v, scale, chunk_size):
  """Pads to whole chunks, runs the O(N) kernel in float32, and unpads."""
  if chunk_size < 1:
    raise ValueError(f"attention: chunk_size must be >= 1, got {chunk_size}")
  q_len, kv_len = q.shape[1], k.shape[1]
  q_chunk, kv_chunk = min(chunk_size, q_len), min(chunk_size, kv_len)
  # (batch, len, heads, dim) -> (batch, heads, len, dim), padded to chunks.
  def prepare(x, chunk):
    x = jnp.swapaxes(x.astype(jnp.float32), 1, 2)
    return jnp.pad(x, ((0, 0), (0, 0), (0, -x.shape[2] % chunk), (0, 0)))
  out = _flash(prepare(q * scale, q_chunk), prepare(k, kv_chunk),
               prepare(v, kv_chunk), q_chunk, kv_chunk, kv_len)
  return jnp.swapaxes(out[:, :, :q_len], 1, 2).astype(q.dtype)


def _split(x, chunk):
  """(batch, heads, n * chunk, ...) -> (n, batch, heads, chunk, ...)."""
  b, h, length = x.shape[:3]
  x = x.reshape((b, h, length // chunk, chunk) + x.shape[3:])
  return jnp.moveaxis(x, 2, 0)


def _merge(x):
  """The inverse of `_split`."""
  x = jnp.moveaxis(x, 0, 2)
  return x.reshape(x.shape[:2] + (-1,) + x.shape[4:])


def _key_mask(kv_len, padded_len, chunk):
  """(n_chunks, chunk) booleans: which key positions are real, not padding."""
  return (jnp.arange(padded_len) < kv_len).reshape(-1, chunk)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _flash(q, k, v, q_chunk, kv_chunk, kv_len):
  """Attention of pre-scaled, padded (batch, heads, len, dim) float32 arrays."""
  return _flash_forward(q, k, v, q_chunk, kv_chunk, kv_len)[0]


def _flash_forward(q, k, v, q_chunk, kv_chunk, kv_len):
  """Online softmax; returns the output and the log-sum-exp per query."""
  keys = (_split(k, kv_chunk), _split(v, kv_chunk),
          _key_mask(kv_len, k.shape[2], kv_chunk))

  def one_query_chunk(q_i):
    def step(carry, key_chunk):
      running_max, denom, acc = carry
      k_j, v_j, valid = key_chunk
      s = jnp.einsum("bhqd,bhkd->bhqk", q_i, k_j)
      s = jnp.where(valid, s, -jnp.inf)
      new_max = jnp.maximum(running_max, s.max(axis=-1))
      p = jnp.exp(s - new_max[..., None])
      rescale = jnp.exp(running_max - new_max)
      denom = denom * rescale + p.sum(axis=-1)
      acc = acc * rescale[..., None] + jnp.einsum("bhqk,bhkd->bhqd", p, v_j)
      return (new_max, denom, acc), None

    stats_shape = q_i.shape[:-1]
    init = (jnp.full(stats_shape, -jnp.inf), jnp.zeros(stats_shape),
            jnp.zeros(q_i.shape[:-1] + (v.shape[-1],)))
    (running_max, denom, acc), _ = lax.scan(step, init, keys)
    return acc / denom[..., None], running_max + jnp.log(denom)

  out, lse = lax.map(one_query_chunk, _split(q, q_chunk))
  return _merge(out), _merge(lse)


def _flash_fwd(q, k, v, q_chunk, kv_chunk, kv_len):
  out, lse = _flash_forward(q, k, v, q_chunk, kv_chunk, kv_len)
  return out, (q, k, v, out, lse)


def _flash_bwd(q_chunk, kv_chunk, kv_len, residuals, d_out):
  """FlashAttention's backward: scores recomputed one (q, k) tile at a time."""
  q, k, v, out, lse = residuals
  # d softmax: dS = P * (dP - rowsum(dO * O)).
  delta = jnp.sum(d_out * out, axis=-1)
  queries = tuple(_split(x, q_chunk) for x in (q, d_out, lse, delta))
  keys = (_split(k, kv_chunk), _split(v, kv_chunk),
          _key_mask(kv_len, k.shape[2], kv_chunk))

  def one_key_chunk(dq, key_chunk):
    k_j, v_j, valid = key_chunk

    def one_query_chunk(carry, query_chunk):
      dk_j, dv_j = carry
      q_i, do_i, lse_i, delta_i = query_chunk
      s = jnp.einsum("bhqd,bhkd->bhqk", q_i, k_j)
      p = jnp.where(valid, jnp.exp(s - lse_i[..., None]), 0.0)
      dv_j = dv_j + jnp.einsum("bhqk,bhqd->bhkd", p, do_i)
      ds = p * (jnp.einsum("bhqd,bhkd->bhqk", do_i, v_j) - delta_i[..., None])
      dk_j = dk_j + jnp.einsum("bhqk,bhqd->bhkd", ds, q_i)
      return (dk_j, dv_j), jnp.einsum("bhqk,bhkd->bhqd", ds, k_j)

    (dk_j, dv_j), dq_parts = lax.scan(
        one_query_chunk, (jnp.zeros_like(k_j), jnp.zeros_like(v_j)), queries)
    return dq + _merge(dq_parts), (dk_j, dv_j)

  dq, (dk, dv) = lax.scan(one_key_chunk, jnp.zeros_like(q), keys)
  return dq, _merge(dk), _merge(dv)


_flash.defvjp(_flash_fwd, _flash_bwd)
