"""Small building blocks shared by the ASSM block and the decoder."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from pansharp_jax.ops import backend


# Channel counts up to which CPU depthwise convolutions run densely (below).
_DENSE_DEPTHWISE_MAX_CHANNELS = 32


class DepthwiseConv(nn.Module):
  """A (kernel x kernel) depthwise convolution with bias, 'SAME' padding.

  XLA:CPU runs grouped convolutions 5-10x slower than dense ones, so on CPU
  with few channels the kernel is applied as a dense convolution with a
  diagonal (in, out) matrix: the same result, much faster there. Parameters
  are the same either way.
  """
  kernel: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, 1, channels))
    bias = self.param("bias", nn.initializers.zeros, (channels,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    groups = channels
    if (backend.target() == "cpu"
        and channels <= _DENSE_DEPTHWISE_MAX_CHANNELS):
      kernel, groups = kernel * jnp.eye(channels, dtype=kernel.dtype), 1
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", feature_group_count=groups,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


class SqueezeExcite(nn.Module):
  """Channel weights in (0, 1) from globally pooled features (B, 1, 1, C)."""
  hidden: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    h = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype)(pooled))
    return jax.nn.sigmoid(nn.Dense(x.shape[-1], dtype=self.dtype)(h))


def avg_pool2(x):
  """2x2 average pooling, stride 2 (NHWC)."""
  return nn.avg_pool(x, (2, 2), (2, 2))
