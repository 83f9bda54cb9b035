"""World-model options (SPEC §2.5): each a config switch, plus presets.

- WSM: a GRU over pooled fused features whose state is carried across
  training steps in `WorldState` variables (a checkpoint's 'world_state'); FiLM modulation
  F * (1 + gamma) + beta with LayerScale.
- DCA-FIM: deformable alignment after cross attention: K offsets and softmax
  weights per pixel, bilinear sampling of the PAN features.
- DSC and WAC-X: loss terms, in `pansharp_jax.losses`.
- Patch prior: an inference-time refiner over overlapping, blended patches.

Presets: none; core = WSM + DSC; full = WSM + DCA-FIM + DSC + WAC-X (all
training-time options). A preset only switches options on: the individual
switches in `config.model.world` add to it.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax.models import scopes
from pansharp_jax.models.layers import conv, dense

PRESETS = {
    "none": frozenset(),
    "core": frozenset({"wsm", "dsc"}),
    "full": frozenset({"wsm", "dca", "dsc", "wacx"}),
}


@dataclasses.dataclass(frozen=True)
class WorldOptions:
  """The resolved world options (preset + switches)."""
  wsm: bool = False
  dca: bool = False
  dsc: bool = False
  wacx: bool = False
  patch_prior: bool = False
  wsm_reset_every: int = 0       # zero the GRU state every N train steps (0: never)
  dca_points: int = 4
  dca_weight: float = 0.3
  patch_size: int = 32
  patch_overlap: float = 0.25
  patch_alpha: float = 0.5


class WorldState(nnx.Variable):
  """State a network carries from one training step to the next (the WSM
  GRU state); a checkpoint's 'world_state' collection."""


def world_options(world_config) -> WorldOptions:
  """Resolves `config.model.world` (a ConfigDict or None) into WorldOptions."""
  if world_config is None:
    return WorldOptions()
  preset = world_config.get("preset", "none")
  if preset not in PRESETS:
    raise ValueError(f"config.model.world.preset: unknown preset {preset!r}; "
                     f"one of {', '.join(PRESETS)}")
  fields = {f.name: world_config[f.name]
            for f in dataclasses.fields(WorldOptions) if f.name in world_config}
  for option in PRESETS[preset]:
    fields[option] = True
  return WorldOptions(**fields)


class GRUCell(scopes.Module):
  """A GRU step, the Linen GRUCell's maths and layers (n's hidden path has a
  bias, inside the reset gate)."""
  linen_names = {"in_": "in"}

  def __init__(self, features_in, hidden, *, rngs):
    i = lambda: dense(features_in, hidden, dtype=None, rngs=rngs)
    h = lambda bias: dense(hidden, hidden, use_bias=bias, dtype=None, rngs=rngs,
                           kernel_init=jax.nn.initializers.orthogonal())
    self.ir, self.iz, self.in_ = i(), i(), i()
    self.hr, self.hz, self.hn = h(False), h(False), h(True)

  def __call__(self, h, x):
    r = jax.nn.sigmoid(self.ir(x) + self.hr(h))
    z = jax.nn.sigmoid(self.iz(x) + self.hz(h))
    n = jnp.tanh(self.in_(x) + r * self.hn(h))
    return (1.0 - z) * n + z * h


