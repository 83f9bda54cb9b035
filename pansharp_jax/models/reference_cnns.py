"""The field's reference CNNs, as their papers define them (single scale).

Every pansharpening paper compares against these; written here in Flax
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

`Net(num_bands)(ms, pan, lms=None, train=False)` takes the inputs of
`Pansharpener` and returns `(full,)`: one full-resolution output, the
finest-last tuple the losses read (docs/models.md).
"""

import flax.linen as nn
import jax.numpy as jnp

from pansharp_jax.models.pansharpener import check_inputs, upsample
from pansharp_jax.models.world import WorldOptions

# The box filter whose residual is PanNet's high-pass input.
_HIGH_PASS_BOX = 5


def high_pass(x):
  """x minus its 5x5 box average (reflect padding), per band (PanNet)."""
  pad = _HIGH_PASS_BOX // 2
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  box = (_HIGH_PASS_BOX, _HIGH_PASS_BOX)
  return x - nn.avg_pool(padded, box, strides=(1, 1))


class ResBlock(nn.Module):
  """x + conv3x3(ReLU(conv3x3(x))), the block of PanNet and FusionNet."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    return x + nn.Conv(self.features, (3, 3), dtype=self.dtype)(y)


class _ReferenceCNN(nn.Module):
  """Shared call: input checks, lms, float32 output. `world` carries only
  the loss switches (DSC, WAC-X) that apply to any network."""
  num_bands: int
  world: WorldOptions = WorldOptions()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ms, pan, lms=None, *, train: bool = False):
    del train  # no dropout, no routing: train and eval are the same
    check_inputs(ms, pan, lms, self.num_bands)
    ms = ms.astype(jnp.float32)
    lms = (upsample(ms, *pan.shape[1:3]) if lms is None
           else lms.astype(jnp.float32))
    return (self.fuse(ms, pan.astype(jnp.float32), lms).astype(jnp.float32),)

  def fuse(self, ms, pan, lms):
    raise NotImplementedError


class PNN(_ReferenceCNN):
  def fuse(self, ms, pan, lms):
    x = jnp.concatenate([lms, pan], -1).astype(self.dtype)
    x = nn.relu(nn.Conv(64, (9, 9), dtype=self.dtype)(x))
    x = nn.relu(nn.Conv(32, (5, 5), dtype=self.dtype)(x))
    return nn.Conv(self.num_bands, (5, 5), dtype=self.dtype)(x)


class PanNet(_ReferenceCNN):
  features: int = 32
  blocks: int = 4

  def fuse(self, ms, pan, lms):
    ratio = pan.shape[1] // ms.shape[1]
    # Kernel 2r, stride r: each MS pixel spreads over its r x r PAN pixels
    # and their neighbours (the paper's ratio 4: 8 x 8, stride 4).
    ms_up = nn.ConvTranspose(self.num_bands, (2 * ratio, 2 * ratio),
                             strides=(ratio, ratio), padding="SAME",
                             dtype=self.dtype)(high_pass(ms).astype(self.dtype))
    x = jnp.concatenate([ms_up, high_pass(pan).astype(self.dtype)], -1)
    x = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    for _ in range(self.blocks):
      x = ResBlock(self.features, self.dtype)(x)
    return lms + nn.Conv(self.num_bands, (3, 3), dtype=self.dtype)(x)


class DiCNN(_ReferenceCNN):
  features: int = 64

  def fuse(self, ms, pan, lms):
    x = jnp.concatenate([lms, pan], -1).astype(self.dtype)
    x = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    x = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    return lms + nn.Conv(self.num_bands, (3, 3), dtype=self.dtype)(x)


class FusionNet(_ReferenceCNN):
  features: int = 32
  blocks: int = 4

  def fuse(self, ms, pan, lms):
    x = (jnp.broadcast_to(pan, lms.shape) - lms).astype(self.dtype)
    x = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
    for _ in range(self.blocks):
      x = ResBlock(self.features, self.dtype)(x)
    return lms + nn.Conv(self.num_bands, (3, 3), dtype=self.dtype)(x)


NETWORKS = {"pnn": PNN, "pannet": PanNet, "dicnn": DiCNN, "fusionnet": FusionNet}
