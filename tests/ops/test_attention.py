"""Exact attention: every implementation against a plain softmax reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pansharp_jax.ops.attention import attention


@jax.jit
def _reference(q, k, v):
  scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


def _qkv(q_len, kv_len, batch=2, heads=3, dim=8, seed=0):
  rng = np.random.default_rng(seed)
  q, k, v = (rng.standard_normal((batch, n, heads, dim)).astype(np.float32)
             for n in (q_len, kv_len, kv_len))
  return 2 * q, k, v  # sharper softmax: a stronger test of the rescaling


def _attention(**kwargs):
  return jax.jit(lambda q, k, v: attention(q, k, v, **kwargs))


@pytest.mark.parametrize("q_len,kv_len,chunk", [
    (64, 64, 16),    # whole chunks
    (50, 37, 16),    # padded queries and keys, lengths differ
    (20, 20, 512),   # one chunk, clamped to the length
])
def test_chunked_matches_reference(q_len, kv_len, chunk):
  q, k, v = _qkv(q_len, kv_len)
  got = _attention(impl="chunked", chunk_size=chunk)(q, k, v)
  np.testing.assert_allclose(got, _reference(q, k, v), atol=1e-5, rtol=1e-5)


def test_chunked_gradients_match_reference():
  q, k, v = _qkv(45, 33)
  cotangent = np.random.default_rng(1).standard_normal(q.shape)

  def grads(fn):
    loss = lambda q, k, v: jnp.sum(fn(q, k, v) * cotangent)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)

  got = grads(_attention(impl="chunked", chunk_size=16))
  want = grads(_reference)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


def test_xla_matches_reference():
  q, k, v = _qkv(24, 40)
  np.testing.assert_allclose(_attention(impl="xla")(q, k, v),
                             _reference(q, k, v), atol=1e-5, rtol=1e-5)


def test_keeps_input_dtype():
  q, k, v = _qkv(16, 16)
  got = _attention(impl="chunked", chunk_size=8)(
      *(jnp.asarray(x, jnp.bfloat16) for x in (q, k, v)))
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), _reference(q, k, v),
                             atol=5e-2)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN needs a GPU")
def test_cudnn_matches_chunked_with_unaligned_head_dim():
  q, k, v = (jnp.asarray(x, jnp.bfloat16) for x in _qkv(300, 300, dim=12))
  cudnn = _attention(impl="cudnn")(q, k, v).astype(jnp.float32)
  chunked = _attention(impl="chunked", chunk_size=128)(q, k, v)
  chunked = chunked.astype(jnp.float32)
  np.testing.assert_allclose(cudnn, chunked, atol=2e-2)


def test_unknown_impl_is_an_error():
  q, k, v = _qkv(4, 4)
  with pytest.raises(ValueError, match="impl"):
    attention(q, k, v, impl="flash")


@pytest.mark.parametrize("impl", ["auto", "xla", "chunked"])
def test_numpy_inputs_work_eagerly(impl):
  """Called without jit, NumPy q, k, v give the JAX arrays' result."""
  q, k, v = _qkv(20, 13)
  got = attention(q, k, v, impl=impl, chunk_size=8)
  np.testing.assert_allclose(
      got, attention(*map(jnp.asarray, (q, k, v)), impl=impl, chunk_size=8),
      rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got, _reference(q, k, v), atol=1e-5)
