"""Cross-modal attention: MS queries, PAN keys and values (SPEC §2.3).

Exact global multi-head attention over all pixels with O(N) memory
(`ops.attention`), where the original falls back to block-local attention and,
above 100k tokens, to none. Then a 3-way fusion MLP over
[ms, attention, pan->ms], a sigmoid gate mixing with the MS input, an output
projection and dropout; optionally DCA-FIM alignment to the PAN features.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.models.layers import dense
from pansharp_jax.models.world import DeformableAlignment
from pansharp_jax.ops.attention import attention


class CrossModalAttention(scopes.Module):

  def __init__(self, dim, heads, pool=1, dropout=0.0, attn_impl="auto",
               attn_chunk=512, dca_points=0, dca_weight=0.3, *,
               dtype=jnp.float32, rngs):
    """`pool`: attend over pool x pool average-pooled tokens; `dca_points`:
    DCA-FIM sampling points (0 switches it off)."""
    if dim % heads:
      raise ValueError(f"CrossModalAttention: dim {dim} is not divisible by "
                       f"{heads} heads")
    layer = lambda n_in, n_out: dense(n_in, n_out, dtype=dtype, rngs=rngs)
    self.norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)  # shared pre-norm
    self.query, self.key, self.value = (layer(dim, dim) for _ in range(3))
    self.pan_to_ms = layer(dim, dim)
    self.fusion_in = layer(3 * dim, 2 * dim)
    self.fusion_out = layer(2 * dim, dim)
    self.fusion_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
    self.gate = layer(2 * dim, dim)
    self.out_proj = layer(dim, dim)
    self.dropout = nnx.Dropout(dropout)
    self.dca_fim = (DeformableAlignment(dim, dca_points, dca_weight,
                                        dtype=dtype, rngs=rngs)
                    if dca_points else None)
    self.heads, self.pool = heads, pool
    self.attn_impl, self.attn_chunk = attn_impl, attn_chunk

  def __call__(self, ms, pan, *, train=False, rngs=None):
    """ms, pan: (B, H, W, dim) feature maps -> fused (B, H, W, dim)."""
    batch, height, width, dim = ms.shape
    ms_n, pan_n = self.norm(ms), self.norm(pan)

    q_in, kv_in = ms_n, pan_n
    if self.pool > 1:
      window = (self.pool, self.pool)
      q_in, kv_in = (nnx.avg_pool(t, window, window) for t in (ms_n, pan_n))
    grid = q_in.shape[1:3]
    head_dim = dim // self.heads
    split_heads = lambda t: t.reshape(batch, -1, self.heads, head_dim)
    q = split_heads(self.query(q_in))
    k = split_heads(self.key(kv_in))
    v = split_heads(self.value(kv_in))
    attended = attention(q, k, v, impl=self.attn_impl,
                         chunk_size=self.attn_chunk).reshape(
                             (batch,) + grid + (dim,))
    if self.pool > 1:
      attended = jax.image.resize(attended, ms.shape, "bilinear")

    pan_to_ms = self.pan_to_ms(pan_n)
    fused = self.fusion_in(jnp.concatenate([ms, attended, pan_to_ms], axis=-1))
    fused = self.fusion_norm(self.fusion_out(nnx.gelu(fused)))
    gate = jax.nn.sigmoid(self.gate(jnp.concatenate([ms, pan], -1)))
    fused = fused * gate + ms * (1 - gate)
    fused = self.dropout(self.out_proj(fused), deterministic=not train,
                         rngs=rngs)
    if self.dca_fim is not None:
      fused = self.dca_fim(fused, pan)
    return fused
