"""The pansharpening model: MambaIRv2-style ASSM encoder + GPPNN decoder.

`Pansharpener(...)(ms, pan, lms=None, train=False)` with ms (B, H/r, W/r, C)
in [0, 1] for a ratio r of 2, 4 or 8, pan (B, H, W, 1) and lms (B, H, W, C)
or None (then bicubic upsampling of ms). H and W: any multiple of 4 and of
r; C: any band count. Returns float32 `(sr_1_4, sr_1_2, full)` from sigmoid
heads at 1/4, 1/2 and full PAN resolution, whatever the ratio. Each head adds
its features' correction to the logit of the interpolated MS at its scale
(the MS itself at 1/4 when r = 4, else the pooled lms) and starts at zero, so
an untrained model outputs the interpolated MS.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from pansharp_jax.models.decoder import GPPNNDecoder
from pansharp_jax.models.layers import avg_pool2
from pansharp_jax.models.options import BlockOptions
from pansharp_jax.models.sizes import ModelSize
from pansharp_jax.models.world import WorldOptions, patch_prior_refine

_LOGIT_EPS = 1e-3


def upsample(ms, height, width):
  """Bicubic upsampling of NHWC `ms` to (height, width), clipped to [0, 1]."""
  shape = (ms.shape[0], height, width, ms.shape[-1])
  return jnp.clip(jax.image.resize(ms, shape, method="bicubic"), 0.0, 1.0)


RATIOS = (2, 4, 8)


def check_inputs(ms, pan, lms, num_bands):
  batch, height, width, pan_bands = pan.shape
  if pan_bands != 1 or height % 4 or width % 4:
    raise ValueError(f"pan must be (B, H, W, 1) with H, W multiples of 4, "
                     f"got {pan.shape}")
  if not any(ms.shape == (batch, height // r, width // r, num_bands)
             for r in RATIOS if height % r == 0 and width % r == 0):
    raise ValueError(f"ms must be (B, H/r, W/r, {num_bands}) for pan "
                     f"{pan.shape} and a ratio r in {RATIOS}, got {ms.shape}")
  if lms is not None and lms.shape != (batch, height, width, num_bands):
    raise ValueError(f"lms must be {(batch, height, width, num_bands)}, "
                     f"got {lms.shape}")


class Head(nn.Module):
  """sigmoid(conv3x3(features) + logit(base)); the conv starts at zero."""
  num_bands: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features, base):
    delta = nn.Conv(self.num_bands, (3, 3), dtype=self.dtype,
                    kernel_init=nn.initializers.zeros)(features)
    base = jnp.clip(base.astype(jnp.float32), _LOGIT_EPS, 1 - _LOGIT_EPS)
    return jax.nn.sigmoid(delta.astype(jnp.float32) + jax.scipy.special.logit(base))


class Pansharpener(nn.Module):
  num_bands: int
  size: ModelSize
  blocks: BlockOptions = BlockOptions()
  world: WorldOptions = WorldOptions()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ms, pan, lms=None, *, train: bool = False):
    check_inputs(ms, pan, lms, self.num_bands)
    height, width = pan.shape[1:3]
    ms = ms.astype(jnp.float32)
    lms = upsample(ms, height, width) if lms is None else lms.astype(jnp.float32)

    quarter, half, full = GPPNNDecoder(self.size, self.blocks, self.world,
                                       train, self.dtype, name="decoder")(
                                           lms.astype(self.dtype),
                                           pan.astype(self.dtype))
    base_1_4 = ms if 4 * ms.shape[1] == height else avg_pool2(avg_pool2(lms))
    sr_1_4 = Head(self.num_bands, self.dtype, name="head_quarter")(quarter, base_1_4)
    sr_1_2 = Head(self.num_bands, self.dtype, name="head_half")(
        half, avg_pool2(lms))
    sr_full = Head(self.num_bands, self.dtype, name="head_full")(full, lms)
    if self.world.patch_prior and not train:
      sr_full = patch_prior_refine(sr_full, lms, self.world.patch_size,
                                   self.world.patch_overlap,
                                   self.world.patch_alpha)
    return sr_1_4, sr_1_2, sr_full