class WorldStateMemory(scopes.Module):
  """GRU world state carried across steps; FiLM-modulates the features.

  The stored state is one vector (batch-size free): each sample's GRU step
  starts from it, and a training call stores the batch mean of the new
  states (kept only where the caller keeps the new world state).
  """
  linen_names = {"pooled_norm": "LayerNorm_0", "gru": "GRUCell_0",
                 "state_norm": "LayerNorm_1", "film_out": "Dense_0",
                 "film_hidden": "Dense_1"}

  def __init__(self, channels, hidden, reset_every=0, layer_scale_init=0.1,
               dropout=0.0, *, rngs):
    self.hidden = WorldState(jnp.zeros((hidden,), jnp.float32))
    self.count = WorldState(jnp.zeros((), jnp.int32))
    self.pooled_norm = nnx.LayerNorm(channels, rngs=rngs)
    self.gru = GRUCell(channels, hidden, rngs=rngs)
    self.state_norm = nnx.LayerNorm(hidden, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.film_hidden = dense(hidden, hidden // 2, dtype=None, rngs=rngs)
    self.film_out = dense(hidden // 2, 2 * channels, dtype=None, rngs=rngs)
    self.layer_scale = nnx.Param(jnp.full((2, channels), layer_scale_init))
    self.reset_every = reset_every

  def __call__(self, features, *, train=False, rngs=None):
    channels = features.shape[-1]
    previous = jax.lax.stop_gradient(self.hidden[...])
    if self.reset_every:
      previous = jnp.where(self.count[...] % self.reset_every == 0, 0.0,
                           previous)

    pooled = self.pooled_norm(jnp.mean(features.astype(jnp.float32), axis=(1, 2)))
    carry = jnp.broadcast_to(previous, (pooled.shape[0], previous.shape[0]))
    h = self.gru(carry, pooled)
    if train:
      self.hidden[...] = jax.lax.stop_gradient(jnp.mean(h, axis=0))
      self.count[...] = self.count[...] + 1

    h = self.dropout(self.state_norm(h), deterministic=not train, rngs=rngs)
    film = self.film_out(nnx.gelu(self.film_hidden(h)))
    scale = self.layer_scale[...]
    gamma, beta = jnp.tanh(film).reshape(-1, 2, channels).swapaxes(0, 1) * scale[:, None]
    gamma, beta = (t[:, None, None].astype(features.dtype) for t in (gamma, beta))
    return features * (1 + gamma) + beta


def bilinear_sample(image, y, x):
  """Samples NHWC `image` at float pixel coordinates y, x (B, ...), border
  padding; returns (B, ..., C)."""
  batch, height, width, channels = image.shape
  y = jnp.clip(y, 0, height - 1)
  x = jnp.clip(x, 0, width - 1)
  y0, x0 = jnp.floor(y), jnp.floor(x)
  wy, wx = (y - y0)[..., None], (x - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, height - 1), jnp.minimum(x0 + 1, width - 1)
  flat = image.reshape(batch, height * width, channels)

  def at(yi, xi):
    index = (yi * width + xi).reshape(batch, -1, 1)
    return jnp.take_along_axis(flat, index, axis=1).reshape(
        yi.shape + (channels,))

  top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
  bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
  return top * (1 - wy) + bottom * wy


class DeformableAlignment(scopes.Module):
  """DCA-FIM: aligns PAN features to the fused features by deformable sampling.

  Offsets (zero-initialised, so it starts as an identity lookup) and
  sampling weights come from both maps; the aggregated samples pass a
  1x1-GELU-1x1 block and are added with weight `deform_weight`.
  """
  linen_names = {"offsets": "Conv_0", "offsets_hidden": "Conv_1",
                 "weights": "Dense_0", "weights_hidden": "Conv_2",
                 "out": "Dense_1", "out_hidden": "Dense_2"}

  def __init__(self, channels, points=4, deform_weight=0.3, *,
               dtype=jnp.float32, rngs):
    quarter = max(channels // 4, 1)
    self.offsets_hidden = conv(2 * channels, channels, 3, dtype=dtype, rngs=rngs)
    self.offsets = conv(channels, 2 * points, 3, dtype=dtype, rngs=rngs,
                        kernel_init=jax.nn.initializers.zeros)
    self.weights_hidden = conv(2 * channels, quarter, 3, dtype=dtype, rngs=rngs)
    self.weights = dense(quarter, points, dtype=dtype, rngs=rngs)
    self.out_hidden = dense(channels, channels, dtype=dtype, rngs=rngs)
    self.out = dense(channels, channels, dtype=dtype, rngs=rngs)
    self.points, self.deform_weight, self.dtype = points, deform_weight, dtype

  def __call__(self, query, value):
    """query (B, H, W, C) fused features, value (B, H, W, C) PAN features."""
    batch, height, width, channels = query.shape
    both = jnp.concatenate([query, value], axis=-1)
    offsets = self.offsets(nnx.gelu(self.offsets_hidden(both)))
    logits = self.weights(nnx.gelu(self.weights_hidden(both)))

    offsets = offsets.astype(jnp.float32).reshape(
        batch, height, width, self.points, 2)
    grid_y, grid_x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                                  jnp.arange(width, dtype=jnp.float32),
                                  indexing="ij")
    samples = bilinear_sample(value.astype(jnp.float32),
                              grid_y[..., None] + offsets[..., 0],
                              grid_x[..., None] + offsets[..., 1])
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    aligned = jnp.einsum("bhwkc,bhwk->bhwc", samples, weights).astype(self.dtype)
    aligned = self.out(nnx.gelu(self.out_hidden(aligned)))
    return query + self.deform_weight * aligned


def patch_prior_refine(output, lms, patch_size=32, overlap=0.25, alpha=0.5):
  """Inference-time patch prior: each band's local mean follows the MS.

  The image is cut into overlapping patches; in each, the output's band
  means are moved to those of the upsampled MS (a low-frequency spectral
  prior that leaves the injected detail alone); the per-patch corrections
  are blended with a tent window, and `alpha` of the blend is applied.

  Args:
    output: (B, H, W, C) fused image.
    lms: (B, H, W, C) MS upsampled to the same size.
    patch_size: patch side in pixels (clamped to the image).
    overlap: fraction of a patch shared with its neighbour, in [0, 1).
    alpha: strength of the correction, in [0, 1].

  Returns:
    The refined (B, H, W, C) image, clipped to [0, 1].
  """
  batch, height, width, channels = output.shape
  patch = min(patch_size, height, width)
  stride = max(1, int(round(patch * (1 - overlap))))
  pad_h = -(height - patch) % stride
  pad_w = -(width - patch) % stride

  def patch_means(x):
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return nnx.avg_pool(x, (patch, patch), (stride, stride))

  correction = patch_means(lms) - patch_means(output)     # (B, h, w, C)
  # Overlap-add of the per-patch corrections with a tent window, normalised.
  tent = 1.0 - jnp.abs(jnp.linspace(-1, 1, patch + 2)[1:-1])
  window = jnp.outer(tent, tent)[:, :, None, None]

  def overlap_add(x):  # (N, h, w, 1) -> (N, H + pad_h, W + pad_w, 1)
    return jax.lax.conv_transpose(x, window, (stride, stride), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))

  per_band = jnp.moveaxis(correction, -1, 1).reshape(
      batch * channels, correction.shape[1], correction.shape[2], 1)
  blended = overlap_add(per_band) / overlap_add(jnp.ones_like(per_band[:1]))
  blended = jnp.moveaxis(
      blended[:, :height, :width, 0].reshape(batch, channels, height, width), 1, -1)
  return jnp.clip(output + alpha * blended, 0.0, 1.0)
