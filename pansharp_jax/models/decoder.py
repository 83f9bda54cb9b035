"""GPPNN progressive decoder over three scales (SPEC §2.4).

  shallow convs: upsampled MS and PAN -> dim (each with the detail
        input, PAN minus MS per band, when the model is given one)
  full: ASSM layer, cross attention (+ WSM), edge-gated low-level refine;
        the result is mixed into both branches (0.35)
  1/2:  pool, ASSM layer, cross attention (0.25), concat -> conv fusion (2 dim)
  1/4:  pool, two ASSM layers, cross attention (0.25), concat + pooled 1/2
        fusion, residual enhance, conv fusion (4 dim), channel context and
        7x7 spatial attention
  up:   stride-2 transposed conv + 1/2 skip, again + full-resolution skip.

Returns the features the three heads read: (1/4, 1/2, full).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from pansharp_jax.models.assm import ASSMLayer
from pansharp_jax.models.cross_attention import CrossModalAttention
from pansharp_jax.models.layers import DepthwiseConv, SqueezeExcite, avg_pool2
from pansharp_jax.models.options import BlockOptions
from pansharp_jax.models.sizes import ModelSize
from pansharp_jax.models.world import WorldOptions, WorldStateMemory


class ConvFusion(nn.Module):
  """3x3 conv, GELU, 3x3 conv, GELU, 1x1 conv (a Dense layer)."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.gelu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    x = nn.gelu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    return nn.Dense(self.features, dtype=self.dtype)(x)


class EdgePreservingRefine(nn.Module):
  """x + refine(x) * edge_gate(x): depthwise 3x3-GELU-1x1 detail, gated by a
  sigmoid bottleneck so edges are sharpened where the gate opens."""
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    refined = nn.Dense(dim, dtype=self.dtype)(
        nn.gelu(DepthwiseConv(3, self.dtype)(x)))
    gate = nn.Dense(max(dim // 4, 1), dtype=self.dtype)(x)
    gate = jax.nn.sigmoid(nn.Dense(dim, dtype=self.dtype)(nn.gelu(gate)))
    return x + refined * gate


class ResidualEnhance(nn.Module):
  """3x3 conv, ReLU, 1x1 conv (scaled by 0.1 where it is added)."""
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Conv(x.shape[-1], (3, 3), dtype=self.dtype)(x))
    return nn.Dense(x.shape[-1], dtype=self.dtype)(y)


class ChannelSpatialAttention(nn.Module):
  """x * (1 + channel context) * (1 + 0.5 * 7x7 spatial attention)."""
  context_hidden: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    context = SqueezeExcite(self.context_hidden, self.dtype)(x)
    spatial = jax.nn.sigmoid(nn.Conv(1, (7, 7), dtype=self.dtype)(x))
    return x * (1 + context) * (1 + 0.5 * spatial)


class GPPNNDecoder(nn.Module):
  size: ModelSize
  blocks: BlockOptions = BlockOptions()
  world: WorldOptions = WorldOptions()
  train: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, lms, pan, detail=None):
    dim, opts = self.size.dim, self.blocks

    def assm(i):
      return ASSMLayer(depth=self.size.depth, size=self.size.layer(i),
                       blocks=opts, train=self.train, dtype=self.dtype,
                       name=f"assm_{i}")

    cross_cls = CrossModalAttention
    if opts.remat:
      cross_cls = nn.remat(cross_cls)

    def cross(i):
      return cross_cls(
          heads=self.size.heads[i], pool=self.size.attn_pool[i],
          dropout=opts.dropout, attn_impl=opts.attn_impl,
          attn_chunk=opts.attn_chunk,
          dca_points=self.world.dca_points if self.world.dca else 0,
          dca_weight=self.world.dca_weight, train=self.train, dtype=self.dtype,
          name=f"cross_{i}")

    conv = lambda n, k, name: nn.Conv(n, (k, k), dtype=self.dtype, name=name)
    if detail is not None:
      lms, pan = (jnp.concatenate([x, detail], -1) for x in (lms, pan))
    ms1 = nn.relu(conv(dim, 3, "ms_first")(lms))
    pan1 = nn.relu(conv(dim, 3, "pan_first")(pan))

    # ---- full resolution ----
    ms1, pan1 = assm(0)(ms1, pan1)
    full = cross(0)(ms1, pan1)
    if self.world.wsm:
      full = WorldStateMemory(self.size.wsm_hidden, self.world.wsm_reset_every,
                              dropout=opts.dropout, train=self.train,
                              dtype=self.dtype, name="wsm")(full)
    full = EdgePreservingRefine(self.dtype, name="edge_refine")(full)
    ms1, pan1 = ms1 + 0.35 * full, pan1 + 0.35 * full

    # ---- 1/2 ----
    ms2, pan2 = assm(1)(avg_pool2(ms1), avg_pool2(pan1))
    mixed = cross(1)(ms2, pan2)
    ms2, pan2 = ms2 + 0.25 * mixed, pan2 + 0.25 * mixed
    half = ConvFusion(2 * dim, self.dtype, name="fusion_half")(
        jnp.concatenate([ms2, pan2], axis=-1))

    # ---- 1/4 ----
    ms4, pan4 = assm(2)(avg_pool2(ms2), avg_pool2(pan2))
    ms4, pan4 = assm(3)(ms4, pan4)
    mixed = cross(2)(ms4, pan4)
    ms4, pan4 = ms4 + 0.25 * mixed, pan4 + 0.25 * mixed
    quarter = avg_pool2(half) + jnp.concatenate([ms4, pan4], axis=-1)
    quarter = quarter + 0.1 * ResidualEnhance(self.dtype)(quarter)
    quarter = ConvFusion(4 * dim, self.dtype, name="fusion_quarter")(quarter)
    quarter = ChannelSpatialAttention(dim, self.dtype)(quarter)

    # ---- up: transposed convs with skips ----
    up = lambda n, name: nn.ConvTranspose(n, (2, 2), (2, 2), dtype=self.dtype,
                                          name=name)
    half = jnp.concatenate([nn.relu(up(2 * dim, "up_half")(quarter)), half], -1)
    full = jnp.concatenate([nn.relu(up(dim, "up_full")(half)), full], -1)
    return quarter, half, full
