"""The pansharpening model: MambaIRv2-style ASSM encoder + GPPNN decoder.

`Pansharpener(num_bands, size, ..., rngs=...)(ms, pan, lms=None, train=False)`
with ms (B, H/r, W/r, C)
in [0, 1] for a ratio r of 2, 4 or 8, pan (B, H, W, 1) and lms (B, H, W, C)
or None (then bicubic upsampling of ms). H and W: any multiple of 4 and of
r; C: any band count. Returns float32 `(sr_1_4, sr_1_2, full)` from heads
at 1/4, 1/2 and full PAN resolution, whatever the ratio. Each head adds its
features' correction to the interpolated MS at its scale (the MS itself at
1/4 when r = 4, else the pooled lms) and starts at zero, so an untrained
model outputs the interpolated MS. `head`: 'sigmoid' (SPEC: the correction
is added to the MS's logit) or 'residual' (added to the MS itself, as the
detail-injection CNNs do; see HEADS). `input_norm`: 'none', 'sample' or
'band': the decoder sees lms and pan divided by their per-sample means (for
lms, one mean over its bands or one per band), and a residual head's
correction is multiplied back by the lms mean(s), so the network works at
one scale whatever part of the range a scene occupies. `detail_input`:
'none' (SPEC) or 'pan_minus_ms': both shallow convs also read the PAN
replicated over the bands minus lms (after input_norm), the detail that
FusionNet's convs start from (see DETAIL_INPUTS). `full_refine`: residual
conv blocks on the full-resolution features before the full head (0: none,
SPEC; decoder.py).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.models.decoder import GPPNNDecoder
from pansharp_jax.models.layers import avg_pool2, conv
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


# sigmoid: sigmoid(conv(features) + logit(base)), output inside (0, 1) by
# construction (SPEC §2.4). Its slope is p(1 - p): 0.09 at p = 0.1 against
# 0.25 at 0.5, so on dark scenes (11-bit products fill ~0.02-0.35 of the
# range) a correction of a given size needs a several times larger conv
# output, and its gradient shrinks as much. residual: base + conv(features),
# the same slope everywhere; the output is clipped to [0, 1] where it is
# scored, not in training.
HEADS = ("sigmoid", "residual")
INPUT_NORMS = ("none", "sample", "band")
# pan_minus_ms: the per-band detail a head has to inject, given to the first
# convs explicitly; without it they read lms and pan apart (each conv is
# followed by a ReLU), and the network must learn the difference deeper in.
DETAIL_INPUTS = ("none", "pan_minus_ms")
# The options a config names as model.<option>, each with the value that a
# config, or a run saved before the option existed, stands for without it.
CONFIG_OPTIONS = {"head": "sigmoid", "input_norm": "none",
                  "detail_input": "none", "full_refine": 0}
# Floor of the per-sample means of input_norm=sample (a black tile).
_NORM_FLOOR = 1e-3


class Head(scopes.Module):
  """The correction conv3x3(features), zero at the start, applied to `base`
  through the `kind` of HEADS; `scale` multiplies a residual correction."""
  linen_names = {"conv": "Conv_0"}

  def __init__(self, features, num_bands, kind="sigmoid", *,
               dtype=jnp.float32, rngs):
    self.conv = conv(features, num_bands, 3, dtype=dtype, rngs=rngs,
                     kernel_init=jax.nn.initializers.zeros)
    self.kind = kind

  def __call__(self, features, base, scale=1.0):
    delta = self.conv(features)
    delta, base = delta.astype(jnp.float32), base.astype(jnp.float32)
    if self.kind == "residual":
      return base + scale * delta
    base = jnp.clip(base, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return jax.nn.sigmoid(delta + jax.scipy.special.logit(base))


def _sample_mean(x, per_band=False):
  """(B, 1, 1, 1) mean of each sample, or (B, 1, 1, C) of each of its
  bands, at least _NORM_FLOOR."""
  axes = (1, 2) if per_band else (1, 2, 3)
  return jnp.maximum(jnp.mean(x, axis=axes, keepdims=True), _NORM_FLOOR)


class Pansharpener(scopes.Module):

  def __init__(self, num_bands, size: ModelSize,
               blocks: BlockOptions = BlockOptions(),
               world: WorldOptions = WorldOptions(), head="sigmoid",
               input_norm="none", detail_input="none", full_refine=0, *,
               dtype=jnp.float32, rngs):
    dim = size.dim
    self.decoder = GPPNNDecoder(num_bands, size, blocks, world,
                                detail_input=detail_input != "none",
                                full_refine=full_refine, dtype=dtype, rngs=rngs)
    kw = dict(kind=head, dtype=dtype, rngs=rngs)
    self.head_quarter = Head(4 * dim, num_bands, **kw)
    self.head_half = Head(4 * dim, num_bands, **kw)
    self.head_full = Head(2 * dim, num_bands, **kw)
    self.num_bands, self.world = num_bands, world
    self.input_norm, self.detail_input = input_norm, detail_input
    self.dtype = dtype

  def __call__(self, ms, pan, lms=None, *, train=False, rngs=None):
    check_inputs(ms, pan, lms, self.num_bands)
    height, width = pan.shape[1:3]
    ms = ms.astype(jnp.float32)
    lms = upsample(ms, height, width) if lms is None else lms.astype(jnp.float32)

    scale, lms_in, pan_in = 1.0, lms, pan.astype(jnp.float32)
    if self.input_norm != "none":
      scale = _sample_mean(lms, per_band=self.input_norm == "band")
      lms_in, pan_in = lms / scale, pan_in / _sample_mean(pan_in)
    detail = None
    if self.detail_input == "pan_minus_ms":
      detail = (pan_in - lms_in).astype(self.dtype)
    quarter, half, full = self.decoder(lms_in.astype(self.dtype),
                                       pan_in.astype(self.dtype), detail,
                                       train=train, rngs=rngs)
    base_1_4 = ms if 4 * ms.shape[1] == height else avg_pool2(avg_pool2(lms))
    sr_1_4 = self.head_quarter(quarter, base_1_4, scale)
    sr_1_2 = self.head_half(half, avg_pool2(lms), scale)
    sr_full = self.head_full(full, lms, scale)
    if self.world.patch_prior and not train:
      sr_full = patch_prior_refine(sr_full, lms, self.world.patch_size,
                                   self.world.patch_overlap,
                                   self.world.patch_alpha)
    return sr_1_4, sr_1_2, sr_full
