"""Procedural multispectral scenes made into training triples (the default data).

A scene is a linear mixture of a few material spectra ("endmembers") whose
abundance maps carry the spatial structure: smooth fields, sharp-edged shapes
(fields, buildings, roads) and band-limited textures. Mixing makes the bands
spectrally correlated, as in real imagery. The scene is rendered at
`ratio` x the GT resolution, a sensor model turns it into a full-resolution
MS + PAN pair, and Wald's protocol (`wald.wald_degrade`: the MTF-matched
filters of `data.sensor`, `interp23tap` for `lms`) degrades that pair into
`{gt, ms, lms, pan}`. Everything is a pure function of (seed, split, index).
"""

import numpy as np
from scipy import ndimage

from pansharp_jax.data import wald

_SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}
_NUM_MATERIALS = 6


def _smooth_field(rng, size, scale):
  """Gaussian random field with correlation length ~`scale` pixels, in [0, 1]."""
  noise = rng.standard_normal((size, size))
  field = ndimage.gaussian_filter(noise, sigma=scale, mode="wrap")
  field -= field.min()
  return field / max(field.max(), 1e-8)


def _shapes_mask(rng, size, count):
  """Label map of random axis-aligned and rotated rectangles and discs."""
  labels = np.zeros((size, size), np.int32)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  for k in range(count):
    cy, cx = rng.uniform(0, size, 2)
    if rng.random() < 0.5:
      radius = rng.uniform(0.03, 0.15) * size
      inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    else:
      angle = rng.uniform(0, np.pi)
      half_h, half_w = rng.uniform(0.02, 0.2, 2) * size
      u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
      v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
      inside = (np.abs(u) < half_w) & (np.abs(v) < half_h)
    labels[inside] = 1 + k % (_NUM_MATERIALS - 1)
  return labels


def _texture(rng, size):
  """Oriented stripes (crop rows) modulated by fine noise, roughly zero-mean."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  angle = rng.uniform(0, np.pi)
  period = rng.uniform(4, 12)
  stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
  fine = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.7)
  return 0.5 * stripes + 0.5 * fine / max(np.abs(fine).max(), 1e-8)


def render_scene(rng: np.random.Generator, size: int, num_bands: int) -> np.ndarray:
  """A (size, size, num_bands) reflectance-like scene in [0, 1]."""
  wavelengths = np.linspace(0.0, 1.0, num_bands)
  # Smooth spectra: a few Gaussian bumps per material, so bands correlate.
  centers = rng.uniform(-0.2, 1.2, (_NUM_MATERIALS, 3))
  heights = rng.uniform(0.1, 0.8, (_NUM_MATERIALS, 3))
  spectra = (heights[..., None] * np.exp(
      -((wavelengths - centers[..., None]) ** 2) / 0.15)).sum(1)
  spectra = 0.1 + 0.8 * spectra / spectra.max()

  background = _smooth_field(rng, size, size / 8)
  abundances = np.stack([background, 1.0 - background] +
                        [np.zeros((size, size))] * (_NUM_MATERIALS - 2), -1)
  labels = _shapes_mask(rng, size, count=rng.integers(8, 20))
  shape_onehot = np.eye(_NUM_MATERIALS)[labels]
  is_shape = (labels > 0)[..., None]
  abundances = np.where(is_shape, shape_onehot, abundances)

  scene = abundances @ spectra
  shading = 0.8 + 0.2 * _smooth_field(rng, size, size / 16)
  textured = rng.random(_NUM_MATERIALS) < 0.5
  texture_gain = (abundances @ textured.astype(np.float64))[..., None]
  scene = scene * shading[..., None] * (1.0 + 0.15 * texture_gain *
                                        _texture(rng, size)[..., None])
  return np.clip(scene, 0.0, 1.0).astype(np.float32)


def pan_response(num_bands: int) -> np.ndarray:
  """Relative spectral response of the PAN band over the MS bands (sums to 1)."""
  weights = np.exp(-((np.linspace(0, 1, num_bands) - 0.55) ** 2) / 0.3)
  return (weights / weights.sum()).astype(np.float32)


class SyntheticSource:
  """Deterministic synthetic triples; the default data source.

  Scenes are rendered at `ratio` x the GT size, imaged by a sensor model
  (the sensor's MS MTF + decimation for MS, spectral response for PAN), then
  degraded by Wald's protocol with the same sensor's filters: the sensor MS
  becomes GT.
  """

  name = "synthetic"

  def __init__(self, data_config, split: str):
    if split not in _SPLIT_OFFSETS:
      raise ValueError(f"unknown split {split!r}")
    syn = data_config.synthetic
    self.num_bands = int(data_config.num_bands)
    self.ratio = int(data_config.ratio)
    self.max_value = float(data_config.max_value)
    self.sensor = data_config.sensor
    self.scene_size = int(syn.scene_size)
    self._seed = int(data_config.seed) + _SPLIT_OFFSETS[split]
    self._length = int({"train": syn.num_train, "val": syn.num_val,
                        "test": syn.num_test}[split])
    # Fails here, not at the first sample, for a sensor/band-count mismatch.
    self._ms_kernels = wald.mtf_kernels(self.sensor, self.num_bands, self.ratio)
    # Rendering costs ~0.1 s per 64 px scene, as much as a tiny train step,
    # and every epoch asks for the same scenes: keep them while they fit.
    self._cache, self._cache_budget = {}, int(syn.cache_mb) * 2**20

  def __len__(self) -> int:
    return self._length

  def _quantise(self, x: np.ndarray) -> np.ndarray:
    """Rounds to whole sensor units (real data arrives in DN), back in [0, 1]."""
    dn = np.clip(np.round(x * self.max_value), 0, self.max_value)
    return (dn / self.max_value).astype(np.float32)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < self._length:
      raise IndexError(index)
    if index in self._cache:
      return {k: v.copy() for k, v in self._cache[index].items()}
    sample = self._render(index)
    size = sum(v.nbytes for v in sample.values())
    if size <= self._cache_budget:
      self._cache[index] = {k: v.copy() for k, v in sample.items()}
      self._cache_budget -= size
    return sample

  def _render(self, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self._seed, index])
    fine = render_scene(rng, self.scene_size * self.ratio, self.num_bands)
    # Sensor model: MS sees the scene through its MTF at 1/ratio; PAN sees
    # all of it at full resolution through its spectral response.
    ms_full = wald.decimate(wald.mtf_filter(fine, self._ms_kernels), self.ratio)
    pan_full = (fine @ pan_response(self.num_bands))[..., None]
    triple = wald.wald_degrade(ms_full, pan_full, self.sensor, self.ratio)
    ms = self._quantise(triple["ms"])
    # lms from the quantised MS, as a data set's lms is made from its MS;
    # at the MS sample positions it equals MS exactly.
    lms = np.clip(wald.interp23tap(ms, self.ratio), 0.0, 1.0)
    return {"gt": self._quantise(triple["gt"]), "ms": ms,
            "lms": lms.astype(np.float32), "pan": self._quantise(triple["pan"])}
