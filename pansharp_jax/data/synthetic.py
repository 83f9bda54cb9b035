"""Procedural satellite-like scenes made into training triples (the default data).

A scene is a land-cover layout (`landcover.py`: parcels, crops, roads,
rivers, buildings and trees with their shadows) seen through material
spectra (`spectra.py`) by a sensor with MS bands and a broader PAN band. It is
drawn on the PAN grid of the sensor, at `ratio` x the GT resolution; the
sensor model images it into a full-resolution MS + PAN pair, with a small
MS/PAN misregistration, the PAN's own blur and noise on both (band
responses, range, noise and misregistration of a named sensor with
`data.synthetic.preset`: `presets.py`); then Wald's
protocol (`wald.wald_degrade`: the MTF-matched filters of `data.sensor`,
`interp23tap` for `lms`) degrades that pair into `{gt, ms, lms, pan}`.
Everything is a pure function of (seed, split, index).
"""

import numpy as np
from scipy import ndimage

from pansharp_jax.data import landcover, presets, spectra, wald

_SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}
# Largest MS/PAN misregistration of the unnamed sensor, in PAN pixels (0.3
# MS pixel at ratio 4).
MAX_SHIFT = presets.DEFAULT.max_shift * presets.DEFAULT.ratio


def render_scene(rng: np.random.Generator, size: int, num_bands: int,
                 preset: presets.SensorPreset = presets.DEFAULT) -> np.ndarray:
  """(size, size, num_bands + 1) at-sensor scene: the MS bands, then PAN.

  Values are fractions of the sensor's range: reflectance times the
  preset's brightness, plus haze and its offset, sunlit and shaded parts
  through their own spectra.
  """
  layout = landcover.draw_layout(rng, size)
  sunlit, shaded, haze = spectra.material_tables(
      rng, num_bands, preset.band_edges, preset.pan_edges)
  weights = layout.weights.reshape(len(spectra.COMPONENTS), -1)
  lit = layout.sunlit.reshape(1, -1)
  radiance = (lit * (sunlit.T.astype(np.float32) @ weights) +
              (1 - lit) * (shaded.T.astype(np.float32) @ weights))
  scene = (rng.uniform(*preset.brightness) * radiance +
           rng.uniform(*preset.haze) * haze[:, None].astype(np.float32) +
           np.float32(preset.offset))
  return np.moveaxis(scene.reshape(num_bands + 1, size, size), 0, -1)


def misregistration(rng: np.random.Generator,
                    max_shift: float = MAX_SHIFT) -> np.ndarray:
  """A random (dy, dx) MS/PAN shift in PAN pixels, at most `max_shift` long."""
  angle = rng.uniform(0, 2 * np.pi)
  return max_shift * np.sqrt(rng.random()) * np.array([np.sin(angle),
                                                        np.cos(angle)])


def _gaussian_sigma(gain: float, ratio: int) -> float:
  """Std (px) of the Gaussian blur whose response is `gain` at 1/(2 ratio)."""
  return float(np.sqrt(-np.log(gain) / 2) * 2 * ratio / np.pi)


def image_scene(scene: np.ndarray, shift, ms_gains, ratio: int,
                rng: np.random.Generator,
                preset: presets.SensorPreset = presets.DEFAULT
                ) -> tuple[np.ndarray, np.ndarray]:
  """The sensor: full-resolution MS (H/ratio, W/ratio, C) and PAN (H, W).

  MS band k is the scene blurred by a Gaussian MTF with gain `ms_gains[k]`
  at its Nyquist frequency, sampled at pixel centres `shift` (dy, dx PAN
  pixels) away from where Wald's decimation expects them; the PAN is the
  scene through its own slight blur (the preset's). Both get the preset's
  Gaussian noise and stay in [0, 1].
  """
  size, bands = scene.shape[0], scene.shape[-1] - 1
  centres = np.arange(ratio // 2, size, ratio, dtype=np.float64)
  rows, cols = np.meshgrid(centres + shift[0], centres + shift[1], indexing="ij")
  ms = np.stack([ndimage.map_coordinates(
      ndimage.gaussian_filter(scene[..., k], _gaussian_sigma(g, ratio),
                              mode="nearest"), (rows, cols), order=1,
      mode="nearest") for k, g in enumerate(ms_gains)], -1)
  pan = ndimage.gaussian_filter(scene[..., bands], preset.pan_blur,
                                mode="nearest")
  ms = ms + rng.normal(0, preset.ms_noise, ms.shape)
  pan = pan + rng.normal(0, preset.pan_noise, pan.shape)
  return np.clip(ms, 0, 1), np.clip(pan, 0, 1)


def sensor_pair(rng: np.random.Generator, size: int, num_bands: int,
                ms_gains, ratio: int,
                preset: presets.SensorPreset = presets.DEFAULT
                ) -> tuple[np.ndarray, np.ndarray]:
  """A new scene of (size, size) PAN pixels as the sensor delivers it:
  full-resolution MS (size/ratio) and PAN (size), in [0, 1]. `rng` draws
  the scene, then its misregistration, then the noise."""
  scene = render_scene(rng, size, num_bands, preset)
  shift = misregistration(rng, preset.max_shift * ratio)
  return image_scene(scene, shift, ms_gains, ratio, rng, preset)


class SyntheticSource:
  """Deterministic synthetic triples; the default data source.

  Scenes are rendered at `ratio` x the GT size, imaged by the sensor model
  (`sensor_pair`), then degraded by Wald's protocol with the same sensor's
  filters: the sensor MS becomes GT.
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
    # Checks num_bands, ratio, sensor and max_value against a named preset.
    self._preset = presets.get_preset(data_config)
    self.scene_size = int(syn.scene_size)
    self._seed = int(data_config.seed) + _SPLIT_OFFSETS[split]
    self._length = int({"train": syn.num_train, "val": syn.num_val,
                        "test": syn.num_test}[split])
    # Fails here, not at the first sample, for a sensor/band-count mismatch.
    self._ms_gains = wald.ms_gains(self.sensor, self.num_bands)
    # Rendering costs ~0.15 s of CPU per 64 px scene, a good part of a tiny
    # train step, and every epoch asks for the same scenes: keep them while
    # they fit.
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
    ms_full, pan_full = sensor_pair(rng, self.scene_size * self.ratio,
                                    self.num_bands, self._ms_gains, self.ratio,
                                    self._preset)
    triple = wald.wald_degrade(ms_full, pan_full, self.sensor, self.ratio)
    ms = self._quantise(triple["ms"])
    # lms from the quantised MS, as a data set's lms is made from its MS;
    # at the MS sample positions it equals MS exactly.
    lms = np.clip(wald.interp23tap(ms, self.ratio), 0.0, 1.0)
    return {"gt": self._quantise(triple["gt"]), "ms": ms,
            "lms": lms.astype(np.float32),
            "pan": self._quantise(triple["pan"][..., None])}
