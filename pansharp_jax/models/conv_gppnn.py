"""A plain convolutional GPPNN-style progressive fusion network.

The light reference architecture: the same three-scale interface and heads as
the full model, with convolutions in place of ASSM and attention blocks.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

_SIZES = {"tiny": 16, "small": 32, "base": 64, "large": 96}


class ConvBlock(nn.Module):
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.Conv(self.features, (3, 3), dtype=self.dtype)(x)
    y = nn.gelu(y)
    y = nn.Conv(self.features, (3, 3), dtype=self.dtype)(y)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), dtype=self.dtype)(x)
    return x + y


def upsample_ms(ms, height, width):
  """Bicubic upsampling of low-resolution MS to PAN size."""
  return jax.image.resize(ms, (ms.shape[0], height, width, ms.shape[-1]),
                          method="bicubic")


class ConvGPPNN(nn.Module):
  """Three-scale fusion: 1/4 -> 1/2 -> full, with a sigmoid head at each scale."""

  num_bands: int
  dim: int = 32
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ms, pan, lms=None, *, train: bool = False):
    del train
    batch, height, width, _ = pan.shape
    if lms is None:
      lms = upsample_ms(ms, height, width)
    x = jnp.concatenate([lms, pan], -1).astype(self.dtype)
    full = ConvBlock(self.dim, self.dtype)(x)
    half = ConvBlock(self.dim * 2, self.dtype)(nn.avg_pool(full, (2, 2), (2, 2)))
    quarter = nn.avg_pool(half, (2, 2), (2, 2))
    quarter = jnp.concatenate([quarter, ms.astype(self.dtype)], -1)
    quarter = ConvBlock(self.dim * 4, self.dtype)(quarter)

    def head(features, skip):
      return jax.nn.sigmoid(
          nn.Conv(self.num_bands, (3, 3), dtype=self.dtype)(features).astype(
              jnp.float32) + jax.scipy.special.logit(jnp.clip(skip, 1e-4, 1 - 1e-4)))

    sr_1_4 = head(quarter, ms)
    up = nn.ConvTranspose(self.dim * 2, (2, 2), (2, 2), dtype=self.dtype)(quarter)
    half = ConvBlock(self.dim * 2, self.dtype)(jnp.concatenate([up, half], -1))
    sr_1_2 = head(half, upsample_ms(ms, height // 2, width // 2))
    up = nn.ConvTranspose(self.dim, (2, 2), (2, 2), dtype=self.dtype)(half)
    full = ConvBlock(self.dim, self.dtype)(jnp.concatenate([up, full], -1))
    return sr_1_4, sr_1_2, head(full, lms)
