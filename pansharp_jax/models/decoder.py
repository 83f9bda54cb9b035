"""GPPNN progressive decoder over three scales (SPEC §2.4).

  shallow convs: upsampled MS and PAN -> dim (each with the detail
        input, PAN minus MS per band, when the model is given one)
  full: ASSM layer, cross attention (+ WSM), edge-gated low-level refine;
        the result is mixed into both branches (0.35)
  1/2:  pool, ASSM layer, cross attention (0.25), concat -> conv fusion (2 dim)
  1/4:  pool, two ASSM layers, cross attention (0.25), concat + pooled 1/2
        fusion, residual enhance, conv fusion (4 dim), channel context and
        7x7 spatial attention
  up:   stride-2 transposed conv + 1/2 skip, again + full-resolution skip;
        then `full_refine` residual conv blocks (FusionNet's ResBlock) on
        the full features (0: none, SPEC): capacity at full resolution,
        where the detail of ratio 2 lives.

Returns the features the three heads read: (1/4, 1/2, full). `linen_names`:
the Linen versions' names of the layers (models/linen_paths.py).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.models.assm import ASSMLayer
from pansharp_jax.models.cross_attention import CrossModalAttention
from pansharp_jax.models.layers import (DepthwiseConv, ResBlock, SqueezeExcite,
                                        avg_pool2, conv, dense)
from pansharp_jax.models.options import BlockOptions
from pansharp_jax.models.sizes import ModelSize
from pansharp_jax.models.world import WorldOptions, WorldStateMemory


class ConvFusion(scopes.Module):
  """3x3 conv, GELU, 3x3 conv, GELU, 1x1 conv (a Linear layer)."""
  linen_names = {"conv_1": "Conv_0", "conv_2": "Conv_1", "out": "Dense_0"}

  def __init__(self, features_in, features, *, dtype=jnp.float32, rngs):
    self.conv_1 = conv(features_in, features, 3, dtype=dtype, rngs=rngs)
    self.conv_2 = conv(features, features, 3, dtype=dtype, rngs=rngs)
    self.out = dense(features, features, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = nnx.gelu(self.conv_1(x))
    return self.out(nnx.gelu(self.conv_2(x)))


class EdgePreservingRefine(scopes.Module):
  """x + refine(x) * edge_gate(x): depthwise 3x3-GELU-1x1 detail, gated by a
  sigmoid bottleneck so edges are sharpened where the gate opens."""
  linen_names = {"detail": "Dense_0", "depthwise": "DepthwiseConv_0",
                 "gate_in": "Dense_1", "gate_out": "Dense_2"}

  def __init__(self, dim, *, dtype=jnp.float32, rngs):
    self.depthwise = DepthwiseConv(dim, 3, dtype=dtype, rngs=rngs)
    self.detail = dense(dim, dim, dtype=dtype, rngs=rngs)
    self.gate_in = dense(dim, max(dim // 4, 1), dtype=dtype, rngs=rngs)
    self.gate_out = dense(max(dim // 4, 1), dim, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    refined = self.detail(nnx.gelu(self.depthwise(x)))
    gate = jax.nn.sigmoid(self.gate_out(nnx.gelu(self.gate_in(x))))
    return x + refined * gate


class ResidualEnhance(scopes.Module):
  """3x3 conv, ReLU, 1x1 conv (scaled by 0.1 where it is added)."""
  linen_names = {"conv": "Conv_0", "out": "Dense_0"}

  def __init__(self, channels, *, dtype=jnp.float32, rngs):
    self.conv = conv(channels, channels, 3, dtype=dtype, rngs=rngs)
    self.out = dense(channels, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.conv(x)))


class ChannelSpatialAttention(scopes.Module):
  """x * (1 + channel context) * (1 + 0.5 * 7x7 spatial attention)."""
  linen_names = {"context": "SqueezeExcite_0", "spatial": "Conv_0"}

  def __init__(self, channels, context_hidden, *, dtype=jnp.float32, rngs):
    self.context = SqueezeExcite(channels, context_hidden, dtype=dtype,
                                 rngs=rngs)
    self.spatial = conv(channels, 1, 7, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    spatial = jax.nn.sigmoid(self.spatial(x))
    return x * (1 + self.context(x)) * (1 + 0.5 * spatial)


class GPPNNDecoder(scopes.Module):
  linen_names = {"enhance": "ResidualEnhance_0",
                 "attention": "ChannelSpatialAttention_0"}

  def __init__(self, num_bands, size: ModelSize,
               blocks: BlockOptions = BlockOptions(),
               world: WorldOptions = WorldOptions(), *, detail_input=False,
               full_refine=0, dtype=jnp.float32, rngs):
    dim, opts = size.dim, blocks
    kw = dict(dtype=dtype, rngs=rngs)
    for i in range(4):
      setattr(self, f"assm_{i}", ASSMLayer(dim, size.depth, size.layer(i),
                                           opts, **kw))
    for i in range(3):
      setattr(self, f"cross_{i}", CrossModalAttention(
          dim, size.heads[i], size.attn_pool[i], opts.dropout, opts.attn_impl,
          opts.attn_chunk, world.dca_points if world.dca else 0,
          world.dca_weight, **kw))
    # With the detail input both convs also read its num_bands channels.
    detail = num_bands if detail_input else 0
    self.ms_first = conv(num_bands + detail, dim, 3, **kw)
    self.pan_first = conv(1 + detail, dim, 3, **kw)
    self.wsm = (WorldStateMemory(dim, size.wsm_hidden, world.wsm_reset_every,
                                 dropout=opts.dropout, rngs=rngs)
                if world.wsm else None)
    self.edge_refine = EdgePreservingRefine(dim, **kw)
    self.fusion_half = ConvFusion(2 * dim, 2 * dim, **kw)
    self.enhance = ResidualEnhance(2 * dim, **kw)
    self.fusion_quarter = ConvFusion(2 * dim, 4 * dim, **kw)
    self.attention = ChannelSpatialAttention(4 * dim, dim, **kw)
    self.up_half = nnx.ConvTranspose(4 * dim, 2 * dim, (2, 2), (2, 2), **kw)
    self.up_full = nnx.ConvTranspose(4 * dim, dim, (2, 2), (2, 2), **kw)
    # No Linen counterpart: runs before the option have none of these.
    self.full_refine = full_refine
    for i in range(full_refine):
      setattr(self, f"refine_{i}", ResBlock(2 * dim, **kw))
    self.remat = opts.remat

  def cross(self, i, ms, pan, train, rngs):
    """Cross attention `i`, rematerialised if `remat`. Its dropout key is
    drawn out here: `rngs` must not be advanced inside the remat trace."""
    def run(block, ms, pan, key):
      block_rngs = nnx.Rngs(dropout=key) if train else None
      return block(ms, pan, train=train, rngs=block_rngs)

    if self.remat:
      run = nnx.remat(run)
    return run(getattr(self, f"cross_{i}"), ms, pan,
               rngs.dropout() if train else None)

  def __call__(self, lms, pan, detail=None, *, train=False, rngs=None):
    assm = lambda i, ms, pan: getattr(self, f"assm_{i}")(ms, pan, train=train,
                                                        rngs=rngs)
    cross = lambda i, ms, pan: self.cross(i, ms, pan, train, rngs)
    if detail is not None:
      lms, pan = (jnp.concatenate([x, detail], -1) for x in (lms, pan))
    ms1 = nnx.relu(self.ms_first(lms))
    pan1 = nnx.relu(self.pan_first(pan))

    # ---- full resolution ----
    ms1, pan1 = assm(0, ms1, pan1)
    full = cross(0, ms1, pan1)
    if self.wsm is not None:
      full = self.wsm(full, train=train, rngs=rngs)
    full = self.edge_refine(full)
    ms1, pan1 = ms1 + 0.35 * full, pan1 + 0.35 * full

    # ---- 1/2 ----
    ms2, pan2 = assm(1, avg_pool2(ms1), avg_pool2(pan1))
    mixed = cross(1, ms2, pan2)
    ms2, pan2 = ms2 + 0.25 * mixed, pan2 + 0.25 * mixed
    half = self.fusion_half(jnp.concatenate([ms2, pan2], axis=-1))

    # ---- 1/4 ----
    ms4, pan4 = assm(2, avg_pool2(ms2), avg_pool2(pan2))
    ms4, pan4 = assm(3, ms4, pan4)
    mixed = cross(2, ms4, pan4)
    ms4, pan4 = ms4 + 0.25 * mixed, pan4 + 0.25 * mixed
    quarter = avg_pool2(half) + jnp.concatenate([ms4, pan4], axis=-1)
    quarter = quarter + 0.1 * self.enhance(quarter)
    quarter = self.attention(self.fusion_quarter(quarter))

    # ---- up: transposed convs with skips ----
    half = jnp.concatenate([nnx.relu(self.up_half(quarter)), half], -1)
    full = jnp.concatenate([nnx.relu(self.up_full(half)), full], -1)
    for i in range(self.full_refine):
      full = getattr(self, f"refine_{i}")(full)
    return quarter, half, full
