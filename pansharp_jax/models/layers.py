"""Small building blocks shared by the ASSM block and the decoder."""

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.ops import backend


# Channel counts up to which CPU depthwise convolutions run densely (below).
_DENSE_DEPTHWISE_MAX_CHANNELS = 32


def dense(features_in, features_out, *, dtype, rngs, **kwargs):
  """A Linear layer (a 1x1 convolution on NHWC maps) with float32
  parameters, computing in `dtype`."""
  return nnx.Linear(features_in, features_out, dtype=dtype, rngs=rngs, **kwargs)


def conv(features_in, features_out, kernel, *, dtype, rngs, **kwargs):
  """A (kernel x kernel) 'SAME' convolution, float32 parameters."""
  return nnx.Conv(features_in, features_out, (kernel, kernel), dtype=dtype,
                  rngs=rngs, **kwargs)


class DepthwiseConv(scopes.Module):
  """A (kernel x kernel) depthwise convolution with bias, 'SAME' padding.

  XLA:CPU runs grouped convolutions 5-10x slower than dense ones, so on CPU
  with few channels the kernel is applied as a dense convolution with a
  diagonal (in, out) matrix: the same result, much faster there. Parameters
  are the same either way.
  """

  def __init__(self, channels, kernel, *, dtype=jnp.float32, rngs):
    self.kernel = nnx.Param(jax.nn.initializers.lecun_normal()(
        rngs.params(), (kernel, kernel, 1, channels)))
    self.bias = nnx.Param(jnp.zeros((channels,)))
    self.dtype = dtype

  def __call__(self, x):
    channels = x.shape[-1]
    x, kernel, bias = (jnp.asarray(t, self.dtype)
                       for t in (x, self.kernel[...], self.bias[...]))
    groups = channels
    if (backend.target() == "cpu"
        and channels <= _DENSE_DEPTHWISE_MAX_CHANNELS):
      kernel, groups = kernel * jnp.eye(channels, dtype=kernel.dtype), 1
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", feature_group_count=groups,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


class SqueezeExcite(scopes.Module):
  """Channel weights in (0, 1) from globally pooled features (B, 1, 1, C)."""
  linen_names = {"reduce": "Dense_0", "expand": "Dense_1"}

  def __init__(self, channels, hidden, *, dtype=jnp.float32, rngs):
    self.reduce = dense(channels, hidden, dtype=dtype, rngs=rngs)
    self.expand = dense(hidden, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    return jax.nn.sigmoid(self.expand(nnx.gelu(self.reduce(pooled))))


def avg_pool2(x):
  """2x2 average pooling, stride 2 (NHWC)."""
  return nnx.avg_pool(x, (2, 2), (2, 2))


class ResBlock(scopes.Module):
  """x + conv3x3(ReLU(conv3x3(x))), the block of PanNet and FusionNet
  and of our full-resolution refinement."""
  linen_names = {"conv_in": "Conv_0", "conv_out": "Conv_1"}

  def __init__(self, features, *, dtype, rngs):
    self.conv_in = conv(features, features, 3, dtype=dtype, rngs=rngs)
    self.conv_out = conv(features, features, 3, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return x + self.conv_out(nnx.relu(self.conv_in(x)))
