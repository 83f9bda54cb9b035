"""Cross-modal attention: MS queries, PAN keys and values (SPEC §2.3).

Exact global multi-head attention over all pixels with O(N) memory
(`ops.attention`), where the original falls back to block-local attention and,
above 100k tokens, to none. Then a 3-way fusion MLP over
[ms, attention, pan->ms], a sigmoid gate mixing with the MS input, an output
projection and dropout; optionally DCA-FIM alignment to the PAN features.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from pansharp_jax.models.world import DeformableAlignment
from pansharp_jax.ops.attention import attention


class CrossModalAttention(nn.Module):
  heads: int
  pool: int = 1            # attend over pool x pool average-pooled tokens
  dropout: float = 0.0
  attn_impl: str = "auto"
  attn_chunk: int = 512
  dca_points: int = 0      # DCA-FIM sampling points; 0 switches it off
  dca_weight: float = 0.3
  train: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ms, pan):
    """ms, pan: (B, H, W, dim) feature maps -> fused (B, H, W, dim)."""
    batch, height, width, dim = ms.shape
    if dim % self.heads:
      raise ValueError(f"CrossModalAttention: dim {dim} is not divisible by "
                       f"{self.heads} heads")
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype, name=name)
    norm = nn.LayerNorm(dtype=self.dtype, name="norm")  # shared pre-norm
    ms_n, pan_n = norm(ms), norm(pan)

    q_in, kv_in = ms_n, pan_n
    if self.pool > 1:
      window = (self.pool, self.pool)
      q_in, kv_in = (nn.avg_pool(t, window, window) for t in (ms_n, pan_n))
    grid = q_in.shape[1:3]
    head_dim = dim // self.heads
    split_heads = lambda t: t.reshape(batch, -1, self.heads, head_dim)
    q = split_heads(dense(dim, "query")(q_in))
    k = split_heads(dense(dim, "key")(kv_in))
    v = split_heads(dense(dim, "value")(kv_in))
    attended = attention(q, k, v, impl=self.attn_impl,
                         chunk_size=self.attn_chunk).reshape(
                             (batch,) + grid + (dim,))
    if self.pool > 1:
      attended = jax.image.resize(attended, ms.shape, "bilinear")

    pan_to_ms = dense(dim, "pan_to_ms")(pan_n)
    fused = dense(2 * dim, "fusion_in")(
        jnp.concatenate([ms, attended, pan_to_ms], axis=-1))
    fused = dense(dim, "fusion_out")(nn.gelu(fused))
    fused = nn.LayerNorm(dtype=self.dtype, name="fusion_norm")(fused)
    gate = jax.nn.sigmoid(dense(dim, "gate")(jnp.concatenate([ms, pan], -1)))
    fused = fused * gate + ms * (1 - gate)
    fused = nn.Dropout(self.dropout, deterministic=not self.train)(
        dense(dim, "out_proj")(fused))
    if self.dca_points:
      fused = DeformableAlignment(self.dca_points, self.dca_weight,
                                  self.dtype, name="dca_fim")(fused, pan)
    return fused
