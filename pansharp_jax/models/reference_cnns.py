"""The field's reference CNNs, as their papers define them (single scale).

Every pansharpening paper compares against these; written here in Flax NNX
from the papers so they train and score on the same code as our model:
- PNN (Masi et al., "Pansharpening by convolutional neural networks",
  Remote Sensing 2016): upsampled MS + PAN -> conv 9x9 (64), ReLU, conv 5x5
  (32), ReLU, conv 5x5 (C); no residual.
- PanNet (Yang et al., "PanNet: a deep network architecture for
  pan-sharpening", ICCV 2017): the high-pass MS (learned transposed-conv
  upsampling, kernel 2r, stride r) and high-pass PAN -> conv 3x3 (32), ReLU,
  4 ResNet blocks, conv 3x3 (C), added to the upsampled MS.
- DiCNN (He et al., "Pansharpening via detail injection based
  convolutional neural networks", IEEE JSTARS 2019; DiCNN1): upsampled MS +
  PAN -> 3 convs 3x3 (64, 64, C) with ReLUs, added to the upsampled MS.
- FusionNet (Deng et al., "Detail injection-based deep convolutional neural
  networks for pansharpening", IEEE TGRS 2021): PAN replicated over the C
  bands minus the upsampled MS -> conv 3x3 (32), ReLU, 4 ResNet blocks,
  conv 3x3 (C), added to the upsampled MS.
Convolutions pad 'SAME' so the output covers the input (PNN's paper uses
'valid' ones and crops the reference; the parameters are the same).

`Net(num_bands, ratio, rngs=...)(ms, pan, lms=None, train=False)` takes the
inputs of `Pansharpener` and returns `(full,)`: one full-resolution output,
the finest-last tuple the losses read (docs/models.md). `linen_names` maps
the layers to the names the Linen versions gave them (models/linen_paths.py).
"""

import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.models.layers import ResBlock, conv
from pansharp_jax.models.pansharpener import check_inputs, upsample

# The box filter whose residual is PanNet's high-pass input.
_HIGH_PASS_BOX = 5


def high_pass(x):
  """x minus its 5x5 box average (reflect padding), per band (PanNet)."""
  pad = _HIGH_PASS_BOX // 2
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  box = (_HIGH_PASS_BOX, _HIGH_PASS_BOX)
  return x - nnx.avg_pool(padded, box, strides=(1, 1))


class ReferenceCNN(scopes.Module):
  """Shared call: input checks, lms, float32 output; a subclass builds its
  layers in `__init__` and computes in `fuse` (docs/models.md)."""

  def __init__(self, num_bands, dtype):
    self.num_bands = num_bands
    self.dtype = dtype

  def __call__(self, ms, pan, lms=None, *, train=False, rngs=None):
    del train, rngs  # no dropout, no routing: train and eval are the same
    check_inputs(ms, pan, lms, self.num_bands)
    ms = ms.astype(jnp.float32)
    lms = (upsample(ms, *pan.shape[1:3]) if lms is None
           else lms.astype(jnp.float32))
    return (self.fuse(ms, pan.astype(jnp.float32), lms).astype(jnp.float32),)

  def fuse(self, ms, pan, lms):
    raise NotImplementedError


class _ResNet(ReferenceCNN):
  """conv3x3 (features), ReLU, `blocks` ResBlocks, conv3x3 (C)."""

  def __init__(self, num_bands, features_in, features, blocks, dtype, rngs):
    super().__init__(num_bands, dtype)
    self.conv_in = conv(features_in, features, 3, dtype=dtype, rngs=rngs)
    self.blocks = blocks
    for i in range(blocks):
      setattr(self, f"res_{i}", ResBlock(features, dtype=dtype, rngs=rngs))
    self.conv_out = conv(features, num_bands, 3, dtype=dtype, rngs=rngs)

  def residual(self, x):
    x = nnx.relu(self.conv_in(x))
    for i in range(self.blocks):
      x = getattr(self, f"res_{i}")(x)
    return self.conv_out(x)


class PNN(ReferenceCNN):
  linen_names = {"conv_1": "Conv_0", "conv_2": "Conv_1", "conv_3": "Conv_2"}

  def __init__(self, num_bands, ratio=4, *, dtype=jnp.float32, rngs):
    del ratio
    super().__init__(num_bands, dtype)
    self.conv_1 = conv(num_bands + 1, 64, 9, dtype=dtype, rngs=rngs)
    self.conv_2 = conv(64, 32, 5, dtype=dtype, rngs=rngs)
    self.conv_3 = conv(32, num_bands, 5, dtype=dtype, rngs=rngs)

  def fuse(self, ms, pan, lms):
    x = jnp.concatenate([lms, pan], -1).astype(self.dtype)
    x = nnx.relu(self.conv_1(x))
    x = nnx.relu(self.conv_2(x))
    return self.conv_3(x)


class PanNet(_ResNet):
  def __init__(self, num_bands, ratio=4, *, features=32, blocks=4,
               dtype=jnp.float32, rngs):
    super().__init__(num_bands, num_bands + 1, features, blocks, dtype, rngs)
    # Kernel 2r, stride r: each MS pixel spreads over its r x r PAN pixels
    # and their neighbours (the paper's ratio 4: 8 x 8, stride 4).
    self.upsample = nnx.ConvTranspose(
        num_bands, num_bands, (2 * ratio, 2 * ratio), strides=(ratio, ratio),
        padding="SAME", dtype=dtype, rngs=rngs)

  @property
  def linen_names(self):
    return {"upsample": "ConvTranspose_0", "conv_in": "Conv_0",
            "conv_out": "Conv_1",
            **{f"res_{i}": f"ResBlock_{i}" for i in range(self.blocks)}}

  def fuse(self, ms, pan, lms):
    ms_up = self.upsample(high_pass(ms).astype(self.dtype))
    x = jnp.concatenate([ms_up, high_pass(pan).astype(self.dtype)], -1)
    return lms + self.residual(x)


class DiCNN(ReferenceCNN):
  linen_names = {"conv_1": "Conv_0", "conv_2": "Conv_1", "conv_3": "Conv_2"}

  def __init__(self, num_bands, ratio=4, *, features=64, dtype=jnp.float32,
               rngs):
    del ratio
    super().__init__(num_bands, dtype)
    self.conv_1 = conv(num_bands + 1, features, 3, dtype=dtype, rngs=rngs)
    self.conv_2 = conv(features, features, 3, dtype=dtype, rngs=rngs)
    self.conv_3 = conv(features, num_bands, 3, dtype=dtype, rngs=rngs)

  def fuse(self, ms, pan, lms):
    x = jnp.concatenate([lms, pan], -1).astype(self.dtype)
    x = nnx.relu(self.conv_1(x))
    x = nnx.relu(self.conv_2(x))
    return lms + self.conv_3(x)


class FusionNet(_ResNet):
  def __init__(self, num_bands, ratio=4, *, features=32, blocks=4,
               dtype=jnp.float32, rngs):
    del ratio
    super().__init__(num_bands, num_bands, features, blocks, dtype, rngs)

  @property
  def linen_names(self):
    return {"conv_in": "Conv_0", "conv_out": "Conv_1",
            **{f"res_{i}": f"ResBlock_{i}" for i in range(self.blocks)}}

  def fuse(self, ms, pan, lms):
    x = (jnp.broadcast_to(pan, lms.shape) - lms).astype(self.dtype)
    return lms + self.residual(x)


NETWORKS = {"pnn": PNN, "pannet": PanNet, "dicnn": DiCNN, "fusionnet": FusionNet}
